"""Counting what a client sends, from outside the client."""

from __future__ import annotations

import httpx


class CountingTransport(httpx.AsyncBaseTransport):
    """Wraps a client's transport and counts what went through it: requests sent (retries included) and
    throttling answers (HTTP 400 or 429 whose body names a Throttling code)."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.requests = 0
        self.throttled = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests += 1
        response = await self.inner.handle_async_request(request)
        if response.status_code in (400, 429):
            await response.aread()
            if b'"Throttling' in response.content:
                self.throttled += 1
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()
