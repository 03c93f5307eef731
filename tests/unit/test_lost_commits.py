"""`adstream run` sees each Kafka transaction the join could not commit, once."""

from pathlib import Path

from adstream.join.launcher import LostCommits
from adstream.settings import Settings, load_settings

# As Flink's Kafka sink logged it when a paused join resumed past its transaction timeout.
LOST = (
    "2026-12-06 23:57:11,515 ERROR org.apache.flink.connector.kafka.sink.internal.KafkaCommitter"
    " [] - Unable to commit transaction (CommitRequestImpl{state=RECEIVED, numRetries=0, "
    "committable=KafkaCommittable{producerId=262, epoch=0, transactionalId='adstream-join-"
    "862354afd1-rejected_events-0-65', producer=null}}) because its producer is already fenced."
    " [...] recovery took longer than 'transaction.timeout.ms' (20000ms). In both cases this "
    "most likely signals data loss, please consult the Flink documentation for more details.\n"
)


def started(at: str) -> str:
    return f"2026-12-06 {at},000 INFO  flink.runtime.minicluster.MiniCluster [] - Starting\n"


def flink_log(settings: Settings) -> Path:
    path = settings.data_dir.resolve() / "flink" / "log" / "flink-root-python-vm.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def test_each_lost_commit_counts_once_and_an_earlier_runs_do_not(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path)
    log = flink_log(settings)
    log.write_text(started("23:00:00") + LOST)  # an earlier run's
    lost = LostCommits(settings)
    assert lost.total() == 0

    with log.open("a") as output:
        output.write(LOST + LOST[:40])  # and the start of one more line
    assert lost.total() == 1
    assert lost.total() == 1
    with log.open("a") as output:
        output.write(LOST[40:])
    assert lost.total() == 2


def test_a_log_rewritten_by_a_restarted_jvm_is_read_from_its_start(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path)
    log = flink_log(settings)
    log.write_text(started("23:00:00") + "x" * 100 + "\n")
    lost = LostCommits(settings)
    assert lost.total() == 0

    log.write_text(started("23:01:00") + "y" * 500 + "\n" + LOST)  # longer than before
    assert lost.total() == 1
    log.write_text(started("23:02:00") + LOST)  # shorter than before
    assert lost.total() == 2


def test_no_log_yet_is_none_lost(tmp_path: Path) -> None:
    lost = LostCommits(load_settings(data_dir=tmp_path))
    assert lost.total() == 0
    log = flink_log(load_settings(data_dir=tmp_path))
    log.write_text(started("23:00:00") + LOST)  # the first JVM of this run
    assert lost.total() == 1
