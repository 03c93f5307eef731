"""A process that fails is reported in one line: what its own output says went wrong."""

from pathlib import Path

from adstream.join.launcher import job_failure
from adstream.services.process import LogTail, last_error
from tests.conftest import instance_settings

JAVA_TRACE = """\
2026-12-06 10:00:01,123 INFO  org.apache.flink.runtime.jobmaster.JobMaster - Starting job
2026-12-06 10:00:02,456 WARN  org.apache.kafka.clients.NetworkClient - Connection refused
org.apache.flink.runtime.client.JobExecutionException: Job execution failed.
\tat org.apache.flink.runtime.jobmaster.JobResult.toJobExecutionResult(JobResult.java:144)
\tat java.base/java.lang.Thread.run(Thread.java:840)
Caused by: org.apache.flink.runtime.JobException: Recovery is suppressed by NoRestartBackoff
\tat org.apache.flink.runtime.executiongraph.failover.ExecutionFailureHandler.handle(X.java:1)
Caused by: java.lang.ArithmeticException: / by zero
\tat adstream.AdJoin.eval(AdJoin.java:42)
\t... 12 more
"""

PYTHON_TRACE = """\
adstream-enrich: running: batch 0
Traceback (most recent call last):
  File "/app/adstream/enrich/job.py", line 10, in <module>
    main()
  File "/app/adstream/enrich/writer.py", line 20, in write
    raise ValueError("Error in the writer")
pyspark.errors.exceptions.captured.AnalysisException: [TABLE_OR_VIEW_NOT_FOUND] no such table
"""

# Flink's own message, as its CheckpointCoordinator writes it when operators no longer match.
NOT_RESTORABLE = """\
2026-12-06 10:00:03,000 INFO  org.apache.flink.runtime.checkpoint.CheckpointCoordinator - Restoring
Caused by: java.lang.IllegalStateException: Failed to rollback to checkpoint/savepoint \
file:/data/flink/checkpoints/3f2a/chk-17. Cannot map checkpoint/savepoint state for operator \
77fec41789154996bfa76055dea29472 to the new program, because the operator is not available in \
the new program. If you want to allow to skip this, you can set the --allowNonRestoredState \
option on the CLI.
\tat org.apache.flink.runtime.checkpoint.Checkpoints.throwNonRestoredStateException(X.java:1)
"""
OTHER_STATE_LAYOUT = """\
2026-12-08 02:50:01,000 WARN  org.apache.flink.runtime.taskmanager.Task - ProcessTableFunction
Caused by: org.apache.flink.util.StateMigrationException: For heap backends, the new state \
serializer (org.apache.flink.table.runtime.typeutils.RowDataSerializer@3333b6e6) must not be \
incompatible with the old state serializer \
(org.apache.flink.table.runtime.typeutils.RowDataSerializer@7128ac20).
\tat org.apache.flink.runtime.state.heap.HeapKeyedStateBackend.tryRegisterStateTable(X.java:1)
"""


def test_a_java_failure_is_its_innermost_cause() -> None:
    assert last_error(JAVA_TRACE) == "java.lang.ArithmeticException: / by zero"


def test_a_python_failure_is_the_exception_the_traceback_ends_with() -> None:
    assert last_error(PYTHON_TRACE) == (
        "pyspark.errors.exceptions.captured.AnalysisException: "
        "[TABLE_OR_VIEW_NOT_FOUND] no such table"
    )


def test_without_an_error_line_the_last_line_shows_and_nothing_says_so() -> None:
    assert last_error("starting\n\nstopped by signal 9\n") == "stopped by signal 9"
    assert last_error("") == "no output"
    assert len(last_error("RuntimeException: " + "x" * 2000)) == 500


def test_the_log_tail_shows_only_this_runs_error(tmp_path: Path) -> None:
    log_file = tmp_path / "job.log"
    log_file.write_text("java.lang.OutOfMemoryError: Java heap space (an earlier run)\n")
    tail = LogTail(log_file)
    with log_file.open("a") as output:
        output.write("starting\nERROR broker at 127.0.0.1:1 is not reachable\n")
    assert tail.last_error() == "ERROR broker at 127.0.0.1:1 is not reachable"


def test_the_log_tail_reads_new_whole_lines_once_and_a_rewritten_log_from_its_start(
    tmp_path: Path,
) -> None:
    log_file = tmp_path / "flink.log"
    log_file.write_text("JVM 1 started\nan earlier line\n")
    tail = LogTail(log_file)
    assert tail.new_lines() == b""
    with log_file.open("a") as output:
        output.write("one\ntw")
    assert tail.new_lines() == b"one\n"  # the partial line waits for its end
    with log_file.open("a") as output:
        output.write("o\n")
    assert tail.new_lines() == b"two\n"
    assert tail.new_lines() == b""
    assert tail.text() == "one\ntwo\n"

    log_file.write_text("JVM 2 started\n" + "x" * 200 + "\n")  # a new JVM, a longer log
    assert tail.new_lines() == b"JVM 2 started\n" + b"x" * 200 + b"\n"
    log_file.write_text("JVM 3 started\n")  # shorter than what was read
    assert tail.text() == "JVM 3 started\n"
    assert tail.new_lines() == b"JVM 3 started\n"
    assert LogTail(tmp_path / "none.log").new_lines() == b""


def test_a_checkpoint_of_another_join_names_the_way_out(tmp_path: Path) -> None:
    settings = instance_settings(tmp_path / "data")
    home = settings.data_dir.resolve() / "flink"
    way_out = (
        "wrote it (another adstream version); finish that job with a bounded run of its own "
        f"version, or move {home}/checkpoints and {home}/savepoints away to start from the "
        "committed offsets (docs/join.md)"
    )
    assert job_failure(settings, NOT_RESTORABLE) == (
        "cannot restore file:/data/flink/checkpoints/3f2a/chk-17: a join whose operators or "
        f"state differ {way_out}"
    )
    assert job_failure(settings, OTHER_STATE_LAYOUT) == (
        "cannot restore the join's checkpoint or savepoint: a join whose operators or state "
        f"differ {way_out}"
    )
    assert job_failure(settings, JAVA_TRACE) == "java.lang.ArithmeticException: / by zero"
