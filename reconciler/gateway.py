"""The vendor's API as the product uses it: one typed method per operation, over one `ApiClient`.

The fetcher and apply talk to the vendor only through `Gateway`: neither builds a request's parameters
nor reads a response body. Every answer is validated here, with pydantic, into the models below; what
does not fit fails here, as one error naming the operation (a read is retried by the client first).

Design notes:

- It lives beside the pipeline, not in `reconciler.aliyun`: that package is the transport (signing,
  credentials, retries, typed errors) for any CloudAPI action and knows no operation's shape; this module
  is the product's vocabulary of operations, their parameters and their answers.
- A listing is described by a `Listing` (the operation, its filter, where its items sit, what identifies
  one) and read a page at a time with `Gateway.page`; paging, the consistency checks and the bound on
  requests in flight are the fetcher's.
- Writes are sent with `ApiClient.call`, whose retry rules for writes are the client's; only
  CreateSignature's answer is read (the new id).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from pydantic import AliasPath, BaseModel, ConfigDict, Field, SecretStr, StrictStr, ValidationError, create_model

from reconciler.aliyun.client import ApiClient, ApiResponse
from reconciler.errors import ReconcilerError
from reconciler.vendor_rules import MAX_GROUP_PAGE_SIZE, MAX_PAGE_SIZE, STAGES, Stage

# ------------------------------------------------------------ answers (a listing's items validated a page at a time)


class _Item(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class SignatureInfo(_Item):
    """One signature, as DescribeSignatures lists it."""

    id: str = Field(alias="SignatureId")
    name: str = Field(alias="SignatureName")
    key: str = Field(alias="SignatureKey")
    secret: SecretStr = Field(alias="SignatureSecret")
    created: str | None = Field(default=None, alias="CreatedTime")
    modified: str | None = Field(default=None, alias="ModifiedTime")


class ApiSignatureItem(_Item):
    """One binding of a (group, stage), as DescribeApiSignatures lists it."""

    api_id: str = Field(alias="ApiId")
    api_name: str = Field(alias="ApiName")
    signature_id: str = Field(alias="SignatureId")
    signature_name: str = Field(alias="SignatureName")
    bound_time: str | None = Field(default=None, alias="BoundTime")


class ApiInfo(_Item):
    """One binding of a signature, as DescribeApisBySignature lists it."""

    api_id: str = Field(alias="ApiId")
    api_name: str = Field(alias="ApiName")
    group: str = Field(alias="GroupId")
    stage: Stage = Field(alias="StageName")
    bound_time: str | None = Field(default=None, alias="BoundTime")


class DeployedInfo(_Item):
    stage: str = Field(alias="StageName")
    status: str | None = Field(default=None, alias="DeployedStatus")


class ApiSummary(_Item):
    """One API of a group, as DescribeApis lists it."""

    id: str = Field(alias="ApiId")
    name: str = Field(alias="ApiName")
    group_name: str | None = Field(default=None, alias="GroupName")

    def deployed(self) -> list[Stage]:
        return []


class DeployedApiSummary(ApiSummary):
    """An API with the stages it is published in. Read only where they are needed (scan, a signature policy):
    validating DeployedInfos triples the cost of a page of 100 APIs (figures: benchmarks/README.md)."""

    deployed_infos: list[DeployedInfo] = Field(default_factory=list,
                                               validation_alias=AliasPath("DeployedInfos", "DeployedInfo"))

    def deployed(self) -> list[Stage]:
        """Stages the API is published in: a DeployedInfo with DeployedStatus DEPLOYED (the documented values
        are DEPLOYED and NONDEPLOYED); a stage name outside RELEASE, TEST and PRE is not one we can read."""
        published = [i.stage for i in self.deployed_infos if i.status == "DEPLOYED"]
        return [s for s in STAGES if s in published] if published else []


class ApiGroupAttribute(_Item):
    """One API group, as DescribeApiGroups lists it."""

    id: str = Field(alias="GroupId")
    name: str | None = Field(default=None, alias="GroupName")


class _RegionItem(_Item):
    id: str = Field(alias="RegionId")


class _Regions(ApiResponse):
    regions: list[_RegionItem] = Field(default_factory=list, validation_alias=AliasPath("Regions", "Region"))


class _CreatedSignature(_Item):
    id: StrictStr | None = Field(default=None, alias="SignatureId")


ItemT = TypeVar("ItemT", bound=_Item)


class Page(ApiResponse, Generic[ItemT]):
    """One page of a listing, validated from the response's JSON bytes in one pass (see `page_model`)."""

    total: int = Field(alias="TotalCount", ge=0, strict=True)
    items: list[ItemT] = Field(default_factory=list)


@functools.cache
def page_model(container: str, item: str, model: type[ItemT]) -> type[Page[ItemT]]:
    """The page of one listing: its items sit at ``container.item`` (``ApiSignatures.ApiSignatureItem``).

    Parsing the body with `json` and validating the items from the resulting dicts was a large share of a
    fetch's CPU; pydantic-core validating straight from the bytes costs much less (figures: "Profile
    notes" in benchmarks/README.md). A page without that list (the vendor sends an empty or absent
    container for an empty listing, and a page past the end after the listing shrank) counts as empty:
    TotalCount and the fetcher's consistency check decide whether that is right.
    """
    items: Any = Field(default_factory=list, validation_alias=AliasPath(container, item))
    return create_model(f"{container}Page", __base__=Page[model], items=(list[model], items))  # type: ignore[valid-type]


@dataclass(frozen=True)
class Listing(Generic[ItemT]):
    """One paged describe operation: what is asked, where its items are and what identifies one."""

    action: str
    params: Mapping[str, str]
    container: str
    item: str
    model: type[ItemT]
    identity: Callable[[ItemT], str]
    page_size: int = MAX_PAGE_SIZE

    @property
    def page(self) -> type[Page[ItemT]]:
        return page_model(self.container, self.item, self.model)

    def describe(self) -> str:
        scope = ", ".join(f"{k} {v}" for k, v in self.params.items())
        return f"{self.action} ({scope})" if scope else self.action


def _signature_identity(item: SignatureInfo) -> str:
    return item.id


def _binding_identity(item: ApiSignatureItem) -> str:
    return item.api_id


def _signature_binding_identity(item: ApiInfo) -> str:
    return f"{item.group}/{item.stage}/{item.api_id}"


def _api_identity(item: ApiSummary) -> str:
    return item.id


def _group_identity(item: ApiGroupAttribute) -> str:
    return item.id


class Gateway:
    """The operations the product uses, typed, through one client (one region's endpoint)."""

    def __init__(self, client: ApiClient) -> None:
        self._client = client

    @property
    def endpoint(self) -> str:
        return self._client.endpoint

    # ---------------------------------------------------------------- listings

    @staticmethod
    def signatures(name: str | None = None) -> Listing[SignatureInfo]:
        """DescribeSignatures: every signature, or those the filter `name` matches."""
        return Listing("DescribeSignatures", {} if name is None else {"SignatureName": name}, "SignatureInfos",
                       "SignatureInfo", SignatureInfo, _signature_identity)

    @staticmethod
    def bindings(group: str, stage: Stage) -> Listing[ApiSignatureItem]:
        """DescribeApiSignatures: the bindings of one (group, stage)."""
        return Listing("DescribeApiSignatures", {"GroupId": group, "StageName": stage}, "ApiSignatures",
                       "ApiSignatureItem", ApiSignatureItem, _binding_identity)

    @staticmethod
    def bindings_of_signature(signature_id: str) -> Listing[ApiInfo]:
        """DescribeApisBySignature: every binding of one signature in the region."""
        return Listing("DescribeApisBySignature", {"SignatureId": signature_id}, "ApiInfos", "ApiInfo", ApiInfo,
                       _signature_binding_identity)

    @staticmethod
    def apis(group: str, *, deployment: bool = False) -> Listing[ApiSummary]:
        """DescribeApis: the APIs of a group; with `deployment`, also the stages each is published in."""
        model: type[ApiSummary] = DeployedApiSummary if deployment else ApiSummary
        return Listing("DescribeApis", {"GroupId": group}, "ApiSummarys", "ApiSummary", model, _api_identity)

    @staticmethod
    def groups() -> Listing[ApiGroupAttribute]:
        """DescribeApiGroups: every API group of the region."""
        return Listing("DescribeApiGroups", {}, "ApiGroupAttributes", "ApiGroupAttribute", ApiGroupAttribute,
                       _group_identity, page_size=MAX_GROUP_PAGE_SIZE)

    async def page(self, listing: Listing[ItemT], number: int) -> Page[ItemT]:
        """Page `number` (from 1) of `listing`."""
        params = {**listing.params, "PageNumber": str(number), "PageSize": str(listing.page_size)}
        return await self._client.call_model(listing.action, params, listing.page)

    async def regions(self) -> list[str]:
        """DescribeRegions: every region where API Gateway is offered, once each (any regional endpoint
        answers it; the vendor documents no paging for it)."""
        answer = await self._client.call_model("DescribeRegions", {}, _Regions)
        return list(dict.fromkeys(r.id for r in answer.regions))

    # ---------------------------------------------------------------- writes

    async def create_signature(self, name: str, key: str, secret: str) -> str:
        """CreateSignature; the new signature's id."""
        body = await self._client.call("CreateSignature", {"SignatureName": name, "SignatureKey": key,
                                                           "SignatureSecret": secret})
        try:
            new_id = _CreatedSignature.model_validate(body).id
        except ValidationError:
            new_id = None
        if not new_id:
            raise ReconcilerError(f"{name}: CreateSignature answered without a SignatureId")
        return new_id

    async def modify_signature(self, signature_id: str, *, key: str | None = None,
                               secret: str | None = None) -> None:
        """ModifySignature, sending only what is given (the key, the secret, or both)."""
        params = {"SignatureId": signature_id}
        if key is not None:
            params["SignatureKey"] = key
        if secret is not None:
            params["SignatureSecret"] = secret
        await self._client.call("ModifySignature", params)

    async def delete_signature(self, signature_id: str) -> None:
        await self._client.call("DeleteSignature", {"SignatureId": signature_id})

    async def set_signature_apis(self, group: str, stage: Stage, signature_id: str, api_ids: Sequence[str]) -> None:
        """SetSignatureApis: bind `api_ids` (at most `MAX_APIS_PER_CALL`) of one (group, stage) to a signature."""
        await self._client.call("SetSignatureApis", {"GroupId": group, "SignatureId": signature_id,
                                                     "StageName": stage, "ApiIds": ",".join(api_ids)})

    async def remove_signature_apis(self, group: str, stage: Stage, signature_id: str,
                                    api_ids: Sequence[str]) -> None:
        """RemoveSignatureApis: unbind `api_ids` (at most `MAX_APIS_PER_CALL`) of one (group, stage) from a
        signature."""
        await self._client.call("RemoveSignatureApis", {"GroupId": group, "SignatureId": signature_id,
                                                        "StageName": stage, "ApiIds": ",".join(api_ids)})
