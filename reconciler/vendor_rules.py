"""The vendor's facts the product relies on (CloudAPI 2016-07-14), in one place: region ids and the
endpoint of a region, the time format, stages, the rules for names, keys, secrets and ids, and the
most a page or a call holds.

The manifest loader checks the rules so that a PR fails before apply would; the emulator enforces
them as the real endpoint does; the client, the fetcher and apply take the rest from here.

Signature names: the English CreateSignature reference says letters, digits and ``_``; the Chinese
reference (and ROS's ``ALIYUN::ApiGateway::Signature``) also allows Chinese characters, the first
character included. Chinese characters are taken as the CJK Unified Ideographs block (U+4E00-U+9FFF);
lengths count characters.

Stages: SetSignatureApis documents RELEASE, PRE and TEST, but DescribeApiSignatures and
RemoveSignatureApis document only RELEASE and TEST, so a PRE binding can be made but neither read back
nor removed through a documented call: the product manages RELEASE and TEST only (``MANAGED_STAGES``).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Literal

from reconciler.errors import InputError

# Region ids (cn-hangzhou, ap-southeast-1); each region has its own endpoint.
REGION_RULE = re.compile(r"[a-z]{2,}(-[a-z0-9]+)+")


def endpoint_for_region(region: str) -> str:
    """``https://apigateway.<region>.aliyuncs.com``; ``InputError`` for something that is no region id."""
    if not REGION_RULE.fullmatch(region):
        raise InputError(f"region {region!r} is not a region id such as cn-hangzhou")
    return f"https://apigateway.{region}.aliyuncs.com"


# UTC ``YYYY-MM-DDThh:mm:ssZ``: the form both signing algorithms require, and the API's own times.
TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def format_timestamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime(TIMESTAMP_FORMAT)


def timestamp_now() -> str:
    """The current time as the API writes times (`TIMESTAMP_FORMAT`)."""
    return format_timestamp(datetime.now(UTC))


# The stages of an API group (DescribeApiSignatures' StageName).
Stage = Literal["RELEASE", "TEST", "PRE"]
STAGES: tuple[Stage, ...] = ("RELEASE", "TEST", "PRE")

SIGNATURE_NAME_RULE = re.compile(r"[A-Za-z\u4e00-\u9fff][A-Za-z0-9_\u4e00-\u9fff]{3,49}")
SIGNATURE_KEY_RULE = re.compile(r"[A-Za-z][A-Za-z0-9_]{5,19}")
SIGNATURE_SECRET_RULE = re.compile(r"[A-Za-z][A-Za-z0-9_@#!*]{5,29}")

SIGNATURE_NAME_HINT = ("4-50 characters: letters, Chinese characters, digits or '_', "
                       "starting with a letter or a Chinese character")
SIGNATURE_KEY_HINT = "6-20 characters: letters, digits or '_', starting with a letter"
SIGNATURE_SECRET_HINT = "6-30 characters: letters, digits or _ @ # ! *, starting with a letter"

# Stages whose bindings the vendor documents reading (DescribeApiSignatures) and removing (RemoveSignatureApis).
MANAGED_STAGES: tuple[Stage, ...] = ("RELEASE", "TEST")
UNMANAGED_STAGE_HINT = ("the vendor documents reading (DescribeApiSignatures) and removing (RemoveSignatureApis) "
                        "bindings only for RELEASE and TEST")

# API names (the vendor SDK's CreateApiRequest): 4-50 characters, letters, digits or '_', starting with a letter;
# Chinese characters as for signature names. Ids (GroupId, ApiId) are 32 lowercase hex characters. A live value
# outside these rules is still shown (escaped, and marked as breaking the rule): the live state is read, not trusted.
API_NAME_RULE = re.compile(r"[A-Za-z\u4e00-\u9fff][A-Za-z0-9_\u4e00-\u9fff]{3,49}")
RESOURCE_ID_RULE = re.compile(r"[0-9a-f]{32}")

# Listings are read a page at a time: 100 items at most (DescribeApiGroups: 50). SetSignatureApis and
# RemoveSignatureApis take at most 100 ApiIds a call.
MAX_PAGE_SIZE = 100
MAX_GROUP_PAGE_SIZE = 50
MAX_APIS_PER_CALL = 100
