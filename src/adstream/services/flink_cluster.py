"""The local standalone Flink cluster: a JobManager and TaskManagers, bound to loopback.

Run by the start/stop scripts of the PyFlink distribution in `.venv-flink`; its configuration,
logs, PID files and scratch space live under `<data_dir>/flink-cluster/`, never in
site-packages (the scripts read `FLINK_CONF_DIR`, `FLINK_LOG_DIR` and `FLINK_PID_DIR`).
"""

import json
import logging
import os
import subprocess
import time
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Final

from adstream.errors import AdstreamError
from adstream.services.flink_rest import FlinkRest
from adstream.services.process import (
    is_live_process_with,
    last_error,
    port_is_free,
    stop_pids,
    wait_until,
)
from adstream.settings import Settings

log = logging.getLogger(__name__)

HOST: Final = "127.0.0.1"
# FLINK_IDENT_STRING: names the PID and log files the scripts write.
_IDENT: Final = "adstream"
_JOBMANAGER: Final = "standalonesession"
_TASKMANAGER: Final = "taskexecutor"
# The distribution's scripts give each daemon 10 s after SIGTERM; the margin covers a slow host.
_STOP_TIMEOUT_S: Final = 30.0
# Run by .venv-flink's Python: where its pyflink package (the Flink distribution) lives.
_FIND_PYFLINK: Final = (
    "import importlib.util; "
    "print(importlib.util.find_spec('pyflink').submodule_search_locations[0])"
)
_LOG_CONFIGS: Final = (
    "log4j.properties",
    "log4j-cli.properties",
    "log4j-console.properties",
    "log4j-session.properties",
    "logback.xml",
    "logback-console.xml",
    "logback-session.xml",
)


@dataclass(frozen=True)
class FlinkStatus:
    """What `adstream status` reports about the cluster."""

    jobmanager: int | None
    taskmanagers: tuple[int, ...]
    rest_url: str
    overview: dict[str, Any] | None  # REST /overview, None when it does not answer

    @property
    def running(self) -> bool:
        """Whether any process of the cluster runs."""
        return self.jobmanager is not None or bool(self.taskmanagers)


class FlinkCluster(FlinkRest):
    """The cluster of one data directory: its files live under `<data_dir>/flink-cluster/`."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(f"http://{HOST}:{settings.flink_rest_port}")
        self.settings = settings
        self.home = settings.data_dir.resolve() / "flink-cluster"
        self.conf_dir = self.home / "conf"
        self.log_dir = self.home / "log"
        self.pid_dir = self.home / "pid"
        self.tmp_dir = self.home / "tmp"

    @property
    def address(self) -> str:
        """host:port of the REST endpoint, where jobs are submitted."""
        return f"{HOST}:{self.settings.flink_rest_port}"

    @property
    def slots(self) -> int:
        """Task slots of the whole cluster: the largest parallelism a job can have."""
        return self.settings.flink_taskmanagers * self.settings.flink_task_slots

    @cached_property
    def flink_home(self) -> Path:
        """The Flink distribution inside the PyFlink package of `.venv-flink`."""
        python = self.settings.flink_python
        if not python.exists():
            raise AdstreamError(f"Flink environment not found ({python}); run `make setup` first")
        result = subprocess.run(
            [str(python), "-c", _FIND_PYFLINK],
            capture_output=True,
            text=True,
            check=False,
        )
        home = Path(result.stdout.strip())
        if result.returncode != 0 or not (home / "bin" / "start-cluster.sh").exists():
            raise AdstreamError(f"PyFlink with its bin/ scripts not found in {python}'s packages")
        return home

    def environment(self) -> dict[str, str]:
        """Environment for the distribution's scripts and the `flink` client: our folders."""
        return {
            **os.environ,
            "FLINK_HOME": str(self.flink_home),
            "FLINK_CONF_DIR": str(self.conf_dir),
            "FLINK_LOG_DIR": str(self.log_dir),
            "FLINK_PID_DIR": str(self.pid_dir),
            "FLINK_IDENT_STRING": _IDENT,
        }

    def script(self, name: str) -> list[str]:
        """The command line of one of the distribution's scripts (`flink`, `start-cluster.sh`)."""
        return ["bash", str(self.flink_home / "bin" / name)]

    def start(self) -> bool:
        """Start the cluster, wait for every TaskManager; False when it was already running."""
        settings = self.settings
        state = self.status()
        if state.running:
            if state.jobmanager is None or len(state.taskmanagers) != settings.flink_taskmanagers:
                raise AdstreamError(
                    f"the Flink cluster of {settings.data_dir} is only partly running "
                    f"({len(state.taskmanagers)} of {settings.flink_taskmanagers} TaskManagers); "
                    "run `adstream down` first"
                )
            self._wait_ready()
            return False
        for port in (settings.flink_rest_port, *settings.flink_rpc_ports):
            if not port_is_free(HOST, port):
                raise AdstreamError(
                    f"port {port} on {HOST} is already in use; stop what uses it or choose other "
                    "ports (ADSTREAM_FLINK_REST_PORT, ADSTREAM_FLINK_RPC_PORT)"
                )
        self._write_config()
        log.info(
            "starting the Flink cluster (1 JobManager, %d TaskManagers) at %s",
            settings.flink_taskmanagers,
            self.rest_url,
        )
        began = time.monotonic()
        result = subprocess.run(
            self.script("start-cluster.sh"),
            env=self.environment(),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            check=False,
            start_new_session=True,  # the daemons must outlive a Ctrl-C aimed at us
            timeout=settings.startup_timeout.total_seconds(),
        )
        (self.log_dir / "start-cluster.out").write_text(result.stdout + result.stderr)
        if result.returncode != 0:
            raise AdstreamError(
                f"start-cluster.sh failed: {last_error(result.stdout + result.stderr)}"
            )
        self._wait_ready()
        log.info(
            "Flink cluster ready in %.1f s (%d slots); web UI %s",
            time.monotonic() - began,
            self.slots,
            self.rest_url,
        )
        return True

    def stop(self) -> bool:
        """Stop the JobManager and every TaskManager; False when none was running."""
        running = self._daemons()
        pids = [pid for pids in running.values() for pid in pids]
        if not pids:
            self._remove_pid_files()
            return False
        try:
            subprocess.run(
                self.script("stop-cluster.sh"),
                env=self.environment(),
                stdin=subprocess.DEVNULL,
                capture_output=True,
                check=False,
                start_new_session=True,
                timeout=_STOP_TIMEOUT_S * len(pids),  # it stops them one by one
            )
        except (AdstreamError, subprocess.TimeoutExpired) as error:
            log.warning("stop-cluster.sh did not finish (%s); stopping the processes", error)
        # The scripts stop only what their PID files list; make sure no JVM of ours is left.
        stop_pids(pids, self._is_ours, name="the Flink cluster", timeout=_STOP_TIMEOUT_S)
        self._remove_pid_files()
        log.info("Flink cluster stopped")
        return True

    def status(self) -> FlinkStatus:
        """Which processes of the cluster run, and what its REST API reports."""
        running = self._daemons()
        jobmanagers = running[_JOBMANAGER]
        return FlinkStatus(
            jobmanager=jobmanagers[0] if jobmanagers else None,
            taskmanagers=tuple(running[_TASKMANAGER]),
            rest_url=self.rest_url,
            overview=self.overview() if jobmanagers else None,
        )

    def require_running(self, parallelism: int) -> None:
        """Fail with one clear line unless the cluster runs and has slots for `parallelism`."""
        overview = self.overview()
        if overview is None:
            raise AdstreamError(
                f"the Flink cluster is not running at {self.rest_url}; "
                "start it with `adstream up --cluster`"
            )
        if parallelism > overview["slots-total"]:
            raise AdstreamError(
                f"join parallelism {parallelism} needs {parallelism} task slots, the cluster has "
                f"{overview['slots-total']}; lower --join-parallelism or raise "
                "ADSTREAM_FLINK_TASKMANAGERS / ADSTREAM_FLINK_TASK_SLOTS and restart the cluster"
            )

    def _wait_ready(self) -> None:
        expected = self.settings.flink_taskmanagers

        def ready() -> bool:
            if self.status().jobmanager is None:
                raise AdstreamError(
                    f"the Flink JobManager exited during start-up: {self._last_log_line()}"
                )
            overview = self.overview()
            return overview is not None and overview["taskmanagers"] >= expected

        wait_until(
            ready,
            timeout=self.settings.startup_timeout.total_seconds(),
            what=f"{expected} Flink TaskManagers to register (see {self.log_dir})",
            interval=0.5,
        )

    def _write_config(self) -> None:
        settings = self.settings
        rpc = settings.flink_rpc_ports
        for folder in (self.conf_dir, self.log_dir, self.pid_dir, self.tmp_dir):
            folder.mkdir(parents=True, exist_ok=True)
        shipped = self.flink_home / "conf"
        config = {
            # The --add-opens list the JVMs need on JDK 17+, exactly as the distribution ships it.
            "env.java.opts.all": _shipped_setting(shipped / "config.yaml", "env.java.opts.all"),
            "env.log.dir": str(self.log_dir),
            "env.pid.dir": str(self.pid_dir),
            "jobmanager.bind-host": HOST,
            "jobmanager.rpc.address": HOST,
            "jobmanager.rpc.port": rpc[0],
            "jobmanager.memory.process.size": settings.flink_jobmanager_memory,
            "jobmanager.execution.failover-strategy": "region",
            "blob.server.port": rpc[1],
            "taskmanager.bind-host": HOST,
            "taskmanager.host": HOST,
            # A range: several TaskManagers on one host each take the next free port of it.
            "taskmanager.rpc.port": f"{rpc[2]}-{rpc[-1]}",
            "taskmanager.data.port": 0,
            "taskmanager.numberOfTaskSlots": settings.flink_task_slots,
            "taskmanager.memory.process.size": settings.flink_taskmanager_memory,
            "parallelism.default": 1,
            "rest.address": HOST,
            "rest.bind-address": HOST,
            "rest.port": settings.flink_rest_port,
            "io.tmp.dirs": str(self.tmp_dir),
            "web.tmpdir": str(self.tmp_dir),
            # Only used by Python UDFs; the join is pure SQL, but the workers then find PyFlink.
            "python.executable": str(settings.flink_python),
        }
        (self.conf_dir / "config.yaml").write_text(
            "# Written by adstream for the cluster of this data directory; rewritten by `up`.\n"
            + "".join(f"{key}: {json.dumps(value)}\n" for key, value in config.items())
        )
        # One line per TaskManager; all on this host, so the scripts start them without ssh.
        (self.conf_dir / "workers").write_text(f"{HOST}\n" * settings.flink_taskmanagers)
        (self.conf_dir / "masters").write_text(f"{self.address}\n")
        for name in _LOG_CONFIGS:
            if (shipped / name).exists():
                (self.conf_dir / name).write_bytes((shipped / name).read_bytes())

    def _daemons(self) -> dict[str, list[int]]:
        """PIDs of our running JobManager and TaskManagers, from the scripts' PID files."""
        running: dict[str, list[int]] = {_JOBMANAGER: [], _TASKMANAGER: []}
        for daemon, pids in running.items():
            pid_file = self.pid_dir / f"flink-{_IDENT}-{daemon}.pid"
            try:
                lines = pid_file.read_text().split()
            except FileNotFoundError:
                continue
            pids.extend(int(line) for line in lines if line.isdigit() and self._is_ours(int(line)))
        return running

    def _is_ours(self, pid: int) -> bool:
        """Whether `pid` is a live daemon of this cluster (its --configDir is our conf dir)."""
        return is_live_process_with(pid, b"--configDir\0" + str(self.conf_dir).encode() + b"\0")

    def _remove_pid_files(self) -> None:
        for daemon in (_JOBMANAGER, _TASKMANAGER):
            (self.pid_dir / f"flink-{_IDENT}-{daemon}.pid").unlink(missing_ok=True)

    def _last_log_line(self) -> str:
        logs = sorted(self.log_dir.glob(f"flink-{_IDENT}-{_JOBMANAGER}-*"))
        return last_error("\n".join(path.read_text(errors="replace") for path in logs))


def _shipped_setting(config_file: Path, key: str) -> str:
    """A scalar of the distribution's nested config.yaml (a reader for its plain `k: v` lines)."""
    path: list[tuple[int, str]] = []
    for line in config_file.read_text().splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#") or ":" not in stripped:
            continue
        indent = len(line) - len(line.lstrip())
        name, _, value = stripped.partition(":")
        while path and path[-1][0] >= indent:
            path.pop()
        path.append((indent, name.strip()))
        if ".".join(name for _, name in path) == key and value.strip():
            return value.strip()
    raise AdstreamError(f"{key} not found in {config_file}")
