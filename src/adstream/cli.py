"""The `adstream` console script: parses flags, builds the settings once, calls the concern."""

import logging
import sys
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Final, TypeVar

import click

from adstream.errors import AdstreamError
from adstream.settings import ENV_PREFIX, Settings, load_settings

log = logging.getLogger("adstream")

F = TypeVar("F", bound=Callable[..., Any])

_CLICK_TYPES: Final[dict[Any, click.ParamType]] = {
    int: click.INT,
    float: click.FLOAT,
    str: click.STRING,
    Path: click.Path(path_type=Path),
    timedelta: click.FLOAT,
    datetime: click.STRING,
}

CONNECTION: Final = ("data_dir", "kafka_bootstrap_servers", "kafka_host", "kafka_port")
BROKER: Final = (
    *CONNECTION,
    "kafka_controller_port",
    "kafka_heap",
    "topic_partitions",
    "startup_timeout",
    "lib_dir",
)
GENERATOR: Final = (
    "seed",
    "rate",
    "events",
    "duration",
    "start_time",
    "event_time_rate",
    "out_of_order_fraction",
    "late_fraction",
    "duplicate_impression_fraction",
    "duplicate_click_fraction",
    "orphan_click_fraction",
    "invalid_fraction",
    "attribution_window",
    "out_of_orderness",
)


def settings_options(*names: str) -> Callable[[F], F]:
    """Add one flag per named setting; its help names the default and the environment variable."""

    def decorate(command: F) -> F:
        for name in reversed(names):
            field = Settings.model_fields[name]
            annotation = field.annotation
            base = next(
                (kind for kind in _CLICK_TYPES if annotation is kind or kind in _args(annotation)),
                str,
            )
            unit = (
                " (seconds)" if base is timedelta and "second" not in str(field.description) else ""
            )
            default = field.default
            shown = default.total_seconds() if isinstance(default, timedelta) else default
            shown_default = "" if shown is None else f" [default: {shown}]"
            help_text = (
                f"{field.description}{unit}{shown_default} [env: {ENV_PREFIX}{name.upper()}]"
            )
            command = click.option(
                f"--{name.replace('_', '-')}",
                name,
                type=_CLICK_TYPES[base],
                default=None,
                help=help_text,
            )(command)
        return command

    return decorate


def _args(annotation: Any) -> tuple[Any, ...]:
    return getattr(annotation, "__args__", ())


def build_settings(context: click.Context, /, flags: dict[str, Any]) -> Settings:
    """Settings from the group's settings file, the environment and this command's flags."""
    config_file: Path | None = context.find_root().params.get("config")
    return load_settings(config_file, **flags)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option(
    "--config",
    type=click.Path(path_type=Path),
    envvar="ADSTREAM_CONFIG",
    help="Settings file [default: ./adstream.toml when present] [env: ADSTREAM_CONFIG]",
)
@click.option("--debug", is_flag=True, help="Show tracebacks and client logs on errors.")
def cli(config: Path | None, debug: bool) -> None:
    """adstream: real-time ad analytics on Kafka, Flink, Spark, Iceberg and DuckDB."""


@cli.command()
@settings_options(*BROKER)
@click.pass_context
def up(context: click.Context, /, **flags: Any) -> None:
    """Start the local services (Kafka) and create the topics; a no-op when they run."""
    from adstream.services.kafka import KafkaBroker

    settings = build_settings(context, flags)
    _require_local(settings)
    if not KafkaBroker(settings).start():
        click.echo(f"Kafka already running at {settings.bootstrap_servers}")


@cli.command()
@settings_options("data_dir")
@click.pass_context
def down(context: click.Context, /, **flags: Any) -> None:
    """Stop the local services of this data directory."""
    from adstream.services.kafka import KafkaBroker

    settings = build_settings(context, flags)
    if not KafkaBroker(settings).stop():
        click.echo(f"Kafka is not running (data dir {settings.data_dir})")


@cli.command()
@settings_options(*CONNECTION)
@click.pass_context
def status(context: click.Context, /, **flags: Any) -> None:
    """Show the local services and topics; exit 3 when Kafka is not running."""
    from adstream.services.kafka import KafkaBroker

    settings = build_settings(context, flags)
    state = KafkaBroker(settings).status()
    if state.pid is None:
        click.echo(f"kafka: stopped (data dir {settings.data_dir})")
        sys.exit(3)
    click.echo(f"kafka: running, pid {state.pid}, at {state.bootstrap_servers}")
    for topic, partitions in state.topics.items():
        click.echo(f"  topic {topic}: {partitions} partitions")


@cli.command()
@settings_options(*CONNECTION, *GENERATOR)
@click.option(
    "--to",
    "sink_name",
    type=click.Choice(["kafka", "file", "stdout"]),
    default="kafka",
    show_default=True,
    help="Where the events go.",
)
@click.option(
    "--output",
    type=click.Path(path_type=Path),
    default=Path("generated"),
    show_default=True,
    help="Folder of the JSON-lines files, one per topic (with --to file).",
)
@click.pass_context
def generate(context: click.Context, /, sink_name: str, output: Path, **flags: Any) -> None:
    """Generate realistic ad traffic (SPEC section 8): bounded or endless, rate-controlled."""
    from adstream.events.outcomes import INPUT_TOPICS
    from adstream.generator.runner import generate as run_generator
    from adstream.generator.sinks import FileSink, KafkaSink, Sink, StdoutSink

    settings = build_settings(context, flags)
    sink: Sink
    if sink_name == "kafka":
        sink = KafkaSink(settings, INPUT_TOPICS)
    elif sink_name == "file":
        sink = FileSink(output)
    else:
        sink = StdoutSink()
    quiet = sink_name == "stdout"
    report = run_generator(settings, sink, None if quiet else _progress)
    if not quiet:
        log.info("done (%s): %s", report.stopped_by, report.line())


@cli.command()
@settings_options(*CONNECTION)
@click.option("--topic", required=True, help="Topic to send the records to.")
@click.argument("file", type=click.File("r", encoding="utf-8"))
@click.pass_context
def produce(context: click.Context, /, topic: str, file: Any, **flags: Any) -> None:
    """Send a JSON-lines FILE (or - for stdin) to a topic, one record per line.

    Each record is keyed by its impression_id where it has one; malformed lines are sent as they
    are, so crafted bad data can be replayed.
    """
    from adstream.generator.replay import replay

    settings = build_settings(context, flags)
    sent, blank = replay(settings, topic, file)
    log.info(
        "sent %s records to %s%s",
        f"{sent:,}",
        topic,
        f" ({blank} blank lines skipped)" if blank else "",
    )


JOIN: Final = (
    *CONNECTION,
    "lib_dir",
    "attribution_window",
    "out_of_orderness",
    "idle_timeout",
    "future_bound",
    "checkpoint_interval",
    "dedup_horizon",
    "join_parallelism",
    "flink_python",
)


@cli.command()
@settings_options(*JOIN)
@click.option(
    "--bounded",
    is_flag=True,
    help="Process what the input topics hold now, flush every pending result, commit, exit.",
)
@click.pass_context
def join(context: click.Context, /, bounded: bool, **flags: Any) -> None:
    """Run the Flink join (SPEC section 3): every input record to exactly one outcome topic.

    Restarts resume from the latest checkpoint in the data directory.
    """
    from adstream.join.launcher import run_join

    run_join(build_settings(context, flags), bounded=bounded)


@cli.command()
@settings_options(*BROKER, *GENERATOR[:-2])
@click.pass_context
def run(context: click.Context, /, **flags: Any) -> None:
    """Run the pipeline locally: start Kafka, generate traffic with live progress until Ctrl-C.

    Stops after --events or --duration when given; stops the services it started.
    """
    from adstream.events.outcomes import INPUT_TOPICS
    from adstream.generator.runner import generate as run_generator
    from adstream.generator.sinks import KafkaSink
    from adstream.services.kafka import KafkaBroker

    settings = build_settings(context, flags)
    _require_local(settings)
    broker = KafkaBroker(settings)
    started = broker.process.pid() is None  # stop on exit only what this run started
    try:
        broker.start()
        rate = f"{settings.rate:,.0f} events/s" if settings.rate else "full speed"
        log.info("generating traffic at %s into %s; Ctrl-C stops", rate, settings.bootstrap_servers)
        report = run_generator(settings, KafkaSink(settings, INPUT_TOPICS), _progress)
        log.info("done (%s): %s", report.stopped_by, report.line())
    except KeyboardInterrupt:
        log.info("done (interrupt)")  # Ctrl-C is how a live run normally ends
    finally:
        if started:
            broker.stop()


def _progress(report: Any) -> None:
    log.info("%s", report.line())


def _require_local(settings: Settings) -> None:
    if not settings.uses_local_kafka:
        raise AdstreamError(
            "kafka_bootstrap_servers points at an external cluster; adstream only manages "
            "its local broker"
        )


def main(argv: list[str] | None = None) -> int:
    """Entry point: one clear line per user error, tracebacks only with --debug."""
    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.INFO,
        format="adstream: %(message)s",
        stream=sys.stderr,
    )
    if debug:
        logging.getLogger("adstream.librdkafka").setLevel(logging.DEBUG)
    try:
        cli.main(args=args, prog_name="adstream", standalone_mode=False)
    except click.exceptions.Exit as done:
        return int(done.exit_code)
    except click.Abort:
        click.echo("adstream: interrupted", err=True)
        return 130
    except click.ClickException as error:
        if debug:
            raise
        context = getattr(error, "ctx", None)
        hint = f" (see `{context.command_path} --help`)" if context else ""
        click.echo(f"adstream: error: {error.format_message()}{hint}", err=True)
        return 2
    except AdstreamError as error:
        if debug:
            raise
        click.echo(f"adstream: error: {error}", err=True)
        return 1
    except KeyboardInterrupt:
        click.echo("adstream: interrupted", err=True)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
