"""A stand-in for the `gh` CLI in workflow tests: the GitHub API calls the example workflows make, kept in a
JSON file (FAKE_GH_STATE) that the test seeds and reads back. `--jq` is run by the real jq, as gh does."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

BOT = {"login": "github-actions[bot]", "type": "Bot"}


def option(args: list[str], name: str) -> str | None:
    return args[args.index(name) + 1] if name in args else None


def field_value(args: list[str], name: str) -> str:
    for index, arg in enumerate(args):
        if arg == "-F" and args[index + 1].startswith(f"{name}=@"):
            return Path(args[index + 1].split("=@", 1)[1]).read_text()
    raise SystemExit(f"fake gh: no -F {name}=@FILE in {args}")


def emit(value: Any, jq: str | None) -> None:
    text = json.dumps(value)
    if jq is not None:
        text = subprocess.run(["jq", "-r", jq], input=text, capture_output=True, text=True, check=True).stdout
        sys.stdout.write(text)
    else:
        print(text)


def api(state: dict[str, Any], args: list[str]) -> None:
    method = option(args, "--method") or "GET"
    path = next(a for a in args if a.startswith("repos/"))
    parts = path.split("/")
    if method == "GET" and parts[-1] == "files":
        emit(state["pr_files"], option(args, "--jq"))
    elif method == "GET" and parts[-1] == "pulls" and parts[-3] == "commits":
        emit(state["commit_pulls"].get(parts[-2], []), option(args, "--jq"))
    elif method == "GET" and parts[-1] == "comments":
        emit(state["comments"], option(args, "--jq"))
    elif method == "POST" and parts[-1] == "comments":
        comment = {"id": 1000 + len(state["comments"]), "user": BOT, "body": field_value(args, "body")}
        state["comments"].append(comment)
        emit(comment, None)
    elif method == "PATCH" and parts[-2] == "comments":
        comment = next(c for c in state["comments"] if c["id"] == int(parts[-1]))
        comment["body"] = field_value(args, "body")
        emit(comment, None)
    else:
        raise SystemExit(f"fake gh: unexpected api call {args}")


def issue(state: dict[str, Any], args: list[str]) -> None:
    command = args[0]
    if command == "list":
        label = option(args, "--label")
        found = [{"number": i["number"]} for i in state["issues"] if label in i["labels"] and i["state"] == "open"]
        emit(found, option(args, "--jq"))
    elif command == "create":
        number = len(state["issues"]) + 1
        state["issues"].append({"number": number, "title": option(args, "--title"), "state": "open",
                                "labels": [option(args, "--label")],
                                "body": Path(str(option(args, "--body-file"))).read_text()})
        print(f"https://github.com/o/r/issues/{number}")
    elif command == "edit":
        target = next(i for i in state["issues"] if i["number"] == int(args[1]))
        target["body"] = Path(str(option(args, "--body-file"))).read_text()
    elif command == "close":
        target = next(i for i in state["issues"] if i["number"] == int(args[1]))
        target["state"] = "closed"
        target["closing_comment"] = option(args, "--comment")
    else:
        raise SystemExit(f"fake gh: unexpected issue command {args}")


def main() -> None:
    state_file = Path(os.environ["FAKE_GH_STATE"])
    state = json.loads(state_file.read_text())
    args = sys.argv[1:]
    state["calls"].append(args)
    if args[0] == "api":
        api(state, args[1:])
    elif args[0] == "issue":
        issue(state, args[1:])
    elif args[:2] == ["label", "create"]:
        state["labels"].append(args[2])
    else:
        raise SystemExit(f"fake gh: unexpected command {args}")
    state_file.write_text(json.dumps(state))


if __name__ == "__main__":
    main()
