"""The key of the join's cached plan: one plan for every instance, a new one for new semantics."""

from dataclasses import replace
from pathlib import Path
from typing import Any

from adstream.join.params import JoinParams, Runtime
from adstream.join.plans import digest
from adstream.join.streams import KafkaStreams
from adstream.settings import load_settings

FLINK = "2.2.1"


def params(tmp_path: Path, instance: str, jar: Path, **flags: Any) -> JoinParams:
    """The parameters `adstream join` would give an instance with data directory `instance`."""
    settings = load_settings(data_dir=tmp_path / instance, **flags)
    runtime = Runtime.from_settings(
        settings, settings.data_dir / "flink", bounded=False, drained_until_ms=17
    )
    return JoinParams.from_settings(
        settings,
        KafkaStreams(settings).connectors(),
        bounded=False,
        connector_jars=(str(jar),),
        runtime=runtime,
    )


def a_jar(tmp_path: Path, content: bytes = b"classes") -> Path:
    jar = tmp_path / "adstream-flink-functions.jar"
    jar.write_bytes(content)
    return jar


def test_one_plan_serves_every_instance_whatever_its_broker_group_and_drained_state(
    tmp_path: Path,
) -> None:
    jar = a_jar(tmp_path)
    first = params(tmp_path, "a", jar, kafka_bootstrap_servers="127.0.0.1:9092")
    second = params(tmp_path, "b", jar, kafka_bootstrap_servers="127.0.0.1:19092")
    assert first.connectors.sources != second.connectors.sources  # a group of its own
    assert first.runtime is not None
    later = replace(first, runtime=replace(first.runtime, drained_until_ms=99))
    assert digest(first, FLINK) == digest(second, FLINK) == digest(later, FLINK)


def test_a_new_plan_for_new_semantics_jars_or_flink(tmp_path: Path) -> None:
    jar = a_jar(tmp_path)
    base = digest(params(tmp_path, "a", jar), FLINK)
    others = {
        "W": digest(params(tmp_path, "a", jar, attribution_window=120), FLINK),
        "D": digest(params(tmp_path, "a", jar, out_of_orderness=9), FLINK),
        "horizon": digest(params(tmp_path, "a", jar, dedup_horizon=7200), FLINK),
        "flink": digest(params(tmp_path, "a", jar), "2.2.2"),
    }
    rebuilt = digest(params(tmp_path, "a", a_jar(tmp_path, b"other classes")), FLINK)
    assert len({base, rebuilt, *others.values()}) == 2 + len(others)
