"""Keeping secrets out of messages: every secret and token a run knows, in every encoding a server or a
library may echo it in.

The vendor's V1 ``SignatureDoesNotMatch`` answer ends with the server's whole string to sign, where every
parameter (``SecurityToken``, ``SignatureSecret``) is percent-encoded twice; other answers and transport
errors may carry a value once encoded, or as base64 or hex. ``scrub`` replaces each of those forms, and
``drop_string_to_sign`` cuts the echoed string to sign off entirely, whatever it holds.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable
from urllib.parse import quote, quote_plus

REDACTED = "<redacted>"
# The tail the vendor appends to SignatureDoesNotMatch (V1): "... server string to sign is:<string>".
_STRING_TO_SIGN = re.compile(r"(string\s*to\s*sign\s*(?:is)?\s*:?).*\Z", re.IGNORECASE | re.DOTALL)


def encodings(secret: str) -> set[str]:
    """The forms a secret may be echoed in: clear, percent-encoded once and twice (RFC 3986 and form
    style), base64 (standard and URL-safe, padded or not) and hex (either case)."""
    raw = secret.encode("utf-8")
    once = {quote(secret, safe=""), quote(secret, safe="-_.~"), quote_plus(secret)}
    twice = {quote(form, safe="") for form in once} | {quote(form, safe="-_.~") for form in once}
    b64 = {base64.b64encode(raw).decode("ascii"), base64.urlsafe_b64encode(raw).decode("ascii")}
    b64 |= {form.rstrip("=") for form in b64}
    forms = {secret, *once, *twice, *b64, raw.hex(), raw.hex().upper()}
    return {form for form in forms if form}


class Scrubber:
    """Replaces every known secret, in every encoding, with ``<redacted>``; the encodings are worked out
    only when there is a message to scrub."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets = [secret for secret in secrets if secret]
        self._forms: list[str] | None = None

    def scrub(self, text: str) -> str:
        if self._forms is None:
            # Longest first, so that no form is partly replaced through a shorter one inside it.
            self._forms = sorted({form for secret in self._secrets for form in encodings(secret)}, key=len,
                                 reverse=True)
        for form in self._forms:
            if form in text:
                text = text.replace(form, REDACTED)
        return text


def drop_string_to_sign(message: str) -> str:
    """The message without the string to sign a server echoed after it (replaced by a note)."""
    return _STRING_TO_SIGN.sub(lambda match: f"{match.group(1)} <not shown: it may hold secrets>", message)
