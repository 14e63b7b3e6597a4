"""What GitHub's runner makes of a step's output: the lines it reads as workflow commands.

As the runner does (actions/runner, ActionCommandManager): a line whose text, leading whitespace trimmed,
starts with `::` is a command (`::name params::value`), and so is a line holding `##[` anywhere (the older
form); `::stop-commands::TOKEN` stops all of that until a line `::TOKEN::`, which is not a command itself.
"""

from __future__ import annotations


def workflow_commands(output: str) -> list[str]:
    """Every line of `output` the runner would carry out as a command, stop/resume lines included."""
    commands: list[str] = []
    resume: str | None = None
    for line in output.splitlines():
        text = line.lstrip()
        if resume is not None:
            if text == resume:
                commands.append(text)
                resume = None
            continue
        if text.startswith("::stop-commands::"):
            commands.append(text)
            resume = "::" + text.removeprefix("::stop-commands::") + "::"
        elif text.startswith("::") or "##[" in line:
            commands.append(text)
    return commands
