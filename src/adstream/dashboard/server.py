"""Serving the dashboard: uvicorn on a socket bound up front, in the foreground or a thread.

The socket is bound before anything else starts, so a taken port or an address that would
expose the dashboard without a password fails at once, with one clear line.
"""

import ipaddress
import os
import socket
import threading
import time
from typing import Final

import uvicorn

from adstream.dashboard.app import create_app
from adstream.errors import AdstreamError
from adstream.settings import Settings

_STARTUP_TIMEOUT: Final = 30.0
_SHUTDOWN_TIMEOUT: Final = 5


def is_loopback(host: str) -> bool:
    """Whether an address only this machine can reach (`localhost`, 127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_exposure(settings: Settings) -> None:
    """Refuse to serve beyond this machine without a password.

    Raises:
        AdstreamError: dashboard_host is not a loopback address and no password is set.
    """
    if not is_loopback(settings.dashboard_host) and settings.dashboard_password is None:
        raise AdstreamError(
            f"the dashboard would be reachable from other machines at "
            f"{settings.dashboard_host}: set a password (ADSTREAM_DASHBOARD_PASSWORD or "
            "dashboard_password in adstream.toml) or bind to 127.0.0.1"
        )


def bind(settings: Settings) -> socket.socket:
    """A listening socket at dashboard_host:dashboard_port (port 0: any free one).

    Raises:
        AdstreamError: the address is exposed without a password, or cannot be bound.
    """
    check_exposure(settings)
    host, port = settings.dashboard_host, settings.dashboard_port
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        return socket.create_server((host, port), family=family)
    except OSError as error:
        # Not the message itself: it repeats the address, or is a bare code from the resolver.
        reason = os.strerror(error.errno) if error.errno and error.errno > 0 else error.strerror
        raise AdstreamError(
            f"cannot serve the dashboard at {host}:{port}: {reason}; "
            "choose another with --dashboard-host/--dashboard-port (or ADSTREAM_DASHBOARD_*)"
        ) from error


class DashboardServer:
    """The dashboard of these settings, listening from construction until `stop`."""

    def __init__(self, settings: Settings) -> None:
        """Bind the socket (see `bind`); serving starts with `serve` or `start`."""
        self.socket = bind(settings)
        host, port = self.socket.getsockname()[:2]
        shown = f"[{host}]" if ":" in host else host
        self.url = f"http://{shown}:{port}/"
        self._server = uvicorn.Server(
            uvicorn.Config(
                create_app(settings),
                log_config=None,  # adstream's own logging, as configured by the CLI
                log_level="warning",
                access_log=False,
                timeout_graceful_shutdown=_SHUTDOWN_TIMEOUT,
            )
        )
        self._thread: threading.Thread | None = None

    def serve(self) -> None:
        """Serve in the foreground until Ctrl-C or SIGTERM."""
        try:
            self._server.run(sockets=[self.socket])
        except KeyboardInterrupt:
            pass  # uvicorn shut down cleanly, then passed the Ctrl-C on
        finally:
            self.socket.close()

    def start(self) -> None:
        """Serve in a background thread; return once it answers.

        Raises:
            AdstreamError: the server did not come up.
        """
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self.socket]}, daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + _STARTUP_TIMEOUT
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise AdstreamError(f"the dashboard did not start at {self.url}")
            time.sleep(0.05)

    def stop(self) -> None:
        """Stop serving (after the requests in flight) and close the socket."""
        if self._thread is not None:
            self._server.should_exit = True
            self._thread.join()
            self._thread = None
        self.socket.close()
