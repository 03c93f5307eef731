"""Start the Flink join job from the app environment: parameters, checkpoints, logs, exit."""

import hashlib
import logging
import subprocess
import time
from pathlib import Path

from adstream.errors import AdstreamError
from adstream.join.params import JoinParams
from adstream.services.kafka_client import ensure_topics, require_broker
from adstream.settings import Settings

log = logging.getLogger(__name__)


def instance_id(settings: Settings) -> str:
    """A short id unique to this data directory: names its consumer group and transactions."""
    return hashlib.sha256(str(settings.data_dir.resolve()).encode()).hexdigest()[:10]


def flink_home(settings: Settings) -> Path:
    """Checkpoints, parameters and logs of the join job live here."""
    return settings.data_dir.resolve() / "flink"


def latest_checkpoint(checkpoint_dir: Path) -> Path | None:
    """The newest completed checkpoint (a `chk-N` folder with `_metadata`), if any."""
    completed = list(checkpoint_dir.glob("*/chk-*/_metadata"))
    if not completed:
        return None
    return max(completed, key=lambda path: path.stat().st_mtime).parent


def join_params(settings: Settings, *, bounded: bool) -> JoinParams:
    """The job's parameters from the settings; restores from the latest checkpoint if any."""
    home = flink_home(settings)
    checkpoints = home / "checkpoints"
    restore = latest_checkpoint(checkpoints)
    jars = sorted((settings.lib_dir / "flink").glob("*.jar"))
    if not jars:
        raise AdstreamError(
            f"Flink connector jars not found in {settings.lib_dir / 'flink'}; "
            "run `make setup` first"
        )
    instance = instance_id(settings)
    return JoinParams(
        bootstrap_servers=settings.bootstrap_servers,
        attribution_window_ms=_ms(settings.attribution_window.total_seconds()),
        out_of_orderness_ms=_ms(settings.out_of_orderness.total_seconds()),
        idle_timeout_ms=_ms(settings.idle_timeout.total_seconds()),
        future_bound_ms=_ms(settings.future_bound.total_seconds()),
        checkpoint_interval_ms=_ms(settings.checkpoint_interval.total_seconds()),
        state_ttl_ms=_ms(settings.dedup_horizon.total_seconds()),
        parallelism=settings.join_parallelism,
        bounded=bounded,
        checkpoint_dir=str(checkpoints),
        transactional_id_prefix=f"adstream-join-{instance}",
        consumer_group=f"adstream-join-{instance}",
        connector_jars=tuple(str(jar) for jar in jars),
        restore_from=str(restore) if restore else None,
    )


def start_join(settings: Settings, *, bounded: bool) -> subprocess.Popen[bytes]:
    """Start the job process (in `.venv-flink`); its output goes to `<data>/flink/join.log`."""
    require_broker(settings)
    ensure_topics(settings)
    if not settings.flink_python.exists():
        raise AdstreamError(
            f"Flink environment not found ({settings.flink_python}); run `make setup` first"
        )
    params = join_params(settings, bounded=bounded)
    home = flink_home(settings)
    home.mkdir(parents=True, exist_ok=True)
    params_file = home / "join-params.json"
    params_file.write_text(params.to_json())
    log.info(
        "starting the join (W=%s, D=%s, idle %s, checkpoints every %s, parallelism %d%s%s)",
        settings.attribution_window,
        settings.out_of_orderness,
        settings.idle_timeout,
        settings.checkpoint_interval,
        settings.join_parallelism,
        ", bounded" if bounded else "",
        f", restoring {params.restore_from}" if params.restore_from else "",
    )
    with (home / "join.log").open("ab") as output:
        return subprocess.Popen(
            [str(settings.flink_python), "-m", "adstream.join.job", str(params_file)],
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
        )


def run_join(settings: Settings, *, bounded: bool) -> None:
    """Run the job to its end: a bounded run exits when everything is committed."""
    began = time.monotonic()
    process = start_join(settings, bounded=bounded)
    try:
        code = process.wait()
    except KeyboardInterrupt:
        process.terminate()
        process.wait()
        raise
    if code != 0:
        raise AdstreamError(
            f"the join job failed (exit {code}): {_last_error(flink_home(settings) / 'join.log')}"
        )
    log.info("join finished in %.1f s", time.monotonic() - began)


def _ms(seconds: float) -> int:
    return round(seconds * 1000)


def _last_error(log_file: Path) -> str:
    lines = log_file.read_text(errors="replace").splitlines()
    errors = [line for line in lines if "Exception" in line or "Error" in line]
    return (errors or lines or ["no output"])[-1][:500]
