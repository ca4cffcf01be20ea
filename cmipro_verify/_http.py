"""The HTTP side of a cache of ours (the JWKS, the revocation feed): a sync and an async httpx client,
each created on first use, and closed by us only if we created it."""

from __future__ import annotations

import httpx


class Fetcher:
    def __init__(
        self, *, timeout: float, http_client: httpx.Client | None = None, async_http_client: httpx.AsyncClient | None = None
    ) -> None:
        self._timeout = timeout
        self._client = http_client
        self._async_client = async_http_client
        self._owns_client = http_client is None
        self._owns_async_client = async_http_client is None

    def get(self, url: str, headers: dict[str, str]) -> httpx.Response:
        if self._client is None:
            self._client = httpx.Client(timeout=self._timeout, follow_redirects=False)
        return self._client.get(url, headers=headers)

    async def aget(self, url: str, headers: dict[str, str]) -> httpx.Response:
        if self._async_client is None:
            self._async_client = httpx.AsyncClient(timeout=self._timeout, follow_redirects=False)
        return await self._async_client.get(url, headers=headers)

    def close(self) -> None:
        """Close the sync client if we created it (one passed in stays the caller's)."""
        if self._client is not None and self._owns_client:
            self._client.close()
            self._client = None

    async def aclose(self) -> None:
        if self._async_client is not None and self._owns_async_client:
            await self._async_client.aclose()
            self._async_client = None
