"""Shared fixtures: isolation from the developer's settings, and real services per session."""

import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Final

import pytest
from pyspark.sql import SparkSession

from adstream.enrich.session import base_conf, build_session
from adstream.settings import ENV_PREFIX, Settings, load_settings

# Assertions in the shared harness explain their failures like those in test modules.
pytest.register_assert_rewrite("tests.join_harness")

UNIT_TESTS: Final = Path(__file__).parent / "unit"
JVM_FIXTURES: Final = frozenset({"kafka", "spark"})
"""The fixtures that start a JVM (the broker, a Spark session): integration tests only."""


LONGEST_FIRST: Final = (
    "test_join_recovery.py",
    "test_enrich_kinesis.py",
    "test_run.py",
    "test_enrich.py",
    "test_join.py",
    "test_join_kinesis.py",
    "test_join_cluster.py",
    "test_enrich_recovery.py",
    "test_maintain.py",
)
"""Modules of two minutes or more (here), run first: `make test` hands whole modules to its
processes in collection order as each becomes free, so they end within a module of each
other rather than one of them starting a long module last."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Longest modules first; keep tests/unit fast: a test there that starts a JVM is refused
    before anything runs."""
    items.sort(key=lambda item: _rank(item.path.name))
    for item in items:
        if not item.path.is_relative_to(UNIT_TESTS):
            continue
        jvm = sorted(JVM_FIXTURES.intersection(getattr(item, "fixturenames", ())))
        if jvm or item.get_closest_marker("integration"):
            raise pytest.UsageError(
                f"{item.nodeid} starts a JVM ({', '.join(jvm) or 'integration'}): "
                "move it to tests/integration"
            )


def _rank(module: str) -> int:
    return LONGEST_FIRST.index(module) if module in LONGEST_FIRST else len(LONGEST_FIRST)


QUICK_JVM: Final = "-XX:TieredStopAtLevel=1"
"""JIT to C1 only: a JVM that lives for seconds spends half the CPU, the same answers."""


def pytest_configure(config: pytest.Config) -> None:
    """Every JVM of the session (broker, Spark, Flink, in-process or started by the CLI) runs
    with `QUICK_JVM`: most of them live for seconds over little data, where C2's compiling is
    most of the CPU a bounded join spends (54 core-seconds against 29 here). Users' runs keep
    the JVM's default; the benchmarks measure those."""
    present = os.environ.get("JAVA_TOOL_OPTIONS", "")
    if QUICK_JVM not in present:
        os.environ["JAVA_TOOL_OPTIONS"] = f"{present} {QUICK_JVM}".strip()


@pytest.fixture(autouse=True)
def _isolated_from_developer_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test sees the developer's ADSTREAM_* variables or ./adstream.toml."""
    for name in list(os.environ):
        if name.startswith(ENV_PREFIX):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def free_ports(count: int) -> list[int]:
    """Ports nothing listens on right now (the OS hands out distinct ephemeral ports)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def instance_settings(data_dir: Path, **overrides: object) -> Settings:
    """Settings of a private adstream instance: its own data dir and ports."""
    port, controller_port = free_ports(2)
    return load_settings(
        data_dir=data_dir, kafka_port=port, kafka_controller_port=controller_port, **overrides
    )


def instance_env(settings: Settings) -> dict[str, str]:
    """The environment a user would set to point the CLI at this instance."""
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX)},
        "ADSTREAM_DATA_DIR": str(settings.data_dir),
        "ADSTREAM_KAFKA_PORT": str(settings.kafka_port),
        "ADSTREAM_KAFKA_CONTROLLER_PORT": str(settings.kafka_controller_port),
    }


@pytest.fixture(scope="session")
def kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """A real Kafka broker (KRaft) for the whole test session, on its own ports and data dir."""
    from adstream.services.kafka import KafkaBroker

    settings = instance_settings(tmp_path_factory.mktemp("kafka-session"))
    broker = KafkaBroker(settings)
    broker.start()
    try:
        yield settings
    finally:
        broker.stop()


@pytest.fixture(scope="session")
def aws_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """The local AWS API emulator (moto) for the whole test session, on its own port.

    Tests share it and keep apart by their own `stream_prefix` (see `aws_settings`).
    """
    from adstream.services.aws_emulator import AwsEmulator

    (port,) = free_ports(1)
    settings = load_settings(
        data_dir=tmp_path_factory.mktemp("aws-session"),
        platform="aws",
        aws_emulator=True,
        aws_emulator_port=port,
    )
    emulator = AwsEmulator(settings)
    emulator.start()
    try:
        yield settings
    finally:
        emulator.stop()


@pytest.fixture
def lake_emulator(tmp_path: Path) -> Iterator[Settings]:
    """An emulator of this test's own, with the warehouse bucket: for tests that write tables.

    The Glue database is `ad_analytics` for everyone (SPEC section 9), so tests writing tables
    on the aws platform cannot share the session's emulator; one starts in about a second.
    """
    from adstream.platform import start_services
    from adstream.services.aws_emulator import AwsEmulator

    (port,) = free_ports(1)
    settings = load_settings(
        data_dir=tmp_path / "lake-emulator",
        platform="aws",
        aws_emulator=True,
        aws_emulator_port=port,
    )
    emulator = AwsEmulator(settings)
    try:
        start_services(settings)
        yield settings
    finally:
        emulator.stop()


@pytest.fixture
def aws_settings(aws_emulator: Settings, request: pytest.FixtureRequest) -> Settings:
    """Settings on the session's emulator with streams of this test's own (prefixed names)."""
    prefix = f"t{abs(hash(request.node.nodeid)) % 10**8}-"
    return aws_emulator.model_copy(update={"stream_prefix": prefix})


def aws_env(settings: Settings) -> dict[str, str]:
    """The environment a user would set to point the CLI at these settings on the emulator."""
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX)},
        "ADSTREAM_DATA_DIR": str(settings.data_dir),
        "ADSTREAM_PLATFORM": "aws",
        "ADSTREAM_AWS_EMULATOR": "1",
        "ADSTREAM_AWS_EMULATOR_PORT": str(settings.aws_emulator_port),
        "ADSTREAM_STREAM_PREFIX": settings.stream_prefix,
        "ADSTREAM_STREAM_SHARDS": str(settings.stream_shards),
    }


@pytest.fixture(scope="session")
def spark() -> Iterator[SparkSession]:
    """A local Spark session (one JVM) for tests of column expressions on small DataFrames."""
    session = build_session({**base_conf("local[1]"), "spark.sql.shuffle.partitions": "1"})
    yield session
    session.stop()
