"""The dashboard's routes: pages, the fragments their script refreshes, downloads, and the
sign-in that turns an API key into the usual bearer token kept in a cookie.

Every handler is thin: it reads the cookie's token through `AuthService.authenticate`
(the same check as a WebSocket connection: signature, expiry, revoked key), then calls the
same services as the dispatcher. Another user's session answers exactly like a missing one.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Annotated, Any

from litestar import Request, Response, Router, get, post
from litestar.config.csrf import CSRFConfig
from litestar.datastructures import CacheControlHeader, Cookie, ResponseHeader
from litestar.exceptions import PermissionDeniedException
from litestar.middleware import DefineMiddleware
from litestar.middleware.csrf import CSRFMiddleware
from litestar.params import FromPath, FromQuery, QueryParameter
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.response import File, Redirect, Template
from litestar.static_files import create_static_files_router
from litestar.template.config import TemplateConfig

from application.auth import AuthService
from application.bars import MarketDataService
from application.principal import Principal
from application.sessions import SessionService
from application.simulation import SimulationResults, SimulationService
from domain.errors import (
    AccessDenied,
    AuthenticationFailed,
    InvalidState,
    SessionNotFound,
    ValidationFailed,
)
from domain.session import SessionState
from entrypoints.export import DAY_SECONDS, TIMEFRAME_SECONDS
from entrypoints.protocol.dispatcher import parse_state
from entrypoints.protocol.engine import metrics_data, trade_data
from entrypoints.web.charts import chart_json
from entrypoints.web.downloads import results_json, trades_csv
from entrypoints.web.views import (
    STATES,
    SessionRow,
    SessionView,
    coverage_rows,
    session_row,
    session_view,
)

HERE = Path(__file__).parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"

TOKEN_COOKIE = "simutrador_token"
CSRF_COOKIE = "simutrador_csrf"
TRADES_SHOWN = 200
"""Trades listed on a session's page; the CSV holds them all."""
CHARTS_CACHED = 8
"""Charts of completed sessions kept drawn (Plotly JSON, up to a few MB each)."""
WRONG_KEY = "That API key was not accepted: it is unknown, revoked or mistyped."

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        # Plotly positions its SVG with style attributes and a stylesheet of its own.
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
    )
)
DASHBOARD_HEADERS = (
    ResponseHeader(name="Content-Security-Policy", value=CONTENT_SECURITY_POLICY),
    ResponseHeader(name="Cache-Control", value="no-store"),
    ResponseHeader(name="X-Content-Type-Options", value="nosniff"),
    ResponseHeader(name="X-Frame-Options", value="DENY"),
    ResponseHeader(name="Referrer-Policy", value="no-referrer"),
)


StateQuery = Annotated[str | None, QueryParameter(name="state")]
"""`?state=running`: the filter of the sessions list (`state` names Litestar's app state)."""


class SignedOut(Exception):
    """No cookie, or its token is no longer good (expired, revoked key, forged)."""

    def __init__(self, had_cookie: bool) -> None:
        super().__init__("not signed in")
        self.had_cookie = had_cookie


class NotYours(Exception):
    """No such session for this user: missing, expired or another user's (one answer)."""


async def report_module() -> ModuleType:
    """`entrypoints.report` (which loads Plotly, a second or so): imported on the first
    completed session shown, in a worker thread so the event loop does not stall on it."""
    return await asyncio.to_thread(importlib.import_module, "entrypoints.report")


def csrf_secret(jwt_secret: str) -> str:
    """The key that signs CSRF tokens, derived from the JWT secret: every server process
    sharing that secret accepts the others' forms, and neither key reveals the other."""
    return hashlib.sha256(b"simutrador dashboard csrf\x00" + jwt_secret.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Dashboard:
    """The dashboard's routers and the template engine the app must be given."""

    routers: tuple[Router, ...]
    template_config: TemplateConfig[JinjaTemplateEngine]


def _is_fragment(request: Request[Any, Any, Any]) -> bool:
    return request.url.path.startswith("/fragments/")


def _signed_out(request: Request[Any, Any, Any], exc: SignedOut) -> Response[Any]:
    if _is_fragment(request):
        response: Response[Any] = Response("signed out", status_code=401, media_type="text/plain")
    else:
        response = Redirect("/sign-in?expired=1" if exc.had_cookie else "/sign-in")
    if exc.had_cookie:
        response.delete_cookie(TOKEN_COOKIE, path="/")
    return response


def _not_found(request: Request[Any, Any, Any], _: NotYours) -> Response[Any]:
    if _is_fragment(request):
        return Response("no such session", status_code=404, media_type="text/plain")
    return Template("not_found.html", context={"user_id": None}, status_code=404)


def _forbidden(request: Request[Any, Any, Any], _: PermissionDeniedException) -> Response[Any]:
    """A form whose CSRF token is missing or wrong (an old page, or another site's form)."""
    return Template(
        "error.html",
        context={
            "user_id": None,
            "title": "Form refused",
            "message": "This form has expired or did not come from this dashboard. "
            "Reload the page and try again.",
        },
        status_code=403,
    )


def build_dashboard(
    auth: AuthService,
    sessions: SessionService,
    simulations: SimulationService,
    market_data: MarketDataService,
    jwt_secret: str,
) -> Dashboard:
    """The dashboard over these services; `jwt_secret` keys its CSRF tokens."""
    charts: OrderedDict[str, str] = OrderedDict()

    async def principal_of(request: Request[Any, Any, Any]) -> Principal:
        token = request.cookies.get(TOKEN_COOKIE)
        try:
            return await auth.authenticate(token)
        except AuthenticationFailed:
            raise SignedOut(had_cookie=bool(token)) from None

    async def own_session(principal: Principal, session_id: str) -> SessionView:
        try:
            session = await sessions.view(principal, session_id)
        except (SessionNotFound, AccessDenied):
            raise NotYours from None
        return session_view(session, await simulations.progress_of(session))

    async def completed_results(principal: Principal, session_id: str) -> SimulationResults:
        view = await own_session(principal, session_id)
        if view.state != SessionState.COMPLETED.value:
            raise NotYours
        try:
            return await simulations.results(principal, session_id)
        except (SessionNotFound, AccessDenied, InvalidState):
            raise NotYours from None

    # ---------------------------------------------------------------- signing in and out

    @get("/sign-in", name="dashboard:sign-in")
    async def sign_in_page(
        request: Request[Any, Any, Any], expired: FromQuery[bool] = False
    ) -> Response[Any]:
        token = request.cookies.get(TOKEN_COOKIE)
        if token:
            try:
                await auth.authenticate(token)
            except AuthenticationFailed:
                pass
            else:
                return Redirect("/")
        message = (
            "Your sign-in has expired or its key was revoked; sign in again." if expired else ""
        )
        return Template("sign_in.html", context={"user_id": None, "message": message})

    @post("/sign-in", status_code=303)
    async def sign_in(request: Request[Any, Any, Any]) -> Response[Any]:
        form = await request.form()
        key = form.get("api_key")
        try:
            grant = await auth.issue_token(key.strip() if isinstance(key, str) else None)
        except AuthenticationFailed:
            return Template(
                "sign_in.html",
                context={"user_id": None, "message": WRONG_KEY},
                status_code=401,
            )
        return Redirect(
            "/",
            status_code=303,
            cookies=[
                Cookie(
                    key=TOKEN_COOKIE,
                    value=grant.access_token,
                    max_age=grant.expires_in,
                    path="/",
                    httponly=True,
                    samesite="strict",
                    secure=request.url.scheme == "https",
                )
            ],
        )

    @post("/sign-out", status_code=303)
    async def sign_out() -> Response[Any]:
        response = Redirect("/sign-in", status_code=303)
        response.delete_cookie(TOKEN_COOKIE, path="/")
        return response

    # ---------------------------------------------------------------- sessions

    async def listed(principal: Principal, state: str | None) -> list[SessionRow]:
        found = await sessions.list(principal, parse_state(state) if state else None)
        found.sort(key=lambda s: s.created_at, reverse=True)
        return [session_row(s, await simulations.progress_of(s)) for s in found]

    @get("/")
    async def sessions_page(
        request: Request[Any, Any, Any],
        wanted: StateQuery = None,
        deleted: FromQuery[str | None] = None,
    ) -> Template:
        principal = await principal_of(request)
        context: dict[str, Any] = {
            "user_id": principal.user_id,
            "states": STATES,
            "state": wanted or "",
            "deleted": deleted,
            "message": "",
        }
        try:
            context["sessions"] = await listed(principal, wanted)
        except ValidationFailed as exc:
            context.update(sessions=[], state="", message=exc.message)
            return Template("sessions.html", context=context, status_code=400)
        return Template("sessions.html", context=context)

    @get("/fragments/sessions")
    async def sessions_fragment(
        request: Request[Any, Any, Any], wanted: StateQuery = None
    ) -> Template:
        principal = await principal_of(request)
        try:
            shown = await listed(principal, wanted)
        except ValidationFailed:
            shown = []
        return Template("_sessions_table.html", context={"sessions": shown})

    @get("/sessions/{session_id:str}")
    async def session_page(request: Request[Any, Any, Any], session_id: FromPath[str]) -> Template:
        principal = await principal_of(request)
        view = await own_session(principal, session_id)
        context: dict[str, Any] = {"user_id": principal.user_id, "s": view, "results": None}
        if view.state == SessionState.COMPLETED.value:
            try:
                results = await simulations.results(principal, session_id)
            except InvalidState:  # deleted or expired in between
                raise NotYours from None
            trades = [trade_data(t) for t in results.trades]
            context["results"] = {
                "metrics": (await report_module()).metric_rows(metrics_data(results.metrics)),
                "trades": trades[:TRADES_SHOWN],
                "trade_count": len(trades),
                "executions": results.executions,
                "total_ticks": results.total_ticks,
            }
        return Template("session.html", context=context)

    @get("/fragments/sessions/{session_id:str}")
    async def session_fragment(
        request: Request[Any, Any, Any], session_id: FromPath[str]
    ) -> Template:
        principal = await principal_of(request)
        view = await own_session(principal, session_id)
        return Template("_session_live.html", context={"s": view})

    @post("/sessions/{session_id:str}/delete", status_code=303)
    async def delete_session(
        request: Request[Any, Any, Any], session_id: FromPath[str]
    ) -> Redirect:
        principal = await principal_of(request)
        try:
            removed = await sessions.delete(principal, session_id)
        except (SessionNotFound, AccessDenied):
            raise NotYours from None
        await simulations.forget(removed.id)  # a running simulation stops with it
        charts.pop(removed.id, None)
        return Redirect("/", query_params={"deleted": removed.id}, status_code=303)

    # ---------------------------------------------------------------- results

    @get("/sessions/{session_id:str}/results.json")
    async def results_download(
        request: Request[Any, Any, Any], session_id: FromPath[str]
    ) -> Response[bytes]:
        principal = await principal_of(request)
        results = await completed_results(principal, session_id)
        return Response(
            results_json(session_id, results),
            media_type="application/json",
            headers={"Content-Disposition": f'attachment; filename="{session_id}-results.json"'},
        )

    @get("/sessions/{session_id:str}/trades.csv")
    async def trades_download(
        request: Request[Any, Any, Any], session_id: FromPath[str]
    ) -> Response[str]:
        principal = await principal_of(request)
        results = await completed_results(principal, session_id)
        timeframe = (await own_session(principal, session_id)).data.timeframe
        return Response(
            trades_csv(
                [trade_data(t) for t in results.trades],
                TIMEFRAME_SECONDS.get(timeframe, DAY_SECONDS),
            ),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{session_id}-trades.csv"'},
        )

    @get("/sessions/{session_id:str}/chart.json")
    async def chart(request: Request[Any, Any, Any], session_id: FromPath[str]) -> Response[str]:
        principal = await principal_of(request)
        results = await completed_results(principal, session_id)
        figure = charts.get(session_id)
        if figure is None:  # a completed session never changes: draw it once
            session = await sessions.view(principal, session_id)
            bars = await market_data.session_bars(session)
            # Plotly builds the figure in a worker thread: the event loop (and every running
            # simulation's ticks) does not wait for it.
            figure = await asyncio.to_thread(
                chart_json, session_id, results, bars, f"Session {session_id}"
            )
            charts[session_id] = figure
            while len(charts) > CHARTS_CACHED:
                charts.popitem(last=False)
        else:
            charts.move_to_end(session_id)
        return Response(figure, media_type="application/json")

    # ---------------------------------------------------------------- market data

    @get("/market-data")
    async def market_page(request: Request[Any, Any, Any]) -> Template:
        principal = await principal_of(request)
        listed_instruments = await market_data.instruments()
        rows = coverage_rows(listed_instruments)
        return Template(
            "market.html",
            context={
                "user_id": principal.user_id,
                "rows": rows,
                "without_data": sum(1 for i in listed_instruments if not i.data),
            },
        )

    csrf = CSRFConfig(
        secret=csrf_secret(jwt_secret),
        cookie_name=CSRF_COOKIE,
        cookie_httponly=True,
        cookie_samesite="strict",
    )
    pages = Router(
        path="/",
        route_handlers=[
            sign_in_page,
            sign_in,
            sign_out,
            sessions_page,
            sessions_fragment,
            session_page,
            session_fragment,
            delete_session,
            results_download,
            trades_download,
            chart,
            market_page,
        ],
        middleware=[DefineMiddleware(CSRFMiddleware, config=csrf)],
        response_headers=list(DASHBOARD_HEADERS),
        exception_handlers={
            SignedOut: _signed_out,
            NotYours: _not_found,
            PermissionDeniedException: _forbidden,
        },
        include_in_schema=False,
    )
    assets = create_static_files_router(
        path="/static",
        directories=[STATIC],
        name="dashboard:static",
        cache_control=CacheControlHeader(max_age=3600),
    )
    vendor = Router(path="/vendor", route_handlers=[plotly_bundle], include_in_schema=False)
    return Dashboard(
        routers=(pages, assets, vendor),
        template_config=TemplateConfig(directory=TEMPLATES, engine=JinjaTemplateEngine),
    )


@get("/plotly.min.js", cache_control=CacheControlHeader(max_age=86_400))
async def plotly_bundle() -> File:
    """The Plotly bundle of the installed `plotly` package (MIT), served from this server:
    the charts draw offline, from no CDN."""
    import plotly

    bundle = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    return File(bundle, media_type="text/javascript", content_disposition_type="inline")
