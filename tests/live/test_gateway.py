"""The typed facade over the vendor's API: what each operation sends and what it makes of the answer."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import httpx
import pytest

from reconciler.aliyun.client import ApiClient
from reconciler.aliyun.credentials import Credentials
from reconciler.emulator.server import running_emulator
from reconciler.errors import ReconcilerError
from reconciler.gateway import Gateway
from tests.support.emulator import make_state

CREDENTIALS = Credentials(access_key_id="testid", access_key_secret="testsecret")
T = TypeVar("T")


def answering(body: dict[str, Any], sent: list[httpx.Request] | None = None) -> httpx.MockTransport:
    """A transport that answers every request with `body` (JSON, 200) and keeps each request in `sent`."""

    def handle(request: httpx.Request) -> httpx.Response:
        if sent is not None:
            sent.append(request)
        return httpx.Response(200, json={"RequestId": "r1", **body})

    return httpx.MockTransport(handle)


def with_gateway(transport: httpx.AsyncBaseTransport, use: Callable[[Gateway], Coroutine[Any, Any, T]]) -> T:
    async def main() -> T:
        async with ApiClient("https://apigateway.cn-hangzhou.aliyuncs.com", CREDENTIALS, transport=transport,
                             allow_writes=True, max_attempts=1) as client:
            return await use(Gateway(client))

    return asyncio.run(main())


def test_writes_change_the_live_state_as_their_names_say() -> None:
    state = make_state(signatures=1, apis=3)
    group = state.describe_api_groups(None, "g0", 1, 1)[0][0].id
    apis = [a.id for a in state.describe_apis(group, None, None, 1, 10)[0]]

    async def main(url: str) -> None:
        async with ApiClient(url, CREDENTIALS, allow_writes=True) as client:
            gateway = Gateway(client)
            new_id = await gateway.create_signature("orders_backend", "ordersKey01", "ordersSecret01")
            await gateway.modify_signature(new_id, key="ordersKey02")
            await gateway.set_signature_apis(group, "RELEASE", new_id, apis)
            await gateway.remove_signature_apis(group, "RELEASE", new_id, apis[:1])
            listed = await gateway.page(gateway.signatures("orders_backend"), 1)
            assert [(s.id, s.key, s.secret.get_secret_value()) for s in listed.items] == [
                (new_id, "ordersKey02", "ordersSecret01")]  # the secret was not sent, so it stayed
            bound = await gateway.page(gateway.bindings(group, "RELEASE"), 1)
            assert sorted(b.api_id for b in bound.items) == sorted(apis[1:])
            await gateway.remove_signature_apis(group, "RELEASE", new_id, apis[1:])
            await gateway.delete_signature(new_id)
            assert (await gateway.page(gateway.signatures("orders_backend"), 1)).items == []

    with running_emulator(state, access_key_id="testid", access_key_secret="testsecret") as emulator:
        asyncio.run(main(emulator.url))


@pytest.mark.parametrize("key, secret, sent_fields", [
    ("newKey01", None, ["SignatureId", "SignatureKey"]),
    (None, "newSecret01", ["SignatureId", "SignatureSecret"]),
    ("newKey01", "newSecret01", ["SignatureId", "SignatureKey", "SignatureSecret"]),
])
def test_modify_sends_only_what_changed(key: str | None, secret: str | None, sent_fields: list[str]) -> None:
    sent: list[httpx.Request] = []
    with_gateway(answering({}, sent), lambda g: g.modify_signature("s1", key=key, secret=secret))
    assert sorted(name for name in sent[0].url.params if name.startswith("Signature")) == sent_fields


@pytest.mark.parametrize("answer", [{}, {"SignatureId": ""}, {"SignatureId": 42}, {"SignatureId": None}])
def test_a_create_answered_without_a_usable_id_is_one_clear_error(answer: dict[str, Any]) -> None:
    with pytest.raises(ReconcilerError) as caught:
        with_gateway(answering(answer), lambda g: g.create_signature("orders_backend", "ordersKey01", "s3cretValue"))
    assert str(caught.value) == "orders_backend: CreateSignature answered without a SignatureId"


def test_regions_are_listed_once_each_in_the_order_given() -> None:
    regions = {"Regions": {"Region": [{"RegionId": r} for r in ("cn-shanghai", "cn-hangzhou", "cn-shanghai")]}}
    assert with_gateway(answering(regions), lambda g: g.regions()) == ["cn-shanghai", "cn-hangzhou"]


def test_each_listing_asks_for_pages_of_the_most_the_vendor_allows() -> None:
    sent: list[httpx.Request] = []
    listings = [Gateway.signatures(), Gateway.bindings("g" * 32, "TEST"), Gateway.bindings_of_signature("s1"),
                Gateway.apis("g" * 32), Gateway.groups()]

    async def read_page_two(gateway: Gateway) -> None:
        for listing in listings:
            await gateway.page(listing, 2)

    with_gateway(answering({"TotalCount": 0}, sent), read_page_two)
    asked = [(r.headers.get("x-acs-action"), r.url.params["PageNumber"], r.url.params["PageSize"]) for r in sent]
    assert asked == [("DescribeSignatures", "2", "100"), ("DescribeApiSignatures", "2", "100"),
                     ("DescribeApisBySignature", "2", "100"), ("DescribeApis", "2", "100"),
                     ("DescribeApiGroups", "2", "50")]


def test_a_page_that_does_not_fit_names_the_operation_and_the_field() -> None:
    broken = {"TotalCount": 1, "ApiSignatures": {"ApiSignatureItem": [{"ApiId": "a1", "ApiName": "n"}]}}
    with pytest.raises(ReconcilerError) as caught:
        with_gateway(answering(broken), lambda g: g.page(g.bindings("g" * 32, "RELEASE"), 1))
    message = str(caught.value)
    assert "DescribeApiSignatures" in message
    assert "ApiSignatures.ApiSignatureItem[0].SignatureId" in message
    assert json.dumps(broken) not in message
