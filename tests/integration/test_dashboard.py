"""The web dashboard over real HTTP on loopback, read the way a browser reads it: sign-in
and its cookie, the checks every page makes of that cookie, ownership, CSRF, the
Content-Security-Policy, escaping, and what a completed session shows and hands out.
(The pages in a real browser: test_dashboard_browser.py.)"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import re
import time
from decimal import Decimal
from typing import Any

import httpx
import pytest

from adapters.auth.jwt_codec import JwtTokenCodec
from application.auth import NewApiKey
from domain.bars import BarSeries, DataSource, Timeframe
from domain.limits import Plan
from entrypoints.sdk import AuthClient, SessionClient, SessionNotFoundError
from entrypoints.server.embedded import EmbeddedServer
from entrypoints.web.downloads import TRADE_COLUMNS
from entrypoints.web.routes import CSRF_COOKIE, TOKEN_COOKIE, WRONG_KEY
from tests.integration.conftest import TEST_JWT_SECRET
from tests.integration.webclient import (
    END,
    START,
    completed_run,
    csrf_token,
    sign_in,
    sign_in_as,
)

MARKUP = "<img src=x onerror=alert(1)>"


def create_session(server: EmbeddedServer, key: str, **options: Any) -> str:
    """A new session through the SDK; its id."""

    async def create() -> str:
        async with SessionClient(AuthClient(server.http_url, key)) as client:
            data = await client.create_session(["AAPL"], START, END, 100_000, **options)
            return data.session_id

    return asyncio.run(create())


def sdk_session_exists(server: EmbeddedServer, key: str, session_id: str) -> bool:
    async def look() -> bool:
        async with SessionClient(AuthClient(server.http_url, key)) as client:
            try:
                await client.get_session(session_id)
            except SessionNotFoundError:
                return False
            return True

    return asyncio.run(look())


def set_cookie_header(response: httpx.Response, name: str) -> str:
    found = [h for h in response.headers.get_list("set-cookie") if h.startswith(f"{name}=")]
    assert len(found) == 1, response.headers.get_list("set-cookie")
    return found[0]


# ---------------------------------------------------------------- signing in and out


def test_pages_send_a_stranger_to_sign_in_and_fragments_answer_401(
    shared_server: EmbeddedServer,
) -> None:
    with httpx.Client(base_url=shared_server.http_url, trust_env=False) as client:
        for path in ("/", "/market-data", "/sessions/sess_x", "/sessions/sess_x/trades.csv"):
            response = client.get(path)
            assert response.status_code in (302, 303), path
            assert response.headers["location"] == "/sign-in"
        fragment = client.get("/fragments/sessions")
        assert fragment.status_code == 401
        sign_in_page = client.get("/sign-in")
    assert sign_in_page.status_code == 200
    assert re.search(r"<label for=\"api_key\">API key</label>", sign_in_page.text)
    assert re.search(r"<button type=\"submit\">Sign in</button>", sign_in_page.text)


def test_sign_in_keeps_the_token_in_an_http_only_strict_cookie_and_sign_out_ends_it(
    shared_server: EmbeddedServer,
) -> None:
    key = shared_server.create_api_key("cookie-user")
    with httpx.Client(base_url=shared_server.http_url, trust_env=False) as client:
        form = client.get("/sign-in")
        response = client.post(
            "/sign-in", data={"api_key": key, "_csrf_token": csrf_token(form.text)}
        )
        assert response.status_code == 303
        assert response.headers["location"] == "/"
        assert "token" not in response.headers["location"]
        cookie = set_cookie_header(response, TOKEN_COOKIE).lower()
        assert "httponly" in cookie
        assert "samesite=strict" in cookie
        token = client.cookies[TOKEN_COOKIE]
        assert token.count(".") == 2  # the usual JWT

        page = client.get("/")
        assert page.status_code == 200
        assert "cookie-user" in page.text
        for secret in (token, key, TEST_JWT_SECRET):
            assert secret not in page.text

        out = client.post("/sign-out", data={"_csrf_token": csrf_token(page.text)})
        assert out.status_code == 303
        assert out.headers["location"] == "/sign-in"
        assert "max-age=0" in set_cookie_header(out, TOKEN_COOKIE).lower()
        assert TOKEN_COOKIE not in client.cookies
        assert client.get("/").headers["location"] == "/sign-in"


def test_a_wrong_key_is_refused_on_the_page_and_sets_no_cookie(
    shared_server: EmbeddedServer,
) -> None:
    with httpx.Client(base_url=shared_server.http_url, trust_env=False) as client:
        form = client.get("/sign-in")
        for wrong in ("sk_not_a_real_key_0123456789", "hello", ""):
            response = client.post(
                "/sign-in", data={"api_key": wrong, "_csrf_token": csrf_token(form.text)}
            )
            assert response.status_code == 401
            assert WRONG_KEY in response.text
            if wrong:
                assert wrong not in response.text  # the key typed is not echoed back
            assert TOKEN_COOKIE not in client.cookies
            assert not any(
                h.startswith(TOKEN_COOKIE) for h in response.headers.get_list("set-cookie")
            )


def test_a_revoked_key_signs_the_dashboard_out_on_the_next_request(
    shared_server: EmbeddedServer,
) -> None:
    auth = shared_server.container.auth_service()
    created: NewApiKey = shared_server.call(auth.create_api_key("revoked-user", Plan.PROFESSIONAL))
    client = sign_in(shared_server, created.secret)
    assert client.get("/").status_code == 200
    assert client.get("/fragments/sessions").status_code == 200
    shared_server.call(auth.revoke_key(created.record.key_id))

    token = client.cookies[TOKEN_COOKIE]
    page = client.get("/")
    assert page.status_code in (302, 303)
    assert page.headers["location"] == "/sign-in?expired=1"
    assert "max-age=0" in set_cookie_header(page, TOKEN_COOKIE).lower()
    assert TOKEN_COOKIE not in client.cookies
    client.cookies.set(TOKEN_COOKIE, token)
    assert client.get("/fragments/sessions").status_code == 401
    notice = client.get("/sign-in?expired=1")
    assert "expired or its key was revoked" in notice.text


def test_an_expired_or_forged_token_is_refused_like_on_the_websocket(
    shared_server: EmbeddedServer,
) -> None:
    auth = shared_server.container.auth_service()
    created: NewApiKey = shared_server.call(auth.create_api_key("expired-user", Plan.PROFESSIONAL))
    now = int(time.time())
    claims = {
        "sub": "expired-user",
        "plan": "professional",
        "jti": "t1",
        "kid": created.record.key_id,
    }
    expired = JwtTokenCodec(TEST_JWT_SECRET).encode({**claims, "iat": now - 7200, "exp": now - 60})
    forged = JwtTokenCodec("another-secret-0123456789abcdef-0123456789").encode(
        {**claims, "iat": now, "exp": now + 600}
    )
    good = JwtTokenCodec(TEST_JWT_SECRET).encode({**claims, "iat": now, "exp": now + 600})
    with httpx.Client(base_url=shared_server.http_url, trust_env=False) as client:
        client.cookies.set(TOKEN_COOKIE, good)
        assert client.get("/").status_code == 200  # the same cookie, well signed and alive
        for token in (expired, forged):
            client.cookies.set(TOKEN_COOKIE, token)
            assert client.get("/").headers["location"] == "/sign-in?expired=1"
            client.cookies.set(TOKEN_COOKIE, token)
            assert client.get("/fragments/sessions").status_code == 401


# ---------------------------------------------------------------- CSRF and headers


def test_every_dashboard_post_needs_the_form_csrf_token_and_the_rest_api_does_not(
    shared_server: EmbeddedServer,
) -> None:
    key = shared_server.create_api_key("csrf-user")
    session_id = create_session(shared_server, key)
    client = sign_in(shared_server, key)
    page = client.get(f"/sessions/{session_id}")
    token = csrf_token(page.text)
    assert client.cookies.get(CSRF_COOKIE)
    for path, data in (
        ("/sign-in", {"api_key": key}),
        (f"/sessions/{session_id}/delete", {}),
        ("/sign-out", {}),
    ):
        missing = client.post(path, data=data)
        assert missing.status_code == 403, path
        assert "Form refused" in missing.text
        tampered = client.post(path, data={**data, "_csrf_token": token[:-4] + "0000"})
        assert tampered.status_code == 403, path
    # A form posted from another site carries none of this site's cookies (SameSite=Strict)
    # and no token: refused too.
    with httpx.Client(base_url=shared_server.http_url, trust_env=False) as stranger:
        stranger.cookies.set(TOKEN_COOKIE, client.cookies[TOKEN_COOKIE])
        assert stranger.post(f"/sessions/{session_id}/delete").status_code == 403
    assert sdk_session_exists(shared_server, key, session_id)
    assert client.get("/").status_code == 200  # still signed in

    rest = httpx.post(f"{shared_server.http_url}/auth/token", headers={"X-API-Key": key})
    assert rest.status_code == 200
    assert rest.json()["token_type"] == "Bearer"


def test_dashboard_pages_carry_a_strict_content_security_policy_and_no_inline_script(
    shared_server: EmbeddedServer,
) -> None:
    key = shared_server.create_api_key("csp-user")
    session_id = create_session(shared_server, key)
    client = sign_in(shared_server, key)
    anonymous = httpx.Client(base_url=shared_server.http_url, trust_env=False)
    for path in ("/", "/market-data", f"/sessions/{session_id}", "/sign-in"):
        response = (anonymous if path == "/sign-in" else client).get(path)
        assert response.status_code == 200, path
        policy = dict(
            part.strip().split(" ", 1)
            for part in response.headers["content-security-policy"].split(";")
        )
        assert policy["script-src"] == "'self'"
        assert policy["default-src"] == "'none'"
        assert policy["frame-ancestors"] == "'none'"
        assert response.headers["cache-control"] == "no-store"
        scripts = re.findall(r"<script\b[^>]*>", response.text)
        assert scripts, path
        assert all(" src=" in s for s in scripts), scripts
        assert not re.search(r"\son[a-z]+=", response.text), "no inline event handler"
    assert client.get("/static/dashboard.js").status_code == 200
    bundle = client.get("/vendor/plotly.min.js")
    assert bundle.status_code == 200
    assert bundle.headers["content-type"].startswith("text/javascript")


# ---------------------------------------------------------------- sessions


def test_another_users_session_answers_exactly_like_a_missing_one(
    shared_server: EmbeddedServer,
) -> None:
    alice_key = shared_server.create_api_key("owner-alice")
    results = completed_run(shared_server, alice_key)
    theirs = results.session_id
    bob = sign_in_as(shared_server, "owner-bob")
    missing = "sess_0000000000000000"
    for suffix in ("", "/results.json", "/trades.csv", "/chart.json"):
        other = bob.get(f"/sessions/{theirs}{suffix}")
        nothing = bob.get(f"/sessions/{missing}{suffix}")
        assert other.status_code == nothing.status_code == 404, suffix
        assert other.text == nothing.text
        assert "AAPL" not in other.text
    fragment = bob.get(f"/fragments/sessions/{theirs}")
    assert fragment.status_code == 404
    assert fragment.text == bob.get(f"/fragments/sessions/{missing}").text
    page = bob.get("/")
    deleted = bob.post(f"/sessions/{theirs}/delete", data={"_csrf_token": csrf_token(page.text)})
    assert deleted.status_code == 404
    assert theirs not in bob.get("/").text
    assert sdk_session_exists(shared_server, alice_key, theirs)


def test_markup_in_metadata_is_shown_as_text(shared_server: EmbeddedServer) -> None:
    key = shared_server.create_api_key("markup-user")
    session_id = create_session(shared_server, key, metadata={"note": MARKUP, MARKUP: 1})
    page = sign_in(shared_server, key).get(f"/sessions/{session_id}")
    assert page.status_code == 200
    assert MARKUP not in page.text
    assert "&lt;img src=x onerror=alert(1)&gt;" in page.text
    assert "<img" not in page.text


def test_the_list_shows_each_session_and_filters_by_state(shared_server: EmbeddedServer) -> None:
    key = shared_server.create_api_key("filter-user")
    ready = create_session(shared_server, key)
    completed = completed_run(shared_server, key).session_id
    client = sign_in(shared_server, key)
    everything = client.get("/").text
    for session_id in (ready, completed):
        assert f'data-session="{session_id}"' in everything
    assert "AAPL" in everything
    assert f"{START} → {END}" in everything.replace("&gt;", ">")
    only_done = client.get("/", params={"state": "completed"}).text
    assert f'data-session="{completed}"' in only_done
    assert f'data-session="{ready}"' not in only_done
    fragment = client.get("/fragments/sessions", params={"state": "ready"}).text
    assert f'data-session="{ready}"' in fragment
    assert f'data-session="{completed}"' not in fragment
    assert "<html" not in fragment  # a fragment, not a page
    refused = client.get("/", params={"state": "sleeping"})
    assert refused.status_code == 400
    assert "Unknown state" in refused.text


def test_a_completed_session_shows_its_metrics_trades_charts_and_downloads(
    shared_server: EmbeddedServer,
) -> None:
    key = shared_server.create_api_key("results-user")
    results = completed_run(shared_server, key)
    assert results.trades, "the strategy trades"
    client = sign_in(shared_server, key)
    page = client.get(f"/sessions/{results.session_id}").text
    assert "Sharpe ratio" in page
    assert f"{results.metrics.final_equity:,}" in page
    assert page.count("<tr><td>AAPL</td>") == len(results.trades)

    exported = client.get(f"/sessions/{results.session_id}/results.json")
    assert exported.status_code == 200
    assert "attachment" in exported.headers["content-disposition"]
    body = json.loads(exported.text, parse_float=Decimal)
    assert body["session_id"] == results.session_id
    assert Decimal(body["metrics"]["final_equity"]) == results.metrics.final_equity
    assert [Decimal(t["pnl"]) for t in body["trades"]] == [t.pnl for t in results.trades]

    download = client.get(f"/sessions/{results.session_id}/trades.csv")
    assert download.status_code == 200
    assert download.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(download.text)))
    assert tuple(rows[0]) == TRADE_COLUMNS
    assert len(rows) == len(results.trades) + 1
    for row, trade in zip(rows[1:], results.trades, strict=True):
        assert row[0] == trade.symbol
        assert Decimal(row[2]) == trade.quantity
        assert Decimal(row[4]) == trade.entry_price
        assert Decimal(row[7]) == trade.pnl

    figure = client.get(f"/sessions/{results.session_id}/chart.json").json()
    traces = {trace.get("name"): trace for trace in figure["data"]}
    equity = traces["Equity"]
    assert len(equity["y"]) == len(results.equity_curve)
    assert equity["y"][-1] == pytest.approx(float(results.equity_curve[-1][1]))
    candles = traces["AAPL price"]
    assert list(candles["close"]) == pytest.approx(list(results.prices["AAPL"].closes))
    fills = len(traces["Buy fill"]["x"]) + len(traces.get("Sell fill", {"x": []})["x"])
    assert fills == 2 * len(results.trades)  # each closed trade: its entry and its exit


def test_a_session_that_is_not_complete_has_no_downloads(shared_server: EmbeddedServer) -> None:
    key = shared_server.create_api_key("pending-user")
    session_id = create_session(shared_server, key)
    client = sign_in(shared_server, key)
    page = client.get(f"/sessions/{session_id}").text
    assert "Not started yet." in page
    assert "trades.csv" not in page
    assert client.get(f"/sessions/{session_id}/trades.csv").status_code == 404


def test_deleting_from_the_page_removes_the_session(shared_server: EmbeddedServer) -> None:
    key = shared_server.create_api_key("delete-user")
    session_id = create_session(shared_server, key)
    client = sign_in(shared_server, key)
    page = client.get(f"/sessions/{session_id}").text
    assert f'data-confirm="Delete session {session_id}?' in page
    response = client.post(f"/sessions/{session_id}/delete", data={"_csrf_token": csrf_token(page)})
    assert response.status_code == 303
    assert response.headers["location"] == f"/?deleted={session_id}"
    assert f"Session {session_id} was deleted." in client.get(response.headers["location"]).text
    assert not sdk_session_exists(shared_server, key, session_id)
    assert client.get(f"/sessions/{session_id}").status_code == 404


def test_market_data_lists_what_is_stored_and_marks_synthetic_bars(
    shared_server: EmbeddedServer,
) -> None:
    market = shared_server.container.market_data_service()
    store = shared_server.container.bar_store()
    sample = shared_server.call(store.read(["AAPL"], Timeframe.D1, 1672704000, 1675000000))
    imported = BarSeries.from_bars("IBM", Timeframe.D1, sample["AAPL"].bars())
    shared_server.call(market.import_bars(imported, replace=True))
    page = sign_in_as(shared_server, "market-user").get("/market-data").text
    rows = dict(re.findall(r'<tr data-symbol="([^"]+)">(.*?)</tr>', page, re.S))
    coverage = {c.symbol: c for c in shared_server.call(market.coverage())}
    assert coverage["AAPL"].source is DataSource.SYNTHETIC
    assert "synthetic" in rows["AAPL"]
    assert f"{coverage['AAPL'].bars:,}" in rows["AAPL"]
    assert "imported" in rows["IBM"]
    assert "synthetic" not in rows["IBM"]
    assert f"{len(imported)}" in rows["IBM"]
    assert set(rows) == set(coverage)
