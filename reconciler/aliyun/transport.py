"""The HTTP transport under the API client: aiohttp's connection pool and C HTTP parser, behind httpx.

The client talks httpx only (requests, responses, auth flow, event hooks, in-process test transports);
everything aiohttp stays in this module. ``AiohttpTransport`` sends an ``httpx.Request`` through one
aiohttp session, reads the whole body, and turns aiohttp's errors into httpx's by what actually failed:
a connection that could not be made (``ConnectError``, ``ConnectTimeout``: the request certainly never
left), a server that hung up or sent a broken answer (``RemoteProtocolError``), a read that timed out
(``ReadTimeout``), a proxy that refused the tunnel (``ProxyError``). ``failure_of`` names what failed
underneath an httpx error, for messages, and for a failure no retry can fix says what to check.

Why aiohttp: httpx's default transport (httpcore, h11 and anyio, all pure Python) took the largest share
of the client's CPU, and at high concurrency the client's CPU, not the round trip, sets a fetch's pace
(figures: "Profile notes" in benchmarks/README.md). The vendor's own async SDK sends its requests
through aiohttp as well, so the way aiohttp normalises the percent-encoding of a query (``%2A`` to
``*``; values are unchanged) is known to be accepted.

What goes on the wire is exactly what is signed: aiohttp would add ``Content-Type:
application/octet-stream`` to a POST without a body (the vendor's async SDK sends it, unsigned), and the
V3 rule is that every such header present must be signed, so the session skips it, like the vendor's
sync SDK. The proxy and the trust store come from the environment (``proxy_for``, ``tls_context``),
since a custom transport gets neither from httpx. The API sets no cookies: the session keeps none.
"""

from __future__ import annotations

import base64
import os
import socket
import ssl
from collections.abc import Mapping
from dataclasses import dataclass

import aiohttp
import httpx

from reconciler.errors import InputError
from reconciler.limits import MAX_CONCURRENCY

MAX_CONNECTIONS = MAX_CONCURRENCY
KEEPALIVE_SECONDS = 5.0  # httpx's default expiry of an idle pooled connection


@dataclass(frozen=True)
class Failure:
    """What failed underneath an httpx error: its name and text in the words of the layer that saw it
    (``ServerDisconnectedError``, ``Server disconnected``), and, for a failure that retrying cannot fix,
    what to check (None for one that may pass)."""

    name: str
    detail: str
    hint: str | None


def failure_of(error: httpx.HTTPError) -> Failure:
    cause = error.__cause__
    if isinstance(cause, aiohttp.ClientError):
        return Failure(type(cause).__name__, str(cause), _lasting_failure_hint(cause))
    return Failure(type(error).__name__, str(error), None)


def _as_httpx(error: aiohttp.ClientError, request: httpx.Request) -> httpx.TransportError:
    """The httpx error for an aiohttp one (the most specific aiohttp classes are checked first)."""
    kind: type[httpx.TransportError]
    if isinstance(error, aiohttp.ClientConnectorError):  # DNS, refused, TLS, the proxy's socket
        kind = httpx.ConnectError
    elif isinstance(error, aiohttp.ConnectionTimeoutError):
        kind = httpx.ConnectTimeout
    elif isinstance(error, aiohttp.ServerTimeoutError):
        kind = httpx.ReadTimeout
    elif isinstance(error, aiohttp.ClientHttpProxyError):
        kind = httpx.ProxyError
    elif isinstance(error, aiohttp.InvalidURL):
        kind = httpx.UnsupportedProtocol
    elif isinstance(error, aiohttp.ClientOSError):  # a reset or a broken pipe on an open connection
        kind = httpx.ReadError
    elif isinstance(error, aiohttp.ServerDisconnectedError | aiohttp.ClientPayloadError | aiohttp.ClientResponseError):
        kind = httpx.RemoteProtocolError
    else:
        kind = httpx.TransportError
    return kind(str(error), request=request)


_NOT_TLS = ("WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE", "HTTP_REQUEST", "PACKET_LENGTH_TOO_LONG")


def _lasting_failure_hint(failure: aiohttp.ClientError) -> str | None:
    """What to check, for a failure that a retry cannot fix; None for one that may pass."""
    if isinstance(failure, aiohttp.ClientConnectorCertificateError):
        return "the server's certificate does not verify for this host; check the endpoint's host name"
    if isinstance(failure, aiohttp.ClientConnectorSSLError):
        detail = str(failure)
        if any(mark in detail for mark in _NOT_TLS):
            return "this endpoint does not speak TLS; use http://? (plain http only to loopback)"
        return "the TLS handshake failed; check the endpoint"
    if isinstance(failure, aiohttp.ClientConnectorDNSError):
        cause = failure.os_error
        if isinstance(cause, socket.gaierror) and cause.errno == socket.EAI_AGAIN:
            return None
        return f"the host name {failure.host} does not resolve; check the endpoint or the region"
    if isinstance(failure, aiohttp.InvalidURL):
        return "the endpoint URL is not valid (is the port between 1 and 65535?)"
    return None


class AiohttpTransport(httpx.AsyncBaseTransport):
    """Sends each request through one aiohttp session (made on the first request, inside the event loop)."""

    def __init__(self, tls: ssl.SSLContext | None, proxy: str | None) -> None:
        self._tls = tls
        self._proxy: str | None = None
        self._proxy_headers: dict[str, str] | None = None
        if proxy is not None:
            parsed = httpx.Proxy(proxy)  # the URL without its user and password, which go in a header
            self._proxy = str(parsed.url)
            self._proxy_headers = dict(parsed.headers)
            if parsed.auth:
                credentials = base64.b64encode(":".join(parsed.auth).encode()).decode("ascii")
                self._proxy_headers["Proxy-Authorization"] = f"Basic {credentials}"
        self._session: aiohttp.ClientSession | None = None
        self._timeouts: dict[tuple[float | None, float | None, float | None], aiohttp.ClientTimeout] = {}

    def _new_session(self) -> aiohttp.ClientSession:
        # Plain http is allowed only to loopback (validate_endpoint), where there is nothing to verify.
        connector = aiohttp.TCPConnector(ssl=self._tls if self._tls is not None else False, limit=MAX_CONNECTIONS,
                                         keepalive_timeout=KEEPALIVE_SECONDS)
        return aiohttp.ClientSession(connector=connector, skip_auto_headers=("Content-Type",))

    def _timeout(self, request: httpx.Request) -> aiohttp.ClientTimeout:
        given = request.extensions.get("timeout", {})
        key = (given.get("connect"), given.get("read"), given.get("pool"))
        timeout = self._timeouts.get(key)
        if timeout is None:
            timeout = self._timeouts[key] = aiohttp.ClientTimeout(sock_connect=key[0], sock_read=key[1],
                                                                  connect=key[2])
        return timeout

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self._session is None:
            self._session = self._new_session()
        try:
            async with self._session.request(
                request.method, str(request.url), headers=request.headers, data=request.content or None,
                allow_redirects=False, auto_decompress=False, compress=False, timeout=self._timeout(request),
                proxy=self._proxy, proxy_headers=self._proxy_headers,
            ) as response:
                body = await response.read()
        except aiohttp.ClientError as error:
            raise _as_httpx(error, request) from error
        extensions = {"http_version": b"HTTP/1.1"}
        if response.reason:
            extensions["reason_phrase"] = response.reason.encode()
        # The raw body: httpx undoes a Content-Encoding itself, as with any transport.
        return httpx.Response(response.status, headers=response.raw_headers, stream=httpx.ByteStream(body),
                              request=request, extensions=extensions)

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()


def http_transport(endpoint: str, environ: Mapping[str, str] | None = None) -> AiohttpTransport:
    """The transport for ``endpoint``, with the proxy and trust store the environment names."""
    environ = os.environ if environ is None else environ
    tls = tls_context(environ) if endpoint.startswith("https://") else None
    return AiohttpTransport(tls, proxy_for(endpoint, environ))


def proxy_for(endpoint: str, environ: Mapping[str, str]) -> str | None:
    """The proxy URL for ``endpoint`` from ``HTTPS_PROXY`` / ``HTTP_PROXY`` (either case), or None.

    The vendor's SDK reads ``HTTPS_PROXY`` for https endpoints and ``HTTP_PROXY`` for http ones; ``NO_PROXY``
    (host names, domain suffixes, ``*``) exempts a host, as curl and the standard library read it.
    """
    proxies = {scheme: url for scheme, url in (
        ("https", environ.get("HTTPS_PROXY") or environ.get("https_proxy")),
        ("http", environ.get("HTTP_PROXY") or environ.get("http_proxy")),
    ) if url}
    url = httpx.URL(endpoint)
    proxy = proxies.get(url.scheme)
    if proxy is None:
        return None
    no_proxy = environ.get("NO_PROXY") or environ.get("no_proxy") or ""
    if no_proxy:
        import urllib.request  # only here: it costs start-up time every run would pay

        if urllib.request.proxy_bypass_environment(url.host, {"no": no_proxy}):  # type: ignore[attr-defined]
            return None
    return proxy


def tls_context(environ: Mapping[str, str]) -> ssl.SSLContext:
    """certifi's roots (as the vendor's SDK), plus ``SSL_CERT_FILE`` / ``SSL_CERT_DIR`` when set.

    Those two variables are what the vendor's SDK and credential library honour too (through OpenSSL's
    default paths), so one setting serves a TLS-inspecting proxy for every request of a run.
    """
    import certifi  # only for https endpoints

    context = ssl.create_default_context(cafile=certifi.where())
    cafile, capath = environ.get("SSL_CERT_FILE"), environ.get("SSL_CERT_DIR")
    try:
        if cafile or capath:
            context.load_verify_locations(cafile=cafile or None, capath=capath or None)
    except (OSError, ssl.SSLError) as exc:
        where = " ".join(f"{name}={value}" for name, value in (("SSL_CERT_FILE", cafile), ("SSL_CERT_DIR", capath))
                         if value)
        raise InputError(f"cannot load the CA certificates of {where}: {getattr(exc, 'strerror', None) or exc}"
                         ) from None
    return context
