from datetime import timedelta
from pathlib import Path

import pytest

from adstream.errors import AdstreamError
from adstream.settings import load_settings


def test_defaults_need_no_configuration() -> None:
    settings = load_settings()
    assert settings.data_dir == Path(".adstream")
    assert settings.bootstrap_servers == "127.0.0.1:9092"
    assert settings.attribution_window == timedelta(minutes=10)
    assert settings.out_of_orderness == timedelta(seconds=5)
    assert settings.topic_partitions == 2


def test_file_then_environment_then_flags(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "adstream.toml").write_text(
        "kafka_port = 1111\nseed = 5\nrate = 10.0\nattribution_window = 60\n"
    )
    monkeypatch.setenv("ADSTREAM_KAFKA_PORT", "2222")
    monkeypatch.setenv("ADSTREAM_SEED", "6")

    settings = load_settings(seed=7)

    assert settings.rate == 10.0  # from the file
    assert settings.attribution_window == timedelta(seconds=60)  # from the file
    assert settings.kafka_port == 2222  # environment beats the file
    assert settings.seed == 7  # a flag beats the environment


def test_explicit_settings_file(tmp_path: Path) -> None:
    config = tmp_path / "other.toml"
    config.write_text('data_dir = "/srv/adstream"\n')
    assert load_settings(config).data_dir == Path("/srv/adstream")


def test_settings_are_frozen() -> None:
    settings = load_settings()
    with pytest.raises(ValueError, match="frozen"):
        settings.seed = 3  # type: ignore[misc]


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("kafka_port = \n", "is not valid TOML"),
        ("kafka_prot = 1\n", "unknown setting 'kafka_prot'"),
        ('kafka_port = "high"\n', "invalid setting kafka_port (ADSTREAM_KAFKA_PORT)"),
        ("late_fraction = 1.5\n", "invalid setting late_fraction"),
        ("kafka_port = 9093\n", "must differ"),
    ],
)
def test_bad_settings_file_is_one_clear_error(tmp_path: Path, toml: str, message: str) -> None:
    (tmp_path / "adstream.toml").write_text(toml)
    with pytest.raises(AdstreamError) as error:
        load_settings()
    assert message in str(error.value)
    assert "\n" not in str(error.value)


def test_missing_explicit_settings_file(tmp_path: Path) -> None:
    with pytest.raises(AdstreamError, match="does not exist"):
        load_settings(tmp_path / "nope.toml")


def test_bad_environment_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ADSTREAM_TOPIC_PARTITIONS", "0")
    with pytest.raises(AdstreamError, match="invalid setting topic_partitions"):
        load_settings()


def test_durations_from_the_environment_are_seconds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ADSTREAM_CHECKPOINT_INTERVAL", "1")
    monkeypatch.setenv("ADSTREAM_ATTRIBUTION_WINDOW", "90.5")
    monkeypatch.setenv("ADSTREAM_DURATION", "PT2M")
    settings = load_settings()
    assert settings.checkpoint_interval == timedelta(seconds=1)
    assert settings.attribution_window == timedelta(seconds=90.5)
    assert settings.duration == timedelta(minutes=2)
