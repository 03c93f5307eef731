"""The join on a standalone Flink cluster: `adstream up --cluster`, `join --cluster`, `down`.

One private instance (its own Kafka and cluster, on free ports) for the module; the last test
stops it, so the tests run in the order written.
"""

import ipaddress
import os
import random
import socket
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from adstream.errors import AdstreamError
from adstream.events.outcomes import INPUT_TOPICS
from adstream.generator.runner import generate
from adstream.generator.sinks import KafkaSink
from adstream.services.flink_cluster import FlinkCluster
from adstream.services.kafka import KafkaBroker
from adstream.services.process import port_is_free
from adstream.settings import Settings
from tests.cli import adstream
from tests.conftest import free_ports, instance_env, instance_settings
from tests.join_harness import (
    assert_same_outputs,
    expected_outputs,
    read_outputs,
    recreate_topics,
    source_records,
)

pytestmark = pytest.mark.integration

START = datetime(2026, 11, 1, tzinfo=UTC)
TASKMANAGERS = 2


def free_port_run(count: int) -> int:
    """The first of `count` consecutive free ports, below the ephemeral range.

    Not from the ephemeral range (32768-60999 here): the broker's and the JVMs' own outgoing
    connections take ports there, and did take one of a run between choosing and binding it.
    """
    while True:
        first = random.randrange(20_000, 32_000 - count)
        if all(port_is_free("127.0.0.1", port) for port in range(first, first + count)):
            return first


def cluster_env(settings: Settings) -> dict[str, str]:
    """The environment a user would set to point the CLI at this instance and its cluster."""
    return instance_env(settings) | {
        "ADSTREAM_FLINK_REST_PORT": str(settings.flink_rest_port),
        "ADSTREAM_FLINK_RPC_PORT": str(settings.flink_rpc_port),
    }


@pytest.fixture(scope="module")
def instance(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """An instance started by `adstream up --cluster`: Kafka, a JobManager, 2 TaskManagers."""
    first = free_port_run(3 + TASKMANAGERS)  # REST, JobManager RPC, blob server, TaskManagers
    settings = instance_settings(
        tmp_path_factory.mktemp("cluster"), flink_rest_port=first, flink_rpc_port=first + 1
    )
    env = cluster_env(settings)
    try:
        up = adstream("up", "--cluster", env=env)
        assert up.returncode == 0, up.stderr
        yield settings
    finally:
        adstream("down", env=env)  # a no-op when the last test stopped everything


def test_up_starts_the_cluster_on_loopback_and_status_reports_it(instance: Settings) -> None:
    env = cluster_env(instance)
    cluster = FlinkCluster(instance)
    overview = cluster.overview()
    assert overview is not None
    assert (overview["taskmanagers"], overview["slots-total"]) == (TASKMANAGERS, TASKMANAGERS)

    state = cluster.status()
    assert state.jobmanager is not None
    assert len(state.taskmanagers) == TASKMANAGERS
    listening = listening_addresses([state.jobmanager, *state.taskmanagers])
    assert instance.flink_rest_port in {port for _, port in listening}
    assert {address for address, _ in listening} == {ipaddress.ip_address("127.0.0.1")}

    status = adstream("status", env=env)
    assert status.returncode == 0, status.stderr
    assert f"kafka: running, pid {KafkaBroker(instance).process.pid()}" in status.stdout
    assert (
        f"flink cluster: running, JobManager pid {state.jobmanager}, 2 of 2 TaskManagers"
        in status.stdout
    )
    assert f"web UI http://127.0.0.1:{instance.flink_rest_port}" in status.stdout

    again = adstream("up", "--cluster", env=env)
    assert again.returncode == 0, again.stderr
    assert f"Flink cluster already running at {cluster.rest_url}" in again.stdout
    assert cluster.status() == state  # the same processes


def test_generated_dataset_on_the_cluster_matches_the_batch_recomputation(
    instance: Settings,
) -> None:
    settings = instance.model_copy(
        update={
            "join_parallelism": 2,
            "seed": 8,
            "rate": 0.0,
            "events": 50_000,
            "start_time": START,
            "out_of_order_fraction": 0.05,
            "late_fraction": 0.01,
            "duplicate_impression_fraction": 0.03,
            "duplicate_click_fraction": 0.05,
            "orphan_click_fraction": 0.05,
            "invalid_fraction": 0.02,
        }
    )
    recreate_topics(settings, partitions=2)
    generate(settings, KafkaSink(settings, INPUT_TOPICS))

    join = adstream(
        "join", "--bounded", "--cluster", "--join-parallelism", "2", env=cluster_env(settings)
    )
    assert join.returncode == 0, join.stderr

    outputs = read_outputs(settings)
    assert_same_outputs(outputs, expected_outputs(settings))
    assert len(source_records(settings)) == outputs.total() == 50_000

    # It ran on the cluster, two subtasks per operator, checkpointing into the data directory.
    cluster = FlinkCluster(settings)
    jobs = cluster.rest("GET", "/jobs/overview")["jobs"]
    assert [job["state"] for job in jobs] == ["FINISHED"]
    job_id = jobs[0]["jid"]
    assert f"cluster job {job_id}: FINISHED" in join.stderr
    vertices = cluster.rest("GET", f"/jobs/{job_id}")["vertices"]
    assert {vertex["parallelism"] for vertex in vertices} == {2}
    checkpoint = cluster.rest("GET", f"/jobs/{job_id}/checkpoints")["latest"]["completed"]
    checkpoints = settings.data_dir.resolve() / "flink" / "checkpoints" / job_id
    assert checkpoint["external_path"].startswith(f"file:{checkpoints}/chk-")


def test_join_without_a_cluster_or_with_too_few_slots_is_one_clear_line(
    instance: Settings,
) -> None:
    (unused,) = free_ports(1)
    elsewhere = cluster_env(instance) | {"ADSTREAM_FLINK_REST_PORT": str(unused)}
    result = adstream("join", "--bounded", "--cluster", env=elsewhere)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        f"adstream: error: the Flink cluster is not running at http://127.0.0.1:{unused}; "
        "start it with `adstream up --cluster`"
    )

    result = adstream(
        "join", "--bounded", "--cluster", "--join-parallelism", "3", env=cluster_env(instance)
    )
    assert result.returncode == 1
    assert (
        result.stderr.strip()
        .splitlines()[-1]
        .startswith("adstream: error: join parallelism 3 needs 3 task slots, the cluster has 2;")
    )


def test_a_busy_port_is_one_clear_line(tmp_path: Path) -> None:
    first = free_port_run(3 + TASKMANAGERS)
    settings = instance_settings(tmp_path, flink_rest_port=first, flink_rpc_port=first + 1)
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", first + 3))  # the first TaskManager's RPC port
        squatter.listen()
        with pytest.raises(AdstreamError) as raised:
            FlinkCluster(settings).start()
    assert str(raised.value) == (
        f"port {first + 3} on 127.0.0.1 is already in use; stop what uses it or choose other "
        "ports (ADSTREAM_FLINK_REST_PORT, ADSTREAM_FLINK_RPC_PORT)"
    )


def test_down_stops_every_process_of_the_cluster_and_kafka(instance: Settings) -> None:
    env = cluster_env(instance)
    state = FlinkCluster(instance).status()
    pids = [state.jobmanager, *state.taskmanagers]

    down = adstream("down", env=env)
    assert down.returncode == 0, down.stderr
    assert "Flink cluster stopped" in down.stderr
    assert "Kafka stopped" in down.stderr
    assert not [pid for pid in pids if Path(f"/proc/{pid}").exists()]
    ports = [instance.flink_rest_port, *instance.flink_rpc_ports]
    assert [port for port in ports if not port_is_free("127.0.0.1", port)] == []

    status = adstream("status", env=env)
    assert status.returncode == 3
    assert "flink cluster: stopped" in status.stdout
    again = adstream("down", env=env)
    assert again.returncode == 0, again.stderr
    assert again.stdout.startswith("Kafka is not running")


def listening_addresses(pids: list[int]) -> set[tuple[ipaddress.IPv4Address, int]]:
    """(address, port) of every TCP socket the processes listen on, IPv4-mapped unwrapped."""
    inodes = set()
    for pid in pids:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target.removeprefix("socket:[").removesuffix("]"))
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state != "0A" or inode not in inodes:  # 0A: LISTEN
                continue
            hex_address, hex_port = local.split(":")
            raw = bytes.fromhex(hex_address)  # 32-bit words in host (little-endian) order
            address = ipaddress.ip_address(
                b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
            )
            if isinstance(address, ipaddress.IPv6Address):
                assert address.ipv4_mapped is not None, address
                address = address.ipv4_mapped
            found.add((address, int(hex_port, 16)))
    return found
