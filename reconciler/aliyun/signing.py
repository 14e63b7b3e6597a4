"""Pure functions for Alibaba Cloud request signing: V3 (ACS3-HMAC-SHA256) and RPC V1 (HMAC-SHA1).

Both the client (to sign) and the emulator (to verify) use these, so every function is
deterministic and takes everything it needs as arguments: no clock, no randomness, no I/O.

Decisions where the vendor documentation is silent:

- Query parameters are sorted by their raw name (the vendor SDK does the same); parameter names
  are ASCII in this API, so this equals sorting the encoded names.
- Header lookups ignore case and header values are trimmed of surrounding whitespace.
- A header named in the signed-header list but absent from the request is a ``ValueError``:
  a verifier must reject such a request rather than guess a value.
- ``v1_string_to_sign`` ignores a ``Signature`` parameter if one is passed, so a verifier can
  hand over the whole received query.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Mapping, Sequence
from urllib.parse import quote

V3_ALGORITHM = "ACS3-HMAC-SHA256"
V1_SIGNATURE_METHOD = "HMAC-SHA1"
V1_SIGNATURE_VERSION = "1.0"

# Headers the vendor SDK signs besides host, content-type and x-acs-*.
_OPTIONALLY_SIGNED = ("accept", "user-agent")
_HEX_SIGNATURE = re.compile(r"[0-9a-f]{64}")


def percent_encode(value: str) -> str:
    """RFC 3986 encoding of UTF-8 text: only ``A-Za-z0-9-_.~`` stay as they are; space is ``%20``."""
    return quote(value, safe="-_.~")


def canonical_query(params: Mapping[str, str]) -> str:
    """The query as signed: ``name=value`` pairs sorted by name, both sides encoded, joined with ``&``."""
    return "&".join(f"{percent_encode(name)}={percent_encode(params[name])}" for name in sorted(params))


def _lowercased(headers: Mapping[str, str]) -> dict[str, str]:
    return {name.lower(): value.strip() for name, value in headers.items()}


def v3_signed_header_names(headers: Mapping[str, str]) -> list[str]:
    """Lowercased names of the headers to sign: host, content-type, accept, user-agent, every x-acs-*."""
    names = {
        name
        for name in _lowercased(headers)
        if name in ("host", "content-type", *_OPTIONALLY_SIGNED) or name.startswith("x-acs-")
    }
    return sorted(names)


def v3_canonical_request(
    method: str,
    path: str,
    query: Mapping[str, str],
    headers: Mapping[str, str],
    signed_header_names: Sequence[str],
    payload_sha256: str,
) -> str:
    """The V3 canonical request.

    ``path`` is used as given (``/`` for every RPC-style call). Raises ``ValueError`` when a signed
    header is missing from ``headers``.
    """
    return v3_canonical_request_for_query(
        method, path, canonical_query(query), headers, signed_header_names, payload_sha256)


def v3_canonical_request_for_query(
    method: str,
    path: str,
    canonical_query_string: str,
    headers: Mapping[str, str],
    signed_header_names: Sequence[str],
    payload_sha256: str,
) -> str:
    """``v3_canonical_request`` given the query already canonical (a signer that wrote the query so
    need not parse and encode it again)."""
    by_name = _lowercased(headers)
    names = sorted(name.lower() for name in signed_header_names)
    missing = [name for name in names if name not in by_name]
    if missing:
        raise ValueError(f"signed header(s) not present in the request: {', '.join(missing)}")
    canonical_headers = "".join(f"{name}:{by_name[name]}\n" for name in names)
    return "\n".join([method.upper(), path, canonical_query_string, canonical_headers, ";".join(names),
                      payload_sha256])


def v3_signature(secret: str, canonical_request: str) -> str:
    """Hex HMAC-SHA256, keyed with the secret, over the algorithm line and the request's hex SHA-256."""
    hashed_request = hashlib.sha256(canonical_request.encode("utf-8")).hexdigest()
    string_to_sign = f"{V3_ALGORITHM}\n{hashed_request}"
    return hmac.new(secret.encode("utf-8"), string_to_sign.encode("utf-8"), hashlib.sha256).hexdigest()


def v3_authorization(access_key_id: str, signed_header_names: Sequence[str], signature: str) -> str:
    """The ``Authorization`` header value for a V3-signed request."""
    return (
        f"{V3_ALGORITHM} Credential={access_key_id},SignedHeaders={';'.join(signed_header_names)},Signature={signature}"
    )


def parse_v3_authorization(value: str) -> tuple[str, list[str], str]:
    """Split a V3 ``Authorization`` value into (access key id, signed header names, signature).

    Raises ``ValueError`` on another algorithm, a missing or repeated part, an empty access key id
    or header list, or a signature that is not 64 lowercase hex digits.
    """
    algorithm, _, rest = value.strip().partition(" ")
    if algorithm != V3_ALGORITHM:
        raise ValueError(f"authorization algorithm is not {V3_ALGORITHM}")
    parts: dict[str, str] = {}
    for item in rest.split(","):
        key, sep, part_value = item.strip().partition("=")
        if not sep or key in parts:
            raise ValueError(f"malformed authorization part {item.strip()!r}")
        parts[key] = part_value
    if set(parts) != {"Credential", "SignedHeaders", "Signature"}:
        raise ValueError("authorization needs exactly Credential, SignedHeaders and Signature")
    access_key_id = parts["Credential"]
    signed_header_names = parts["SignedHeaders"].split(";")
    signature = parts["Signature"]
    if not access_key_id or "" in signed_header_names:
        raise ValueError("authorization has an empty Credential or SignedHeaders entry")
    if not _HEX_SIGNATURE.fullmatch(signature):
        raise ValueError("authorization Signature is not 64 hex digits")
    return access_key_id, signed_header_names, signature


def v1_string_to_sign(method: str, params: Mapping[str, str]) -> str:
    """``METHOD&%2F&`` followed by the encoded canonical query of every parameter but ``Signature``."""
    unsigned = {name: value for name, value in params.items() if name != "Signature"}
    return f"{method.upper()}&{percent_encode('/')}&{percent_encode(canonical_query(unsigned))}"


def v1_signature(secret: str, method: str, params: Mapping[str, str]) -> str:
    """Base64 HMAC-SHA1 over the V1 string to sign, keyed with ``secret + "&"``."""
    digest = hmac.new(f"{secret}&".encode(), v1_string_to_sign(method, params).encode("utf-8"), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")
