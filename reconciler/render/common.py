"""What the plan's and the scan's renderers share: how a live value is shown, and GitHub's size limit."""

from __future__ import annotations

import re

from reconciler.inert import inert, md_code
from reconciler.vendor_rules import API_NAME_RULE, RESOURCE_ID_RULE, SIGNATURE_KEY_RULE, SIGNATURE_NAME_RULE

# GitHub refuses a comment (and an issue body) over 65,536 characters.
GITHUB_COMMENT_LIMIT = 65_536

_RULES = {
    "signature name": SIGNATURE_NAME_RULE,
    "key": SIGNATURE_KEY_RULE,
    "API name": API_NAME_RULE,
    "API id": RESOURCE_ID_RULE,
    "group id": RESOURCE_ID_RULE,
    # Group names are shown beside their ids for the reader and never marked: no rule of the vendor's for them
    # is among the facts this tool relies on.
    "group name": re.compile(r".*", re.DOTALL),
}


def invalid_mark(value: str, kind: str) -> str:
    """` (not a valid KIND)` when `value` breaks the vendor's rule for `kind`, else nothing."""
    return "" if _RULES[kind].fullmatch(value) else f" (not a valid {kind})"


def marked(value: str, kind: str) -> str:
    """A live value for a terminal: inert, and marked when it breaks the vendor's rule for `kind`."""
    return inert(value) + invalid_mark(value, kind)


def md_marked(value: str, kind: str, *, in_table: bool = False) -> str:
    """A live value for markdown: a code span, and marked when it breaks the vendor's rule for `kind`."""
    return md_code(value, in_table=in_table) + invalid_mark(value, kind)
