"""The dashboard web application: one static page, its assets, and a read-only JSON API.

Every asset is served from this package or the `plotly` Python package (no CDN: the page works
without the internet, and its Content-Security-Policy lets it load nothing from elsewhere).
Request values are validated by FastAPI (a bad one gets a 422 naming it) and reach the queries
only as typed values. With `dashboard_password` set every path asks for HTTP Basic auth (user
`adstream`); without it, only requests addressed to a loopback name are answered, so a web page
elsewhere cannot read the dashboard through DNS rebinding.
"""

import secrets
from datetime import UTC, datetime
from importlib.resources import files
from pathlib import Path
from typing import Annotated, Final

from fastapi import Depends, FastAPI, HTTPException, Query, Request, Response, params
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.security import HTTPBasic, HTTPBasicCredentials
from pydantic import BaseModel
from starlette.middleware.base import RequestResponseEndpoint
from starlette.middleware.trustedhost import TrustedHostMiddleware

from adstream.dashboard import queries
from adstream.dashboard.queries import (
    DEFAULT_WINDOW_MINUTES,
    MAX_WINDOW_MINUTES,
    MIN_WINDOW_MINUTES,
    Dimension,
    PlatformMix,
    Rejected,
    Summary,
    TimeSeries,
    Top,
    Window,
)
from adstream.errors import AdstreamError
from adstream.settings import Settings

USER: Final = "adstream"
REALM: Final = "adstream dashboard"
LOOPBACK_NAMES: Final = ("127.0.0.1", "localhost", "::1")
STATIC: Final = Path(__file__).parent / "static"
ASSETS: Final = {
    "dashboard.js": STATIC / "dashboard.js",
    "dashboard.css": STATIC / "dashboard.css",
    "plotly.min.js": Path(str(files("plotly") / "package_data" / "plotly.min.js")),
}
EARLIEST_UNTIL: Final = datetime(1, 1, 3, tzinfo=UTC)
LATEST_UNTIL: Final = datetime(9999, 12, 30, tzinfo=UTC)
SECURITY_HEADERS: Final = {
    # Plotly sets inline styles on the elements it draws.
    "Content-Security-Policy": "default-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


class Config(BaseModel):
    """What the page needs to know about this server."""

    refresh_seconds: float
    default_window: int


def window(
    minutes: Annotated[
        int,
        Query(
            ge=MIN_WINDOW_MINUTES,
            le=MAX_WINDOW_MINUTES,
            description="Length of the window in minutes.",
        ),
    ] = DEFAULT_WINDOW_MINUTES,
    until: Annotated[
        datetime | None,
        Query(description="End of the window (exclusive), ISO-8601, UTC unless given; now."),
    ] = None,
) -> Window:
    """The window of a request: the `minutes` before `until` (default now)."""
    if until is None:
        return Window(minutes, datetime.now(UTC))
    end = until.replace(tzinfo=UTC) if until.tzinfo is None else until
    if not EARLIEST_UNTIL <= end <= LATEST_UNTIL:  # the window must fit Python's datetimes
        raise RequestValidationError(
            [
                {
                    "loc": ("query", "until"),
                    "msg": f"Value error, must lie between {EARLIEST_UNTIL.date()} and "
                    f"{LATEST_UNTIL.date()}",
                    "type": "value_error",
                    "input": str(until),
                }
            ]
        )
    return Window(minutes, end.astimezone(UTC))


WindowParameter = Annotated[Window, Depends(window)]


def password_check(password: str) -> params.Depends:
    """A dependency that admits a request only with user `adstream` and this password."""
    basic = HTTPBasic(realm=REALM)

    def check(credentials: Annotated[HTTPBasicCredentials, Depends(basic)]) -> None:
        user_ok = secrets.compare_digest(credentials.username.encode(), USER.encode())
        password_ok = secrets.compare_digest(credentials.password.encode(), password.encode())
        if not (user_ok and password_ok):
            raise HTTPException(
                status_code=401,
                detail="wrong user or password",
                headers={"WWW-Authenticate": f'Basic realm="{REALM}"'},
            )

    return params.Depends(check)


def create_app(settings: Settings) -> FastAPI:
    """The dashboard of the tables these settings name."""
    password = settings.dashboard_password
    app = FastAPI(
        title=REALM,
        # The interactive API docs load their scripts from a CDN; docs/dashboard.md describes
        # the API instead.
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        dependencies=[] if password is None else [password_check(password.get_secret_value())],
    )
    if password is None:
        app.add_middleware(
            TrustedHostMiddleware, allowed_hosts=[*LOOPBACK_NAMES, settings.dashboard_host]
        )

    @app.middleware("http")
    async def security_headers(request: Request, call_next: RequestResponseEndpoint) -> Response:
        response = await call_next(request)
        response.headers.update(SECURITY_HEADERS)
        return response

    @app.exception_handler(AdstreamError)
    async def unavailable(request: Request, error: AdstreamError) -> JSONResponse:
        # A missing table, an unreachable catalog: the page shows the message and retries.
        return JSONResponse(status_code=503, content={"detail": str(error)})

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    @app.get("/static/{name}", include_in_schema=False)
    def asset(name: str) -> FileResponse:
        path = ASSETS.get(name)
        if path is None:
            raise HTTPException(status_code=404, detail=f"no asset {name!r}")
        return FileResponse(path, headers={"Cache-Control": "no-cache"})

    @app.get("/api/config")
    def config() -> Config:
        """The page's refresh interval and window choices."""
        return Config(
            refresh_seconds=settings.dashboard_refresh.total_seconds(),
            default_window=DEFAULT_WINDOW_MINUTES,
        )

    @app.get("/api/summary")
    def summary(window: WindowParameter) -> Summary:
        """Impressions, clicks, CTR, revenue and spend of the window; the freshness lag."""
        return queries.summary(settings, window)

    @app.get("/api/timeseries")
    def time_series(window: WindowParameter) -> TimeSeries:
        """The same numbers for each minute of the window."""
        return queries.time_series(settings, window)

    @app.get("/api/top")
    def top(
        window: WindowParameter,
        dimension: Annotated[
            Dimension, Query(description="Rank campaigns or publishers.")
        ] = "campaign",
        limit: Annotated[int, Query(ge=1, le=50, description="How many to list.")] = 10,
    ) -> Top:
        """The campaigns or publishers with the most revenue in the window."""
        return queries.top(settings, window, dimension, limit)

    @app.get("/api/platforms")
    def platforms(window: WindowParameter) -> PlatformMix:
        """Impressions (and the other totals) per platform category."""
        return queries.platform_mix(settings, window)

    @app.get("/api/rejected")
    def rejected(window: WindowParameter) -> Rejected:
        """Rejected records per stream and reason, by the time they were rejected."""
        return queries.rejected(settings, window)

    return app
