"""Hostile values, and what a terminal, GitHub's markdown renderer and GitHub's runner would make of output.

Import it from any test (`from tests.support.hostile import HOSTILE, ...`). Each value is something an account
with write access to API Gateway could put in the live state, or a pull request in a manifest (YAML
escapes like "\\e" and "\\n") or a file name. The checks say what the three readers of our output see:

- `raw_controls`: characters a terminal or a log viewer acts on instead of showing (empty for inert text);
- `runner_commands`: lines the Actions runner would read as workflow commands (`::cmd::` or `##[cmd]`);
- `markdown_findings`: what GitHub's renderer (cmarkgfm) would make of a markdown document: links, images,
  raw HTML, text outside code that would be a mention, an autolink or a reference, and lines that GitLab
  would run as quick actions.
"""

from __future__ import annotations

import re
import unicodedata
from html.parser import HTMLParser

HOSTILE: dict[str, str] = {
    # Terminals and logs.
    "clear-screen": "\x1b[2J\x1b[HNo changes. Live state matches the manifests.",
    "bell": "orders\x07list",
    "carriage-return": "orders_list\rNo changes",
    "nul": "orders\x00list",
    "tab": "orders\tlist",
    "delete": "orders\x7flist",
    "c1-csi": "orders\x9b2Jlist",
    "osc8-link": "\x1b]8;;https://evil.example\x07click me\x1b]8;;\x07",
    "bidi-override": "orders\u202eexe.tsil",
    "bidi-isolates": "\u2066orders\u2069\u2067list\u2069\u2068x\u2069",
    "bidi-marks": "a\u200eb\u200fc\u061cd\u202ae\u202bf\u202cg\u202dh",
    "line-separator": "orders\u2028list",
    "paragraph-separator": "orders\u2029list",
    "zero-width": "ord\u200bers\u200d\ufefflist",
    "tag-characters": "orders\U000e0041\U000e007f",
    # GitHub's runner (workflow commands) and its log.
    "newline-error": "payments\n::error title=Build passed::spoofed",
    "stop-commands": "x\n::stop-commands::pwned\n::error::now unchecked",
    "add-mask": "x\r\n::add-mask::everything",
    "legacy-command": "x\n##[error]spoofed",
    "set-env": "x\n::set-env name=PATH::/tmp/evil",
    # Markdown and GitHub.
    "backticks": "a`b``c```d````",
    "backtick-edges": "`x`",
    "fence": "x\n```\n/approve\n```",
    "html": "<img src=x onerror=alert(1)>",
    "details-close": "</details></code></pre><script>alert(1)</script>",
    "link": "[click](https://evil.example)",
    "image": "![x](https://evil.example/x.png)",
    "autolink-www": "www.evil.example",
    "autolink-url": "https://evil.example/a",
    "autolink-angle": "<https://evil.example>",
    "autolink-email": "me@evil.example",
    "mention": "@octocat",
    "team-mention": "@org/team",
    "issue-reference": "#123",
    "cross-reference": "owner/repo#1",
    "heading": "\n# Plan: 0 to create",
    "emphasis": "*bold* _it_ ~~gone~~ :+1:",
    "table-break": "a | b\n| --- |",
    "pipe": "a|b\\|c",
    "backslash-end": "orders\\",
    "entity": "&lt;b&gt; &#64;octocat",
    # GitLab quick actions (read from the lines of a comment).
    "quick-approve": "\n/approve",
    "quick-merge": "x\n/merge",
    "quick-label": "/label ~security",
}

# Characters the product must never write raw (newlines are the output's own line breaks).
_RAW_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs"})
_INVISIBLE = frozenset("\u115f\u1160\u3164\uffa0\u034f")


def raw_controls(text: str) -> list[str]:
    """Control, format and line-breaking characters in `text` other than LF, as `repr`s."""
    raw = {char for char in set(text)  # each distinct character looked up once; the texts are long and repetitive
           if char != "\n" and (unicodedata.category(char) in _RAW_CATEGORIES or char in _INVISIBLE)}
    return [repr(char) for char in text if char in raw] if raw else []


_COMMAND = re.compile(r"^\s*(::[A-Za-z-]|##\[)")


def runner_commands(text: str, *, ours: str | None = None) -> list[str]:
    """Lines GitHub's runner would read as a workflow command; `ours` is a prefix of the ones the product writes
    on purpose (e.g. `::error file=`), which are left out."""
    found = []
    for line in re.split(r"\r\n|\r|\n", text):
        if _COMMAND.match(line) and not (ours is not None and line.startswith(ours)):
            found.append(line)
    return found


def render_github(markdown: str) -> str:
    """HTML as GitHub's renderer makes it (raw HTML kept, so any that gets through shows)."""
    import cmarkgfm
    from cmarkgfm.cmark import Options

    return cmarkgfm.github_flavored_markdown_to_html(markdown, options=Options.CMARK_OPT_UNSAFE)


# Tags the product's own markdown produces; anything else came from a value.
OWN_TAGS = frozenset({"h3", "h4", "p", "strong", "em", "blockquote", "ul", "li", "table", "thead", "tbody", "tr",
                      "th", "td", "code", "pre", "details", "summary", "br"})


class _Html(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.code_depth = 0
        self.prose: list[str] = []  # text outside <code>
        self.text: list[str] = []  # all text

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        if tag == "code":
            self.code_depth += 1

    def handle_endtag(self, tag: str) -> None:
        if tag == "code":
            self.code_depth -= 1

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if not self.code_depth:
            self.prose.append(data)

    def handle_comment(self, data: str) -> None:
        self.tags.append("!--")


def html_text(html: str) -> tuple[list[str], str, str]:
    """(tags, every text, text outside code spans and blocks) of rendered HTML, entities decoded."""
    parser = _Html()
    parser.feed(html)
    parser.close()
    return parser.tags, "".join(parser.text), "".join(parser.prose)


_PROSE_HAZARDS = {
    "mention": re.compile(r"(?<![\w`])@[A-Za-z0-9]"),
    "autolink": re.compile(r"www\.|https?://|mailto:|[\w.]+@[\w-]+\.", re.IGNORECASE),
    "reference": re.compile(r"(?<![\w&])#\d|[\w-]+/[\w.-]+#\d"),
    "emoji shortcode": re.compile(r":[a-z0-9_+-]+:"),
}


def markdown_findings(markdown: str) -> list[str]:
    """Everything in `markdown` that a value could have made active on GitHub or GitLab (empty when inert)."""
    html = render_github(markdown)
    tags, _, prose = html_text(html)
    findings = [f"tag <{tag}>" for tag in tags if tag not in OWN_TAGS]
    findings += [f"{name} in prose: {match.group(0)!r}" for name, pattern in _PROSE_HAZARDS.items()
                 for match in pattern.finditer(prose)]
    findings += [f"quick action line: {line!r}" for line in markdown.splitlines() if line.lstrip().startswith("/")]
    findings += [f"raw control {char}" for char in raw_controls(markdown)]
    return findings
