"""User errors print one clear line and exit non-zero; no traceback unless --debug."""

import os
import time
from pathlib import Path

import pytest

from adstream.lakehouse.catalog import ensure_tables
from adstream.settings import load_settings
from tests.cli import adstream
from tests.conftest import free_ports


def assert_one_line_error(result, code: int, text: str) -> None:  # type: ignore[no-untyped-def]
    assert result.returncode == code, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("adstream: error: ")
    assert text in lines[0]
    assert "Traceback" not in result.stderr


def test_unknown_flag() -> None:
    assert_one_line_error(adstream("generate", "--rat", "5"), 2, "No such option: --rat")


def test_bad_flag_value() -> None:
    assert_one_line_error(adstream("up", "--kafka-port", "high"), 2, "'--kafka-port'")


def test_out_of_range_setting() -> None:
    assert_one_line_error(
        adstream("generate", "--late-fraction", "2", "--to", "stdout"),
        1,
        "invalid setting late_fraction",
    )


def test_bad_settings_file(tmp_path: Path) -> None:
    (tmp_path / "adstream.toml").write_text("kafka_port = [\n")
    assert_one_line_error(adstream("status"), 1, "is not valid TOML")


def test_emulator_down() -> None:
    (port,) = free_ports(1)
    result = adstream(
        "generate",
        "--events",
        "10",
        "--platform",
        "aws",
        "--emulator",
        "--aws-emulator-port",
        str(port),
    )
    assert_one_line_error(result, 1, f"AWS is not reachable at http://127.0.0.1:{port}")


def test_the_join_on_a_cluster_not_yet_on_aws_says_so() -> None:
    result = adstream("join", "--cluster", "--platform", "aws", "--emulator")
    assert_one_line_error(
        result, 1, "the join on a standalone cluster runs on the local platform only so far"
    )


@pytest.mark.parametrize("command", ["join", "enrich"])
def test_jobs_on_aws_with_the_emulator_down(command: str) -> None:
    (port,) = free_ports(1)
    result = adstream(command, "--platform", "aws", "--emulator", "--aws-emulator-port", str(port))
    assert_one_line_error(result, 1, f"AWS is not reachable at http://127.0.0.1:{port}")


def test_produce_missing_file() -> None:
    result = adstream("produce", "--topic", "ad_clicks", "nope.jsonl")
    assert_one_line_error(result, 2, "nope.jsonl")


def test_debug_shows_the_traceback() -> None:
    (port,) = free_ports(1)
    result = adstream("--debug", "generate", "--events", "1", "--kafka-port", str(port))
    assert result.returncode != 0
    assert "Traceback" in result.stderr


COMMANDS = ["up", "down", "status", "generate", "produce", "join", "enrich", "query", "verify"]


@pytest.mark.parametrize("command", [*COMMANDS, "dashboard", "run"])
def test_every_command_has_help_naming_environment_variables(command: str) -> None:
    result = adstream(command, "--help")
    assert result.returncode == 0
    assert "--data-dir" in result.stdout
    assert "ADSTREAM_DATA_DIR" in result.stdout
    for flag in ("--platform", "--emulator", "--aws-region", "--stream-prefix"):
        assert flag in result.stdout
    assert "ADSTREAM_AWS_EMULATOR=1" in result.stdout


def test_generate_to_stdout_is_deterministic() -> None:
    args = (
        "generate",
        "--to",
        "stdout",
        "--rate",
        "0",
        "--events",
        "500",
        "--start-time",
        "2026-11-01T00:00:00Z",
        "--seed",
        "9",
    )
    first, second = adstream(*args), adstream(*args)
    assert first.returncode == 0, first.stderr
    assert len(first.stdout.splitlines()) == 500
    assert first.stdout == second.stdout


def test_generate_to_files(tmp_path: Path) -> None:
    result = adstream(
        "generate",
        "--to",
        "file",
        "--output",
        str(tmp_path / "out"),
        "--rate",
        "0",
        "--events",
        "3000",
        "--start-time",
        "2026-11-01T00:00:00",
    )
    assert result.returncode == 0, result.stderr
    impressions = (tmp_path / "out" / "ad_impressions.jsonl").read_text().splitlines()
    clicks = (tmp_path / "out" / "ad_clicks.jsonl").read_text().splitlines()
    assert len(impressions) + len(clicks) == 3000
    assert all('"bid_price"' in line for line in impressions[:100])


@pytest.mark.parametrize("warehouse", [None, "s3://my-bucket/adstream/tables", "/tmp/warehouse"])
def test_package_needs_the_stacks_warehouse(warehouse: str | None) -> None:
    flags = ["--warehouse", warehouse] if warehouse else []
    result = adstream("package", "--output", "dist", *flags)
    assert_one_line_error(result, 1, "`adstream package` needs the stack's warehouse")
    assert not Path("dist").exists()  # checked before anything is built


# Commands x the states a user meets them in: each answers one line naming the fix, within
# seconds. "finished" is a data directory an `adstream run` has finished with: tables, no broker.
BROKER_DOWN = "Kafka is not reachable at 127.0.0.1:{port}; start it with `adstream up`"
EMULATOR_DOWN = (
    "AWS is not reachable at http://127.0.0.1:{port}: Could not connect to the endpoint URL: "
    '"http://127.0.0.1:{port}/"; start the emulator with `adstream up --platform aws --emulator`'
)
NO_TABLES = "does not exist; run `adstream enrich` or `adstream run` first"
AWS = ("--platform", "aws", "--emulator", "--aws-emulator-port", "{port}")
STATES = {
    "no data directory": (),
    "finished": (),
    "emulator down": AWS,
}
ERRORS = [  # each command once per state it answers differently in
    ("no data directory", ("query", "SELECT count(*) FROM impressions"), NO_TABLES),
    ("no data directory", ("maintain",), NO_TABLES),
    ("no data directory", ("produce", "--topic", "ad_clicks", "-"), BROKER_DOWN),
    ("finished", ("verify",), BROKER_DOWN),
    ("finished", ("join", "--bounded"), BROKER_DOWN),
    ("finished", ("enrich", "--bounded"), BROKER_DOWN),
    ("finished", ("generate", "--events", "5"), BROKER_DOWN),
    ("finished", ("query", "SELECT count(*) FROM no_such_table"), "unknown table 'no_such_table'"),
    ("emulator down", ("query", "SELECT count(*) FROM impressions"), EMULATOR_DOWN),
    ("emulator down", ("maintain",), EMULATOR_DOWN),
    ("emulator down", ("verify",), EMULATOR_DOWN),
    ("emulator down", ("enrich", "--bounded"), EMULATOR_DOWN),
]


@pytest.mark.parametrize(
    ("state", "command", "message"), ERRORS, ids=[f"{s}: {c[0]}" for s, c, _ in ERRORS]
)
def test_each_command_in_each_state_names_the_fix(
    state: str, command: tuple[str, ...], message: str, tmp_path: Path
) -> None:
    (port,) = free_ports(1)
    data_dir = tmp_path / "data"
    if state == "finished":
        ensure_tables(load_settings(config_file=None, data_dir=data_dir))
    flags = [flag.format(port=port) for flag in STATES[state]]
    began = time.monotonic()
    env = {**os.environ, "ADSTREAM_KAFKA_PORT": str(port)}  # not every command has the flag
    result = adstream(*command, "--data-dir", str(data_dir), *flags, env=env, input="", timeout=60)
    assert_one_line_error(result, 1, message.format(port=port))
    assert time.monotonic() - began < 20, "the error waited out a client's retries"


def test_down_with_nothing_running_says_what_was_not(tmp_path: Path) -> None:
    (port,) = free_ports(1)
    data_dir = tmp_path / "data"
    flags = [flag.format(port=port) for flag in AWS]
    result = adstream("down", "--data-dir", str(data_dir), *flags)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        f"Kafka is not running (data dir {data_dir})",
        f"the AWS emulator is not running (data dir {data_dir})",
    ]


def test_verify_exits_1_when_the_tables_differ(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A script or CI job relies on the exit code: differences are exit 1, agreement 0."""
    from adstream import cli, verify

    class Reconciled:
        def __init__(self, ok: bool) -> None:
            self.ok = ok

        def render(self) -> str:
            return "verify: OK\n" if self.ok else "verify: DIFFERENCES FOUND\n"

    for ok, code in ((False, 1), (True, 0)):
        monkeypatch.setattr(verify, "reconcile", lambda _settings, ok=ok: Reconciled(ok))
        assert cli.main(["verify"]) == code
        assert capsys.readouterr().out == Reconciled(ok).render()
