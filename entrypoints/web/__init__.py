"""The web dashboard: server-rendered pages (Jinja) over the same application services as
the WebSocket dispatcher, signed in with a cookie that carries the usual bearer token."""

from entrypoints.web.routes import Dashboard, build_dashboard

__all__ = ["Dashboard", "build_dashboard"]
