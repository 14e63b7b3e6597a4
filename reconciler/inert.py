"""Text from outside, made inert for where it is shown: a terminal or CI log, and markdown.

Two sources are untrusted: the live state (API and group names, anything the endpoint answers; an
account with write access to API Gateway controls it) and a pull request (manifest values, YAML
escapes like "\\e", file names, which git allows to hold newlines). Every output path shows such a
value through `inert` (terminal, CI log, errors, warnings) or through `md_code` / `md_text`
(markdown), at the point where it is rendered.

Decisions:
- Escaped: every control character (C0 with TAB, CR and LF, DEL, C1), every format character
  (Unicode category Cf: bidi embeddings, overrides and isolates, LRM/RLM/ALM, zero-width characters,
  the BOM, tag characters), the line and paragraph separators U+2028/U+2029, lone surrogates (file
  names read with surrogateescape), and letters that draw nothing (the Hangul fillers, U+034F).
  They are written as Python writes them: `\\n`, `\\r`, `\\t`, `\\x1b`, `\\u202e`, `\\U000e0041`.
  Everything else, Chinese names included, is shown as it is.
- A backslash is not doubled: ordinary values and paths print unchanged, and `inert` is idempotent
  (an error message escaped where it is built is not escaped twice where it is printed). The price is
  that a value holding the four characters `\\x1b` reads like one holding ESC; both are inert.
- Markdown: a value goes into a code span longer than any backtick run in it, so nothing in it is a
  link, an image, HTML, emphasis or a mention (GitHub links neither URLs nor @mentions inside code).
  It never begins a line (so no GitLab quick action, heading or fence), and `|` is escaped so a table
  row keeps its cells.
"""

from __future__ import annotations

import re
import unicodedata

_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
# Categories shown escaped: controls, format characters, line/paragraph separators, surrogates.
_ESCAPED_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs"})
# Invisible characters of other categories: the Hangul fillers (letters that draw nothing) and the
# combining grapheme joiner.
_INVISIBLE = frozenset("\u115f\u1160\u3164\uffa0\u034f")


def _escape(char: str) -> str:
    named = _NAMED.get(char)
    if named is not None:
        return named
    code = ord(char)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def _needs_escape(char: str) -> bool:
    return unicodedata.category(char) in _ESCAPED_CATEGORIES or char in _INVISIBLE


def inert(text: str) -> str:
    """`text` with every control, format and line-breaking character escaped: one line, nothing a terminal,
    a CI runner or a bidi-aware viewer would act on."""
    if text.isascii() and text.isprintable():
        return text  # the common case, without a look at each character
    return "".join(_escape(char) if _needs_escape(char) else char for char in text)


_BACKTICK_RUN = re.compile(r"`+")
# Shown as plain markdown text: nothing in it can be emphasis, a link, a mention, a reference or HTML.
_PLAIN = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9_-]*[A-Za-z0-9])?(?:/[A-Za-z0-9](?:[A-Za-z0-9_-]*[A-Za-z0-9])?)*")


def longest_backtick_run(text: str) -> int:
    if "`" not in text:
        return 0
    return max(len(run) for run in _BACKTICK_RUN.findall(text))


def md_code(value: str, *, in_table: bool = False) -> str:
    """`value` as a markdown code span that no character of it can close or leave."""
    text = inert(value)
    if in_table and "|" in text:
        # GitHub's table extension splits rows at `|` before it sees code spans; `\|` stays in its cell.
        text = text.replace("|", "\\|")
    if not text:
        return "` `"
    ticks = "`" * (longest_backtick_run(text) + 1)
    # A space each side keeps a value that starts or ends with a backtick (or a space) as it is:
    # CommonMark strips exactly one space from each side when both are there.
    pad = " " if text[0] in "` " or text[-1] in "` " else ""
    return f"{ticks}{pad}{text}{pad}{ticks}"


def md_text(value: str, *, in_table: bool = False) -> str:
    """`value` as plain text when it is a plain word (a region, a ref like origin/main), else as `md_code`."""
    return value if _PLAIN.fullmatch(value) else md_code(value, in_table=in_table)


def md_fence(lines: list[str], info: str = "") -> list[str]:
    """`lines` in a fenced code block whose fence is longer than any backtick run in them."""
    fence = "`" * max(3, max((longest_backtick_run(line) for line in lines), default=0) + 1)
    return [fence + info, *lines, fence]
