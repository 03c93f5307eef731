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
        ("join_transaction_timeout = 7200\n", "at most 3600 s (the broker's limit)"),
        ("checkpoint_interval = 60\njoin_transaction_timeout = 30\n", "must exceed checkpoint"),
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


def test_platform_defaults_to_local_and_aws_settings_come_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    local = load_settings()
    assert (local.platform, local.aws_endpoint, local.stream_name("ad_clicks")) == (
        "local",
        None,
        "ad_clicks",
    )
    monkeypatch.setenv("ADSTREAM_PLATFORM", "aws")
    monkeypatch.setenv("ADSTREAM_AWS_EMULATOR", "1")
    monkeypatch.setenv("ADSTREAM_AWS_EMULATOR_PORT", "4999")
    monkeypatch.setenv("ADSTREAM_STREAM_PREFIX", "prod-")
    aws = load_settings()
    assert aws.platform == "aws"
    assert aws.aws_endpoint == "http://127.0.0.1:4999"
    assert aws.stream_name("ad_clicks") == "prod-ad_clicks"
    custom = load_settings(aws_emulator=False, aws_endpoint_url="http://10.0.0.5:4566")
    assert custom.aws_endpoint == "http://10.0.0.5:4566"


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        ({"platform": "gcp"}, "invalid setting platform"),
        ({"stream_prefix": "bad prefix"}, "invalid setting stream_prefix"),
        ({"stream_shards": 0}, "invalid setting stream_shards"),
        (
            {"aws_emulator": True, "aws_endpoint_url": "http://x"},
            "aws_emulator and aws_endpoint_url exclude each other",
        ),
    ],
)
def test_bad_platform_settings_are_one_clear_error(flags: dict[str, object], message: str) -> None:
    with pytest.raises(AdstreamError, match=message):
        load_settings(**flags)
