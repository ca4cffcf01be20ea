"""The SPA example of docs/sender-constrained-tokens.md, run in headless Chromium: WebCrypto makes the key and
the proofs (RFC 9449), fetch redeems a code, calls UserInfo with ``Authorization: DPoP`` and refreshes."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
from joserfc.jwk import ECKey
from playwright.async_api import BrowserContext

from authserver.tokens.opaque import digest
from tests.browser.conftest import LiveServer
from tests.support.factories import REDIRECT_URI, authorize, make_client, make_user

DOC = Path(__file__).resolve().parents[2] / "docs" / "sender-constrained-tokens.md"


def doc_functions() -> str:
    """The example's key, ``proof`` and ``dpopFetch`` (up to its usage lines), exactly as the page shows them."""
    block = re.search(r"```js\n(.*?)```", DOC.read_text(), re.DOTALL)
    assert block is not None
    return block.group(1).split("// Code exchange")[0]


async def test_the_documented_spa_code_gets_uses_and_refreshes_dpop_bound_tokens(live_server: LiveServer, context: BrowserContext) -> None:
    services = live_server.services
    client = await make_client(services, client_type="public", redirect_uris=[REDIRECT_URI])
    user = await make_user(services)
    async with httpx.AsyncClient(base_url=live_server.url) as http:
        params, verifier = await authorize(http, client, user, scope="openid profile offline_access")
    page = await context.new_page()
    # The SPA's own page on the server's origin (127.0.0.1 is a secure context for WebCrypto); our pages'
    # CSP (default-src 'none') would forbid its fetch calls, as it should for pages that are not the SPA's.
    await page.route(f"{live_server.url}/spa", lambda route: route.fulfill(body="<!doctype html><title>spa</title>", content_type="text/html"))
    await page.goto(f"{live_server.url}/spa")
    script = doc_functions() + """
      const token = `${origin}/token`;
      const redeemed = await (await dpopFetch("POST", token, { body: new URLSearchParams({
        grant_type: "authorization_code", code: args.code, redirect_uri: args.redirect_uri,
        code_verifier: args.verifier, client_id: args.client_id }) })).json();
      const info = await dpopFetch("GET", `${origin}/userinfo`, { accessToken: redeemed.access_token });
      const asBearer = await fetch(`${origin}/userinfo`, { headers: { Authorization: `Bearer ${redeemed.access_token}` } });
      const refreshed = await (await dpopFetch("POST", token, { body: new URLSearchParams({
        grant_type: "refresh_token", refresh_token: redeemed.refresh_token, client_id: args.client_id }) })).json();
      return { redeemed, jwk: { kty, crv, x, y }, userinfo: info.status, sub: (await info.json()).sub,
               bearer: asBearer.status, bearerChallenge: asBearer.headers.get("WWW-Authenticate"), refreshed };
    """
    result = await page.evaluate(
        f"async (args) => {{ {script} }}",
        {"code": params["code"], "verifier": verifier, "redirect_uri": REDIRECT_URI, "client_id": client.client_id},
    )
    jkt = ECKey.import_key(result["jwk"]).thumbprint()
    assert result["redeemed"]["token_type"] == "DPoP"
    assert result["userinfo"] == 200 and result["sub"] == user.account_id
    assert result["bearer"] == 401 and result["bearerChallenge"].startswith("DPoP ")
    assert result["refreshed"]["token_type"] == "DPoP"
    found = await services.tokens.get_refresh_token(digest(result["refreshed"]["refresh_token"]))
    assert found is not None and found[1].dpop_jkt == jkt
