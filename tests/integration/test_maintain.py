"""Table maintenance through the real Spark job (issue 17): the endless enrichment maintains its
tables while it commits, `adstream maintain` does so on its own, and every row is still there
exactly once, as the reference says, before and after.
"""

import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from adstream.enrich.launcher import enrich_log
from adstream.enrich.maintain import SORTED
from adstream.enrich.offsets import OFFSETS_PROPERTY
from adstream.lakehouse.catalog import open_catalog
from adstream.lakehouse.tables import NAMESPACE, TABLES
from adstream.settings import Settings
from tests.cli import ADSTREAM, adstream, interruptible
from tests.conftest import instance_env
from tests.integration.test_enrich import (
    Sent,
    batch_a,
    enrich_bounded,
    expected_tables,
    produce,
    read_tables,
)
from tests.join_harness import recreate_topics

pytestmark = pytest.mark.integration

ROUNDS = 3


def test_tables_maintained_while_written_hold_every_row_once(
    kafka: Settings, tmp_path: Path
) -> None:
    recreate_topics(kafka, partitions=2)
    settings = kafka.model_copy(update={"data_dir": tmp_path / "data"})
    env = {
        **instance_env(settings),
        "ADSTREAM_SPARK_MASTER": "local[2]",
        "ADSTREAM_SPARK_DRIVER_MEMORY": "768m",
        "ADSTREAM_ENRICH_TRIGGER_INTERVAL": "0.5",
        "ADSTREAM_MAINTAIN_INTERVAL": "2",
        "ADSTREAM_MAINTAIN_SNAPSHOT_RETENTION": "0",
    }
    job = subprocess.Popen(
        [ADSTREAM, "enrich"],
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
        preexec_fn=interruptible,
    )
    log = enrich_log(settings)
    sent: list[Sent] = []
    try:
        wait_for(lambda: "running:" in _text(log), "the enrichment runs", job)
        for _ in range(ROUNDS):  # one commit per round at least: many small files
            round_ = batch_a()
            produce(kafka, round_)
            sent += round_
            wait_for(written(settings, expected_tables(sent)), "the round is written", job)
        # The first maintenance starts 2 s in: it runs while the rounds commit.
        wait_for(lambda: "tables maintained in" in _text(log), "maintenance ran", job)
        job.send_signal(signal.SIGINT)  # Ctrl-C: the job stops, its batches all committed
        assert job.wait(timeout=300) == 130, job.stderr.read().decode() if job.stderr else ""
    finally:
        if job.poll() is None:
            os.killpg(job.pid, signal.SIGKILL)
            job.wait()
    assert "maintained enriched_ad_data: data files" in _text(log)
    assert read_tables(settings) == expected_tables(sent)

    result = adstream("maintain", env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert [line.split(":")[0] for line in lines[1:-1]] == [table.name for table in TABLES]
    assert lines[-1].startswith("tables maintained in")
    catalog = open_catalog(settings)
    for table in TABLES:
        loaded = catalog.load_table(f"{NAMESPACE}.{table.name}")
        files = loaded.inspect.data_files().to_pylist()
        partitions = [str(f["partition"]) for f in files]
        # Compacted: one data file per partition.
        assert len(partitions) == len(set(partitions)), table.name
        if table.name in SORTED:  # in the order of the time the dashboard reads it by
            for file in files:
                read = pq.read_table(
                    file["file_path"].removeprefix("file://"), columns=[table.partitioned_by]
                )
                in_file = read.column(0).to_pylist()
                assert in_file == sorted(in_file), table.name
        # Expired (retention 0): every snapshot before the newest that records positions.
        times = [snapshot.timestamp_ms for snapshot in loaded.snapshots()]
        with_positions = [
            snapshot.timestamp_ms
            for snapshot in loaded.snapshots()
            if snapshot.summary is not None and snapshot.summary.get(OFFSETS_PROPERTY)
        ]
        assert min(times) == max(with_positions), table.name
    assert read_tables(settings) == expected_tables(sent)

    # What the tables have taken in survived the expiry: a new round is added once, no more.
    last = batch_a()
    produce(kafka, last)
    enrich_bounded(settings)
    assert read_tables(settings) == expected_tables(sent + last)


def wait_for(
    condition: Callable[[], bool], what: str, job: subprocess.Popen[bytes], within: float = 180
) -> None:
    """Poll `condition` until it holds; fail naming `what` if the job exits or time runs out."""
    deadline = time.monotonic() + within
    while not condition():
        assert job.poll() is None, f"the enrichment exited ({job.returncode}) before {what}"
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.5)


def written(settings: Settings, expected: dict[str, list[dict[str, Any]]]) -> Callable[[], bool]:
    """Whether the tables hold exactly `expected`."""
    return lambda: read_tables(settings) == expected


def _text(path: Path) -> str:
    return path.read_text(errors="replace") if path.exists() else ""
