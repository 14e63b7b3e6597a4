"""The vendor's rules for backend signatures (CloudAPI 2016-07-14), in one place.

The manifest loader checks them so that a PR fails before apply would; the
emulator enforces them as the real endpoint does.
"""

from __future__ import annotations

import re

SIGNATURE_NAME_RULE = re.compile(r"[A-Za-z][A-Za-z0-9_]{3,49}")
SIGNATURE_KEY_RULE = re.compile(r"[A-Za-z][A-Za-z0-9_]{5,19}")
SIGNATURE_SECRET_RULE = re.compile(r"[A-Za-z][A-Za-z0-9_@#!*]{5,29}")

SIGNATURE_NAME_HINT = "4-50 characters: letters, digits or '_', starting with a letter"
SIGNATURE_KEY_HINT = "6-20 characters: letters, digits or '_', starting with a letter"
SIGNATURE_SECRET_HINT = "6-30 characters: letters, digits or _ @ # ! *, starting with a letter"
