"""ApiClient behaviour over an in-process transport: requests, retries, deadline, errors, logs."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import httpx
import pytest
from pydantic import SecretStr

from reconciler.aliyun.client import ApiClient, validate_endpoint
from reconciler.aliyun.credentials import Credentials
from reconciler.aliyun.errors import (
    ApiError,
    AuthenticationError,
    DeadlineExceeded,
    InvalidParameterError,
    NotFoundError,
    RepeatedCommitError,
    ServerError,
    ThrottlingError,
    TransportError,
    WriteNotAllowed,
)
from reconciler.aliyun.signing import parse_v3_authorization, v3_canonical_request, v3_signature
from reconciler.errors import InputError
from reconciler.vendor_rules import endpoint_for_region

ACCESS_KEY_SECRET = "AkSecretNeverLogged"
SECURITY_TOKEN = "StsTokenNeverLogged"
CREDENTIALS = Credentials(access_key_id="testid", access_key_secret=SecretStr(ACCESS_KEY_SECRET))
STS_CREDENTIALS = Credentials(
    access_key_id="STS.testid",
    access_key_secret=SecretStr(ACCESS_KEY_SECRET),
    security_token=SecretStr(SECURITY_TOKEN),
)
OK = {"RequestId": "req-ok", "TotalCount": 0}

Handler = Callable[[httpx.Request], httpx.Response] | Callable[[httpx.Request], Coroutine[Any, Any, httpx.Response]]


T = TypeVar("T")


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coroutine)


def vendor_error(status: int, code: str, message: str = "m", **headers: str) -> httpx.Response:
    body = {"Code": code, "Message": message, "RequestId": "req-err", "HostId": "h"}
    return httpx.Response(status, json=body, headers=headers)


class Recorder:
    """A transport handler that answers from a script (last answer repeats) and keeps the requests."""

    def __init__(self, *answers: httpx.Response | Exception) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        return answer


class Sleeps:
    """An injectable sleep that records the delays instead of waiting."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


def client(handler: Handler | Recorder, *, credentials: Credentials = CREDENTIALS, **options: Any) -> ApiClient:
    options.setdefault("sleep", Sleeps())
    return ApiClient("http://127.0.0.1:8080", credentials, transport=httpx.MockTransport(handler), **options)


async def call(api: ApiClient, action: str, params: dict[str, str | int] | None = None) -> dict[str, Any]:
    async with api:
        return await api.call(action, params or {})


def test_a_call_posts_slash_with_the_parameters_in_the_signed_query_and_returns_the_body() -> None:
    recorder = Recorder(httpx.Response(200, json=OK))
    body = run(call(client(recorder), "DescribeSignatures", {"PageNumber": 2, "SignatureName": "my sig"}))
    assert body == OK
    [sent] = recorder.requests
    assert (sent.method, sent.url.path, sent.content) == ("POST", "/", b"")
    assert sent.url.query == b"PageNumber=2&SignatureName=my%20sig"
    assert sent.headers["x-acs-action"] == "DescribeSignatures"
    assert sent.headers["x-acs-version"] == "2016-07-14"
    assert sent.headers["accept"] == "application/json"
    _, names, signature = parse_v3_authorization(sent.headers["authorization"])
    canonical = v3_canonical_request(
        "POST", "/", dict(sent.url.params), sent.headers, names, sent.headers["x-acs-content-sha256"]
    )
    assert v3_signature(ACCESS_KEY_SECRET, canonical) == signature


def test_v1_client_sends_the_action_and_signature_in_the_query() -> None:
    recorder = Recorder(httpx.Response(200, json=OK))
    run(call(client(recorder, signature_version="v1"), "DescribeApiSignatures", {"GroupId": "g"}))
    params = recorder.requests[0].url.params
    assert (params["Action"], params["GroupId"], params["Format"]) == ("DescribeApiSignatures", "g", "JSON")
    assert "Signature" in params


RETRYABLE_READ_FAILURES = [
    pytest.param(vendor_error(400, "Throttling.User"), id="Throttling.User"),
    pytest.param(vendor_error(400, "Throttling"), id="Throttling"),
    pytest.param(vendor_error(429, "Throttling.Api"), id="429"),
    pytest.param(httpx.Response(429, text="slow down"), id="429-plain"),
    pytest.param(vendor_error(500, "InternalError"), id="500"),
    pytest.param(vendor_error(503, "ServiceUnavailable"), id="503"),
    pytest.param(httpx.Response(502, text="<html>bad gateway</html>"), id="502-html"),
    pytest.param(httpx.ConnectError("refused"), id="connect-error"),
    pytest.param(httpx.ReadTimeout("slow"), id="read-timeout"),
    pytest.param(httpx.RemoteProtocolError("dropped"), id="dropped"),
]


@pytest.mark.parametrize("failure", RETRYABLE_READ_FAILURES)
def test_reads_are_retried_on_transient_failures(failure: httpx.Response | Exception) -> None:
    recorder = Recorder(failure, httpx.Response(200, json=OK))
    api = client(recorder)
    assert run(call(api, "DescribeApiSignatures")) == OK
    assert len(recorder.requests) == 2


@pytest.mark.parametrize(
    ("failure", "error_class"),
    [
        (vendor_error(400, "SignatureDoesNotMatch"), AuthenticationError),
        (vendor_error(404, "InvalidAccessKeyId.NotFound"), AuthenticationError),
        (vendor_error(400, "IncompleteSignature"), AuthenticationError),
        (vendor_error(400, "SignatureNonceUsed"), AuthenticationError),
        (vendor_error(400, "InvalidTimeStamp.Expired"), AuthenticationError),
        (vendor_error(400, "MissingGroupId"), InvalidParameterError),
        (vendor_error(400, "InvalidFormatApiIds"), InvalidParameterError),
        (vendor_error(400, "InvalidSignatureSecret"), InvalidParameterError),
        (vendor_error(404, "NotFoundSignature"), NotFoundError),
        (vendor_error(400, "RepeatedSignatureName"), ApiError),
        (vendor_error(501, "NotImplemented"), ServerError),
        (httpx.Response(403, text="forbidden"), TransportError),
    ],
)
def test_reads_are_not_retried_on_errors_a_retry_cannot_fix(
    failure: httpx.Response, error_class: type[ApiError]
) -> None:
    recorder = Recorder(failure, httpx.Response(200, json=OK))
    with pytest.raises(ApiError) as caught:
        run(call(client(recorder), "DescribeSignatures"))
    assert type(caught.value) is error_class
    assert len(recorder.requests) == 1


@pytest.mark.parametrize(
    "failure",
    [
        pytest.param(vendor_error(400, "Throttling.User"), id="throttling"),
        pytest.param(vendor_error(503, "ServiceUnavailable"), id="503"),
        pytest.param(httpx.ConnectError("refused"), id="connect-error"),
        pytest.param(httpx.ConnectTimeout("no route"), id="connect-timeout"),
    ],
)
def test_writes_are_retried_only_when_they_certainly_did_not_happen(failure: httpx.Response | Exception) -> None:
    recorder = Recorder(failure, httpx.Response(200, json={"RequestId": "r", "SignatureId": "s1"}))
    body = run(call(client(recorder, allow_writes=True), "CreateSignature", {"SignatureName": "n"}))
    assert body["SignatureId"] == "s1"
    assert len(recorder.requests) == 2


@pytest.mark.parametrize(
    ("failure", "error_class"),
    [
        (vendor_error(400, "RepeatedCommit"), RepeatedCommitError),
        (vendor_error(500, "InternalError"), ServerError),
        (httpx.Response(502, text="bad gateway"), ServerError),
        (httpx.ReadTimeout("slow"), TransportError),
        (httpx.RemoteProtocolError("dropped"), TransportError),
    ],
)
def test_writes_are_not_retried_when_they_may_have_happened(
    failure: httpx.Response | Exception, error_class: type[ApiError]
) -> None:
    recorder = Recorder(failure, httpx.Response(200, json=OK))
    with pytest.raises(error_class):
        run(call(client(recorder, allow_writes=True), "DeleteSignature", {"SignatureId": "s1"}))
    assert len(recorder.requests) == 1


def test_every_retry_is_signed_afresh() -> None:
    recorder = Recorder(
        vendor_error(400, "Throttling"), vendor_error(503, "ServiceUnavailable"), httpx.Response(200, json=OK)
    )
    run(call(client(recorder), "DescribeSignatures"))
    nonces = {r.headers["x-acs-signature-nonce"] for r in recorder.requests}
    signatures = {r.headers["authorization"] for r in recorder.requests}
    assert len(nonces) == len(signatures) == 3


def test_every_v1_retry_has_a_new_signature_nonce() -> None:
    recorder = Recorder(vendor_error(400, "Throttling"), httpx.Response(200, json=OK))
    run(call(client(recorder, signature_version="v1"), "DescribeSignatures"))
    first, second = (r.url.params for r in recorder.requests)
    assert first["SignatureNonce"] != second["SignatureNonce"]
    assert first["Signature"] != second["Signature"]


class TopOfRange(random.Random):
    """Jitter pinned to the ceiling, so the exponential schedule is visible."""

    def uniform(self, a: float, b: float) -> float:
        return b


def test_backoff_is_capped_exponential_with_full_jitter() -> None:
    sleeps = Sleeps()
    recorder = Recorder(vendor_error(400, "Throttling"))
    api = client(recorder, sleep=sleeps, rng=TopOfRange(), retry_base_delay=0.1, retry_max_delay=0.4, max_attempts=6)
    with pytest.raises(ThrottlingError) as caught:
        run(call(api, "DescribeSignatures"))
    assert sleeps.delays == pytest.approx([0.1, 0.2, 0.4, 0.4, 0.4])
    assert len(recorder.requests) == 6
    assert str(caught.value) == "DescribeSignatures failed: Throttling: m (RequestId req-err, after 6 attempts)"

    jittered = Sleeps()
    api = client(Recorder(vendor_error(400, "Throttling")), sleep=jittered, rng=random.Random(7), retry_base_delay=0.1)
    with pytest.raises(ThrottlingError):
        run(call(api, "DescribeApis"))
    assert all(0 <= delay <= min(10.0, 0.1 * 2**i) for i, delay in enumerate(jittered.delays))
    assert len(set(jittered.delays)) == len(jittered.delays) == 7


def test_x_acs_retry_after_sets_the_least_wait() -> None:
    sleeps = Sleeps()
    recorder = Recorder(
        vendor_error(400, "Throttling.User", **{"x-acs-retry-after": "1500"}), httpx.Response(200, json=OK)
    )
    run(call(client(recorder, sleep=sleeps, retry_base_delay=0.001), "DescribeSignatures"))
    assert sleeps.delays == [1.5]


def test_a_retry_after_beyond_the_deadline_fails_at_once() -> None:
    sleeps = Sleeps()
    recorder = Recorder(vendor_error(400, "Throttling.User", "busy", **{"x-acs-retry-after": "60000"}))
    with pytest.raises(DeadlineExceeded) as caught:
        run(call(client(recorder, sleep=sleeps, deadline=5.0), "DescribeSignatures"))
    assert sleeps.delays == []
    assert str(caught.value) == (
        "DescribeSignatures failed: deadline of 5s exceeded after 1 attempt(s); "
        "last error: Throttling.User: busy (RequestId req-err)"
    )


def test_the_deadline_bounds_all_retries_together() -> None:
    recorder = Recorder(vendor_error(503, "ServiceUnavailable"))
    api = client(recorder, sleep=asyncio.sleep, deadline=0.2, retry_base_delay=0.02, max_attempts=1000)
    started = time.monotonic()
    with pytest.raises(DeadlineExceeded, match="last error: ServiceUnavailable"):
        run(call(api, "DescribeSignatures"))
    assert time.monotonic() - started < 1.0
    assert len(recorder.requests) > 1


def test_the_deadline_cuts_off_a_request_in_flight_and_says_a_write_outcome_is_unknown() -> None:
    async def hang(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(30)
        return httpx.Response(200, json=OK)

    started = time.monotonic()
    with pytest.raises(DeadlineExceeded) as caught:
        run(call(client(hang, deadline=0.05, allow_writes=True), "SetSignatureApis", {"ApiIds": "a"}))
    assert time.monotonic() - started < 1.0
    assert str(caught.value) == (
        "SetSignatureApis failed: deadline of 0.05s exceeded after 1 attempt(s); the outcome of the write is unknown"
    )


@pytest.mark.parametrize("action", ["CreateSignature", "ModifySignature", "DeleteSignature", "SetSignatureApis"])
def test_writes_are_refused_before_sending_unless_allowed(action: str) -> None:
    recorder = Recorder(httpx.Response(200, json=OK))
    api = client(recorder)
    with pytest.raises(WriteNotAllowed) as caught:
        run(call(api, action))
    assert str(caught.value) == f"{action} failed: refused: this client is read-only and writes were not enabled"
    assert recorder.requests == []


def test_an_error_is_one_line_naming_operation_code_message_and_request_id() -> None:
    message = "Request was denied due to user flow control."
    recorder = Recorder(vendor_error(400, "Throttling.User", message))
    with pytest.raises(ThrottlingError) as caught:
        run(call(client(recorder, max_attempts=1), "DescribeApiSignatures"))
    error = caught.value
    assert str(error) == f"DescribeApiSignatures failed: Throttling.User: {message} (RequestId req-err)"
    assert (error.action, error.code, error.request_id, error.status) == (
        "DescribeApiSignatures",
        "Throttling.User",
        "req-err",
        400,
    )


def test_a_multi_line_server_message_becomes_one_line() -> None:
    recorder = Recorder(vendor_error(400, "InvalidParameter", "bad\n  value\n"))
    with pytest.raises(InvalidParameterError) as caught:
        run(call(client(recorder), "DescribeApis"))
    assert str(caught.value) == "DescribeApis failed: InvalidParameter: bad value (RequestId req-err)"


def test_a_connection_failure_names_its_cause() -> None:
    recorder = Recorder(httpx.ConnectError("All connection attempts failed"))
    with pytest.raises(TransportError) as caught:
        run(call(client(recorder, max_attempts=2), "DescribeSignatures"))
    assert str(caught.value) == (
        "DescribeSignatures failed: ConnectError: All connection attempts failed (after 2 attempts)"
    )


def test_a_non_json_body_names_the_content_type() -> None:
    recorder = Recorder(httpx.Response(200, text="<html/>", headers={"content-type": "text/html"}))
    with pytest.raises(TransportError) as caught:
        run(call(client(recorder, max_attempts=1), "DescribeSignatures"))
    assert str(caught.value) == "DescribeSignatures failed: HTTP 200 with content type 'text/html' instead of JSON"


@pytest.mark.parametrize(
    "garbled",
    [
        httpx.Response(200, text="<html>login</html>", headers={"content-type": "text/html"}),
        httpx.Response(200, text="{not json", headers={"content-type": "application/json"}),
        httpx.Response(200, json=[1, 2]),
        httpx.Response(200, text='{"RequestId": "r"}', headers={"content-type": "text/plain"}),
        httpx.Response(200, json={"TotalCount": 1}),
    ],
)
def test_a_garbled_success_is_retried_for_a_read_and_not_for_a_write(garbled: httpx.Response) -> None:
    read = Recorder(garbled, httpx.Response(200, json=OK))
    assert run(call(client(read), "DescribeSignatures")) == OK
    assert len(read.requests) == 2
    write = Recorder(garbled, httpx.Response(200, json=OK))
    with pytest.raises(TransportError):
        run(call(client(write, allow_writes=True), "DeleteSignature", {"SignatureId": "s"}))
    assert len(write.requests) == 1


@pytest.mark.parametrize(
    ("url", "normalised"),
    [
        ("https://apigateway.cn-hangzhou.aliyuncs.com", "https://apigateway.cn-hangzhou.aliyuncs.com"),
        ("https://apigateway.cn-hangzhou.aliyuncs.com/", "https://apigateway.cn-hangzhou.aliyuncs.com"),
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
        ("http://127.8.9.10:1", "http://127.8.9.10:1"),
        ("http://localhost:9000/", "http://localhost:9000"),
        ("http://[::1]:8080", "http://[::1]:8080"),
    ],
)
def test_accepted_endpoints(url: str, normalised: str) -> None:
    assert validate_endpoint(url) == normalised


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://apigateway.cn-hangzhou.aliyuncs.com", "plain http to a host that is not loopback"),
        ("http://10.0.0.1:8080", "plain http to a host that is not loopback"),
        ("http://128.0.0.1", "plain http to a host that is not loopback"),
        ("http://localhost.example.com", "plain http to a host that is not loopback"),
        ("apigateway.cn-hangzhou.aliyuncs.com", "must be an https:// URL"),
        ("ftp://127.0.0.1", "must be an https:// URL"),
        ("https://host/path", "without a path or query"),
        ("https://host/?a=1", "without a path or query"),
        ("https://user:pw@host", "must not contain a user name or password"),
    ],
)
def test_refused_endpoints(url: str, message: str) -> None:
    with pytest.raises(InputError, match=message) as caught:
        validate_endpoint(url)
    assert "pw" not in str(caught.value)


def test_the_client_refuses_plain_http_to_a_remote_host() -> None:
    with pytest.raises(InputError, match="not loopback"):
        ApiClient("http://apigateway.cn-hangzhou.aliyuncs.com", CREDENTIALS)


def test_endpoint_for_region() -> None:
    assert endpoint_for_region("cn-hangzhou") == "https://apigateway.cn-hangzhou.aliyuncs.com"
    assert endpoint_for_region("ap-southeast-1") == "https://apigateway.ap-southeast-1.aliyuncs.com"
    with pytest.raises(InputError, match="'cn hangzhou' is not a region id"):
        endpoint_for_region("cn hangzhou")


def test_debug_logs_show_the_exchange_but_no_secret(caplog: pytest.LogCaptureFixture) -> None:
    signature_secret = "Sig_Secret_Value1"
    echo = vendor_error(400, "InvalidSignatureSecret", f"SignatureSecret {signature_secret} is weak")
    recorder = Recorder(vendor_error(400, "Throttling"), httpx.Response(200, json=OK), echo)
    caplog.set_level(logging.DEBUG, logger="reconciler.aliyun")
    caplog.set_level(logging.DEBUG, logger="httpx")

    async def scenario() -> str:
        async with client(recorder, credentials=STS_CREDENTIALS, allow_writes=True) as api:
            params = {"SignatureName": "orders", "SignatureKey": "ordersKey", "SignatureSecret": signature_secret}
            await api.call("CreateSignature", params)
            with pytest.raises(InvalidParameterError) as caught:
                await api.call("ModifySignature", {"SignatureId": "s1", "SignatureSecret": signature_secret})
            return str(caught.value)

    error_text = run(scenario())
    logs = caplog.text
    assert "CreateSignature attempt 1" in logs and "CreateSignature attempt 2" in logs
    assert "SignatureName=orders" in logs
    assert "CreateSignature attempt 1: HTTP 400 RequestId req-err: Throttling" in logs
    assert "CreateSignature attempt 2: HTTP 200 RequestId req-ok" in logs
    assert "'authorization': '<redacted>'" in logs and "SignatureSecret=<redacted>" in logs
    for secret in (signature_secret, ACCESS_KEY_SECRET, SECURITY_TOKEN, "ACS3-HMAC-SHA256 Credential"):
        assert secret not in logs
    assert error_text == (
        "ModifySignature failed: InvalidSignatureSecret: SignatureSecret <redacted> is weak (RequestId req-err)"
    )
    assert signature_secret not in error_text


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"RequestId": "r", "TotalCount": 1', "HTTP 200 with a body that is not valid JSON"),
        (b'[1, 2]', "HTTP 200 with a JSON body that is not an object"),
        (b'{"TotalCount": 0}', "HTTP 200 with a body that has no RequestId"),
    ],
)
def test_a_malformed_success_body_is_named(body: bytes, message: str) -> None:
    recorder = Recorder(httpx.Response(200, content=body, headers={"content-type": "application/json"}))
    with pytest.raises(TransportError) as caught:
        run(call(client(recorder, max_attempts=2), "DescribeSignatures"))
    assert str(caught.value) == f"DescribeSignatures failed: {message} (after 2 attempts)"
    assert len(recorder.requests) == 2


# Over real sockets on 127.0.0.1, through the default transport (aiohttp under httpx): what a broken
# exchange means for retrying depends on whether the request can have left.


class HangUpServer:
    """Reads each request's head and hangs up without answering; counts the requests it read."""

    def __init__(self) -> None:
        self.requests = 0

    async def __aenter__(self) -> str:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readuntil(b"\r\n\r\n")
            self.requests += 1
            writer.close()

        self._server = await asyncio.start_server(handle, "127.0.0.1", 0)
        return f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    async def __aexit__(self, *exc: object) -> None:
        self._server.close()
        await self._server.wait_closed()


def test_a_write_the_server_hung_up_on_may_have_happened_and_is_not_retried() -> None:
    async def scenario() -> tuple[TransportError, int]:
        server = HangUpServer()
        async with server as url:
            api = ApiClient(url, CREDENTIALS, allow_writes=True, sleep=Sleeps(), max_attempts=4)
            async with api:
                with pytest.raises(TransportError) as caught:
                    await api.call("CreateSignature", {"SignatureName": "s", "SignatureKey": "k"})
        return caught.value, server.requests

    error, requests = run(scenario())
    assert (error.maybe_sent, requests) == (True, 1)
    assert str(error) == "CreateSignature failed: ServerDisconnectedError: Server disconnected"


def test_a_read_the_server_hung_up_on_is_retried() -> None:
    async def scenario() -> tuple[TransportError, int]:
        server = HangUpServer()
        async with server as url, ApiClient(url, CREDENTIALS, sleep=Sleeps(), max_attempts=3) as api:
            with pytest.raises(TransportError) as caught:
                await api.call("DescribeSignatures", {})
        return caught.value, server.requests

    error, requests = run(scenario())
    assert requests == 3
    assert str(error) == "DescribeSignatures failed: ServerDisconnectedError: Server disconnected (after 3 attempts)"


def test_a_write_that_could_not_connect_certainly_never_left_and_is_retried() -> None:
    async def scenario() -> TransportError:
        # A port that was just free: nothing listens there.
        server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        server.close()
        await server.wait_closed()
        sleeps = Sleeps()
        async with ApiClient(f"http://127.0.0.1:{port}", CREDENTIALS, allow_writes=True, sleep=sleeps,
                             max_attempts=3) as api:
            with pytest.raises(TransportError) as caught:
                await api.call("CreateSignature", {"SignatureName": "s", "SignatureKey": "k"})
        assert len(sleeps.delays) == 2
        return caught.value

    error = run(scenario())
    assert error.maybe_sent is False
    assert str(error).startswith("CreateSignature failed: ClientConnectorError: Cannot connect to host 127.0.0.1:")
    assert str(error).endswith("(after 3 attempts)")
