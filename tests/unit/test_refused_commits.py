"""`adstream run` sees each checkpoint whose Kafka transaction the broker refused, and finds the
checkpoint before it to restore."""

import os
from pathlib import Path

from adstream.join.launcher import (
    RefusedCommits,
    discard_refused,
    latest_checkpoint,
    restore_point,
)
from adstream.settings import Settings, load_settings


def refused(checkpoint: int) -> str:
    """As the join's sink logs it (java/.../RefusedCommitStops.java)."""
    return (
        "2026-12-07 15:06:52,717 ERROR io.adstream.flink.RefusedCommitStops [] - Kafka refused "
        f"to commit the transaction of checkpoint {checkpoint} (adstream-join-5a70c49f53-"
        f"joined_output-0-{checkpoint}): the broker aborted it, so its records are not written;"
        " the job stops so that no later checkpoint commits, and must restore the checkpoint "
        "before it to write them again\n"
        "org.apache.flink.kafka.shaded.org.apache.kafka.common.errors.ProducerFencedException: "
        "There is a newer producer with the same transactionalId which fences the current one.\n"
    )


def started(at: str) -> str:
    return f"2026-12-07 {at},000 INFO  flink.runtime.minicluster.MiniCluster [] - Starting\n"


def flink_log(settings: Settings) -> Path:
    path = settings.data_dir.resolve() / "flink" / "log" / "flink-root-python-vm.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def test_each_refusal_is_seen_once_and_an_earlier_runs_are_not(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path)
    log = flink_log(settings)
    log.write_text(started("23:00:00") + refused(12))  # an earlier run's
    watched = RefusedCommits(settings)
    assert watched.new() == set()

    line = refused(31)
    with log.open("a") as output:
        output.write(line + line[:60])  # and the start of one more line
    assert watched.new() == {31}
    assert watched.new() == set()
    with log.open("a") as output:
        output.write(line[60:].replace("31", "32", 1))
    assert watched.new() == {32}


def test_a_log_rewritten_by_a_restarted_jvm_is_read_from_its_start(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path)
    log = flink_log(settings)
    log.write_text(started("23:00:00") + "x" * 100 + "\n")
    watched = RefusedCommits(settings)
    assert watched.new() == set()

    log.write_text(started("23:01:00") + "y" * 500 + "\n" + refused(7))  # longer than before
    assert watched.new() == {7}
    log.write_text(started("23:02:00") + refused(7))  # shorter than before: Flink's restore
    assert watched.new() == {7}


def test_no_log_yet_is_nothing_refused(tmp_path: Path) -> None:
    watched = RefusedCommits(load_settings(data_dir=tmp_path))
    assert watched.new() == set()
    flink_log(load_settings(data_dir=tmp_path)).write_text(started("23:00:00") + refused(3))
    assert watched.new() == {3}  # the first JVM of this run


def completed(folder: Path, at: float) -> Path:
    """A completed checkpoint or savepoint, completed at `at` (its `_metadata`'s time)."""
    folder.mkdir(parents=True)
    (folder / "_metadata").write_bytes(b"metadata")
    os.utime(folder / "_metadata", (at, at))
    return folder


def test_the_refused_checkpoint_and_those_after_go_and_the_one_before_is_restored(
    tmp_path: Path,
) -> None:
    old_job, job = tmp_path / "checkpoints" / ("a" * 32), tmp_path / "checkpoints" / ("b" * 32)
    completed(old_job / "chk-29", 100)  # restored by this job, which went on from it
    before = completed(job / "chk-30", 200)
    later = [completed(job / "chk-31", 300), completed(job / "chk-32", 400)]
    (job / "shared").mkdir()

    assert discard_refused(tmp_path, 31) == before

    assert latest_checkpoint(tmp_path) == before
    assert not any(folder.exists() for folder in later)
    assert (old_job / "chk-29").exists() and (job / "shared").exists()


def test_a_savepoint_before_the_refused_checkpoint_is_restored(tmp_path: Path) -> None:
    savepoint = completed(tmp_path / "savepoints" / "savepoint-0a1b2c-3d4e5f", 100)
    completed(tmp_path / "checkpoints" / ("c" * 32) / "chk-9", 200)  # the first after it

    assert discard_refused(tmp_path, 9) == savepoint


def test_without_the_checkpoint_just_before_nothing_is_deleted(tmp_path: Path) -> None:
    job = tmp_path / "checkpoints" / ("d" * 32)
    kept = [completed(job / "chk-28", 100), completed(job / "chk-31", 300)]  # 29, 30 subsumed

    assert discard_refused(tmp_path, 31) is None  # 28 would repeat what 29 and 30 committed
    assert discard_refused(tmp_path, 40) is None  # not there at all
    assert discard_refused(tmp_path, 28) is None  # the first: its input offsets are gone
    assert all(folder.exists() for folder in kept)


def test_a_join_started_after_a_refusal_restores_the_checkpoint_before_it(
    tmp_path: Path,
) -> None:
    settings = load_settings(data_dir=tmp_path)
    home = settings.data_dir.resolve() / "flink"
    job = home / "checkpoints" / ("f" * 32)
    before = completed(job / "chk-30", 100)
    completed(job / "chk-31", 200)
    assert restore_point(home) == job / "chk-31"  # nothing refused: the newest

    flink_log(settings).write_text(started("15:00:00") + refused(31) + refused(31))
    assert restore_point(home) == before
    assert restore_point(home) == before  # the same log, read again: nothing more to delete
    assert not (job / "chk-31").exists()
