"""The CloudAPI 2016-07-14 operations the emulator serves: parameters in, response bodies out.

Parameter rules (vendor templates; HTTP 400 unless noted):

- A required parameter absent or empty: ``Missing<Param>`` (e.g. ``MissingGroupId``).
- ``PageNumber`` must be an integer >= 1, ``PageSize`` an integer from 1 to the operation's
  maximum (100; 50 for DescribeApiGroups), else ``InvalidPageNumber`` / ``InvalidPageSize``.
  Defaults: 1 and 10. A page beyond the end is an empty list with the real ``TotalCount``.
- ``StageName`` is upper case and one of the values the operation's reference documents, else
  ``InvalidStageName``: ``RELEASE``, ``PRE`` or ``TEST`` for SetSignatureApis (and the DescribeApis
  filter), only ``RELEASE`` or ``TEST`` for DescribeApiSignatures and RemoveSignatureApis. How the live
  service answers PRE to those two is not documented; the emulator refuses it (its own choice of answer),
  so nothing can be built on reading or removing PRE bindings.
- ``ApiIds`` is a comma-separated list of at most 100 ids (``InvalidApiIds`` beyond); repeated ids
  count once.
- SignatureName / SignatureKey / SignatureSecret follow the vendor's character rules
  (``InvalidSignatureName`` ...); see `state.validate_signature_fields`.
- ``NotFoundApiGroup`` / ``NotFoundSignature`` / ``NotFoundApi`` (HTTP 404) for unknown ids given to
  DescribeApiSignatures and the writes. For DescribeApiGroups and DescribeApis, ``GroupId`` and the
  other parameters are filters: no match is an empty list.
- ``SignatureId`` / ``SignatureName`` of DescribeSignatures may each be a comma-separated list.

DescribeRegions lists the regions of the account being emulated (`EmulatorState.account_regions`:
the state file's region, or every region an embedded run was given a state file for), each with
``RegionId``, ``LocalName`` and ``RegionEndpoint`` as the vendor's reference shows them; any regional
endpoint answers it. The reference does not say how ``Language`` changes ``LocalName``; the emulator
takes ``zh-CN``, ``en`` and ``ja`` (anything else is ``InvalidLanguage``) and answers with the region id
as its name in each.

DescribeApis reports, for each API, ``DeployedInfos.DeployedInfo[]`` {StageName, DeployedStatus,
EffectiveVersion}: the reference documents StageName RELEASE and TEST and DeployedStatus
``DEPLOYED`` / ``NONDEPLOYED``. It is silent on whether a stage the API was never published to is
listed; the emulator lists RELEASE and TEST always (NONDEPLOYED where not published) and PRE only when
the API is published there. It is silent on EffectiveVersion's format; the emulator sends a fixed
version for a published stage and an empty string otherwise.

Parameters the emulator does not know are ignored, as the vendor ignores unknown ones.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from reconciler.emulator.apierror import invalid, missing
from reconciler.emulator.state import (
    DEFAULT_TIME,
    ApiRecord,
    EmulatorState,
    GroupRecord,
    SignatureRecord,
    validate_signature_fields,
)
from reconciler.vendor_rules import (
    MANAGED_STAGES,
    MAX_APIS_PER_CALL,
    MAX_GROUP_PAGE_SIZE,
    MAX_PAGE_SIZE,
    STAGES,
    Stage,
)

DEFAULT_PAGE_SIZE = 10

Body = dict[str, Any]


class Params:
    """One request's parameters, read the vendor's way."""

    def __init__(self, values: Mapping[str, str]) -> None:
        self._values = values

    def optional(self, name: str) -> str | None:
        value = self._values.get(name)
        return value if value else None

    def required(self, name: str) -> str:
        value = self.optional(name)
        if value is None:
            raise missing(name)
        return value

    def stage(self, documented: tuple[Stage, ...] = STAGES) -> Stage:
        value = self.required("StageName")
        for stage in documented:
            if value == stage:
                return stage
        raise invalid("StageName", f"{value!r} is not one of {', '.join(documented)}")

    def optional_stage(self) -> Stage | None:
        return self.stage() if self.optional("StageName") is not None else None

    def _positive_int(self, name: str, default: int, maximum: int | None) -> int:
        raw = self.optional(name)
        if raw is None:
            return default
        try:
            value = int(raw)
        except ValueError:
            raise invalid(name, f"{raw!r} is not an integer") from None
        if value < 1 or (maximum is not None and value > maximum):
            limit = f"from 1 to {maximum}" if maximum is not None else "1 or more"
            raise invalid(name, f"{value} is out of range ({limit})")
        return value

    def page(self, max_size: int) -> tuple[int, int]:
        return (self._positive_int("PageNumber", 1, None),
                self._positive_int("PageSize", DEFAULT_PAGE_SIZE, max_size))

    def id_list(self, name: str) -> list[str]:
        raw = self.optional(name) or ""
        ids = list(dict.fromkeys(item.strip() for item in raw.split(",") if item.strip()))
        if len(ids) > MAX_APIS_PER_CALL:
            raise invalid(name, f"{len(ids)} ids given; at most {MAX_APIS_PER_CALL} are allowed")
        return ids


def _paged(page_number: int, page_size: int, total: int, list_name: str, item_name: str,
           items: list[Body]) -> Body:
    return {"PageNumber": page_number, "PageSize": page_size, "TotalCount": total,
            list_name: {item_name: items}}


def _signature_info(record: SignatureRecord, region: str) -> Body:
    return {
        "SignatureId": record.id,
        "SignatureName": record.name,
        "SignatureKey": record.key,
        "SignatureSecret": record.secret,
        "RegionId": region,
        "CreatedTime": record.created,
        "ModifiedTime": record.modified,
    }


def _group_attribute(group: GroupRecord, region: str) -> Body:
    return {
        "GroupId": group.id,
        "GroupName": group.name,
        "RegionId": region,
        "SubDomain": f"{group.id}-{region}.alicloudapi.com",
        "BasePath": "/",
        "Description": "",
        "CreatedTime": DEFAULT_TIME,
        "ModifiedTime": DEFAULT_TIME,
        "InstanceId": "api-shared-vpc-001",
        "InstanceType": "VPC_SHARED",
        "BillingStatus": "NORMAL",
        "IllegalStatus": "NORMAL",
        "HttpsPolicy": "HTTPS2_TLS1_0",
        "TrafficLimit": 500,
        "Tags": {"TagInfo": []},
    }


EFFECTIVE_VERSION = "20240101000000000"
LANGUAGES = ("zh-CN", "en", "ja")


def deployed_infos(api: ApiRecord) -> Body:
    """The ``DeployedInfos`` of one API (see the module docstring)."""
    stages = [s for s in STAGES if s != "PRE" or s in api.deployed]
    return {"DeployedInfo": [
        {"StageName": stage,
         "DeployedStatus": "DEPLOYED" if stage in api.deployed else "NONDEPLOYED",
         "EffectiveVersion": EFFECTIVE_VERSION if stage in api.deployed else ""}
        for stage in stages]}


def _api_summary(api: ApiRecord, group: GroupRecord, region: str) -> Body:
    return {
        "RegionId": region,
        "GroupId": group.id,
        "GroupName": group.name,
        "ApiId": api.id,
        "ApiName": api.name,
        "ApiMethod": "GET",
        "ApiPath": f"/{api.name}",
        "Visibility": "PRIVATE",
        "Description": "",
        "CreatedTime": DEFAULT_TIME,
        "ModifiedTime": DEFAULT_TIME,
        # The stages the state file says the API is published in (see the module docstring).
        "DeployedInfos": deployed_infos(api),
        "TagList": {"Tag": []},
    }


def describe_signatures(state: EmulatorState, params: Params) -> Body:
    page_number, page_size = params.page(MAX_PAGE_SIZE)
    records, total = state.describe_signatures(
        params.id_list("SignatureId"), params.id_list("SignatureName"), page_number, page_size
    )
    items = [_signature_info(r, state.region) for r in records]
    return _paged(page_number, page_size, total, "SignatureInfos", "SignatureInfo", items)


def describe_api_signatures(state: EmulatorState, params: Params) -> Body:
    group_id = params.required("GroupId")
    stage = params.stage(MANAGED_STAGES)
    api_ids = params.id_list("ApiIds")
    page_number, page_size = params.page(MAX_PAGE_SIZE)
    bindings, total = state.describe_api_signatures(group_id, stage, api_ids, page_number, page_size)
    items = [
        {"ApiId": b.api.id, "ApiName": b.api.name, "SignatureId": b.signature.id,
         "SignatureName": b.signature.name, "BoundTime": b.bound_time}
        for b in bindings
    ]
    return _paged(page_number, page_size, total, "ApiSignatures", "ApiSignatureItem", items)


def describe_api_groups(state: EmulatorState, params: Params) -> Body:
    page_number, page_size = params.page(MAX_GROUP_PAGE_SIZE)
    groups, total = state.describe_api_groups(
        params.optional("GroupId"), params.optional("GroupName"), page_number, page_size
    )
    items = [_group_attribute(g, state.region) for g in groups]
    return _paged(page_number, page_size, total, "ApiGroupAttributes", "ApiGroupAttribute", items)


def describe_apis(state: EmulatorState, params: Params) -> Body:
    params.optional_stage()
    page_number, page_size = params.page(MAX_PAGE_SIZE)
    apis, total = state.describe_apis(
        params.optional("GroupId"), params.optional("ApiId"), params.optional("ApiName"), page_number, page_size
    )
    items = [_api_summary(a, state.group_of(a), state.region) for a in apis]
    return _paged(page_number, page_size, total, "ApiSummarys", "ApiSummary", items)


def describe_regions(state: EmulatorState, params: Params) -> Body:
    language = params.optional("Language")
    if language is not None and language not in LANGUAGES:
        raise invalid("Language", f"{language!r} is not one of {', '.join(LANGUAGES)}")
    return {"Regions": {"Region": [
        {"RegionId": region, "LocalName": region, "RegionEndpoint": f"apigateway.{region}.aliyuncs.com"}
        for region in state.account_regions]}}


def describe_apis_by_signature(state: EmulatorState, params: Params) -> Body:
    signature_id = params.required("SignatureId")
    page_number, page_size = params.page(MAX_PAGE_SIZE)
    found, total = state.describe_apis_by_signature(signature_id, page_number, page_size)
    items = []
    for stage, binding in found:
        group = state.group_of(binding.api)
        items.append({"RegionId": state.region, "GroupId": group.id, "GroupName": group.name,
                      "ApiId": binding.api.id, "ApiName": binding.api.name, "StageName": stage,
                      "Visibility": "PRIVATE", "Description": "", "BoundTime": binding.bound_time})
    return _paged(page_number, page_size, total, "ApiInfos", "ApiInfo", items)


def create_signature(state: EmulatorState, params: Params) -> Body:
    name = params.required("SignatureName")
    key = params.required("SignatureKey")
    secret = params.required("SignatureSecret")
    validate_signature_fields(name, key, secret)
    record = state.create_signature(name, key, secret)
    return {"SignatureId": record.id, "SignatureName": record.name}


def modify_signature(state: EmulatorState, params: Params) -> Body:
    signature_id = params.required("SignatureId")
    name = params.optional("SignatureName")
    key = params.optional("SignatureKey")
    secret = params.optional("SignatureSecret")
    validate_signature_fields(name, key, secret)
    record = state.modify_signature(signature_id, name, key, secret)
    return {"SignatureId": record.id, "SignatureName": record.name}


def delete_signature(state: EmulatorState, params: Params) -> Body:
    state.delete_signature(params.required("SignatureId"))
    return {}


def set_signature_apis(state: EmulatorState, params: Params) -> Body:
    group_id = params.required("GroupId")
    signature_id = params.required("SignatureId")
    stage = params.stage()
    api_ids = params.id_list("ApiIds")
    if not api_ids:
        raise missing("ApiIds")
    state.set_signature_apis(group_id, signature_id, stage, api_ids)
    return {}


def remove_signature_apis(state: EmulatorState, params: Params) -> Body:
    group_id = params.required("GroupId")
    signature_id = params.required("SignatureId")
    stage = params.stage(MANAGED_STAGES)
    api_ids = params.id_list("ApiIds")
    state.remove_signature_apis(group_id, signature_id, stage, api_ids or None)
    return {}


OPERATIONS: Mapping[str, Callable[[EmulatorState, Params], Body]] = {
    "DescribeSignatures": describe_signatures,
    "DescribeApiSignatures": describe_api_signatures,
    "DescribeApiGroups": describe_api_groups,
    "DescribeApis": describe_apis,
    "DescribeApisBySignature": describe_apis_by_signature,
    "DescribeRegions": describe_regions,
    "CreateSignature": create_signature,
    "ModifySignature": modify_signature,
    "DeleteSignature": delete_signature,
    "SetSignatureApis": set_signature_apis,
    "RemoveSignatureApis": remove_signature_apis,
}
