"""The `adstream` console script: parses flags, builds the settings once, calls the concern."""

import logging
import sys
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, TypeVar

import click

from adstream.errors import AdstreamError
from adstream.settings import ENV_PREFIX, Settings, load_settings

if TYPE_CHECKING:
    from adstream.services.flink_cluster import FlinkStatus

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

PLATFORM: Final = (
    "platform",
    "aws_region",
    "aws_endpoint_url",
    "aws_emulator",
    "aws_emulator_port",
    "stream_prefix",
    "stream_shards",
)
CONNECTION: Final = (
    "data_dir",
    *PLATFORM,
    "kafka_bootstrap_servers",
    "kafka_host",
    "kafka_port",
)
BROKER: Final = (
    *CONNECTION,
    "kafka_controller_port",
    "kafka_heap",
    "topic_partitions",
    "startup_timeout",
    "lib_dir",
)
FLINK_CLUSTER: Final = (
    "flink_python",
    "flink_rest_port",
    "flink_rpc_port",
    "flink_taskmanagers",
    "flink_task_slots",
    "flink_jobmanager_memory",
    "flink_taskmanager_memory",
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


_FLAG_NAMES: Final = {"aws_emulator": "--emulator", "query_engine": "--engine"}
"""Flags not named after their setting."""


def settings_options(*names: str) -> Callable[[F], F]:
    """Add one flag per named setting; its help names the default and the environment variable."""

    def decorate(command: F) -> F:
        for name in reversed(names):
            field = Settings.model_fields[name]
            annotation = field.annotation
            flag = _FLAG_NAMES.get(name, f"--{name.replace('_', '-')}")
            if annotation is bool:
                help_text = f"{field.description} [env: {ENV_PREFIX}{name.upper()}=1]"
                command = click.option(flag, name, is_flag=True, default=None, help=help_text)(
                    command
                )
                continue
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
                flag,
                name,
                type=_CLICK_TYPES[base],
                default=None,
                help=help_text,
            )(command)
        return command

    return decorate


def cluster_option(help_text: str) -> Callable[[F], F]:
    """The `--cluster` flag: use the standalone Flink cluster instead of a mini-cluster."""
    return click.option(
        "--cluster",
        is_flag=True,
        envvar=f"{ENV_PREFIX}CLUSTER",
        help=f"{help_text} [env: {ENV_PREFIX}CLUSTER]",
    )


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
@settings_options(*BROKER, *FLINK_CLUSTER)
@cluster_option("Also start the standalone Flink cluster (a JobManager and TaskManagers).")
@click.pass_context
def up(context: click.Context, /, cluster: bool, **flags: Any) -> None:
    """Start the local services and create the topics; a no-op when they run.

    Local: Kafka. With --platform aws: the Kinesis streams, and with --emulator first the
    local AWS API emulator (moto) they live in.
    """
    from adstream.platform import start_services
    from adstream.services.flink_cluster import FlinkCluster

    settings = build_settings(context, flags)
    for line in start_services(settings):
        click.echo(line)
    if cluster:
        flink = FlinkCluster(settings)
        if not flink.start():
            click.echo(f"Flink cluster already running at {flink.rest_url}")


@cli.command()
@settings_options("data_dir", *PLATFORM)
@click.pass_context
def down(context: click.Context, /, **flags: Any) -> None:
    """Stop this data directory's Kafka, AWS emulator and Flink cluster, whichever run."""
    from adstream.platform import stop_services
    from adstream.services.flink_cluster import FlinkCluster

    settings = build_settings(context, flags)
    FlinkCluster(settings).stop()  # first: its jobs write to the streams
    for line in stop_services(settings):
        click.echo(line)


@cli.command()
@settings_options(*CONNECTION, "flink_rest_port", "flink_taskmanagers")
@click.pass_context
def status(context: click.Context, /, **flags: Any) -> None:
    """Show the local services and the streams; exit 3 when the event streams are down."""
    from adstream.platform import status_lines
    from adstream.services.flink_cluster import FlinkCluster

    settings = build_settings(context, flags)
    lines, streams_up = status_lines(settings)
    for line in lines:
        click.echo(line)
    cluster = FlinkCluster(settings).status()
    click.echo(f"flink cluster: {_describe_cluster(cluster, settings.flink_taskmanagers)}")
    if not streams_up:
        sys.exit(3)


def _describe_cluster(state: "FlinkStatus", taskmanagers: int) -> str:
    if not state.running:
        return "stopped"
    processes = (
        f"JobManager pid {state.jobmanager}, "
        f"{len(state.taskmanagers)} of {taskmanagers} TaskManagers "
        f"(pids {', '.join(map(str, state.taskmanagers)) or 'none'})"
    )
    if state.overview is None:
        return f"not answering at {state.rest_url}: {processes}"
    overview = state.overview
    return (
        f"running, {processes}, {overview['slots-available']} of {overview['slots-total']} "
        f"slots free, {overview['jobs-running']} jobs running, web UI {state.rest_url}"
    )


@cli.command()
@settings_options(*CONNECTION, *GENERATOR)
@click.option(
    "--to",
    "sink_name",
    type=click.Choice(["streams", "file", "stdout"]),
    default="streams",
    show_default=True,
    help="Where the events go: streams = the platform's (Kafka, or Kinesis on aws).",
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
    from adstream.generator.sinks import FileSink, Sink, StdoutSink
    from adstream.platform import event_sink

    settings = build_settings(context, flags)
    sink: Sink
    if sink_name == "streams":
        sink = event_sink(settings, INPUT_TOPICS)
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
    """Send a JSON-lines FILE (or - for stdin) to a topic (its Kinesis stream on aws).

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
    "join_transaction_timeout",
    "dedup_horizon",
    "join_parallelism",
    "join_state_backend",
    "flink_local_heap",
    "flink_local_gc_time_ratio",
    "flink_python",
    "flink_rest_port",
)


@cli.command()
@settings_options(*JOIN)
@click.option(
    "--bounded",
    is_flag=True,
    help="Process what the input topics hold now, flush every pending result, commit, exit.",
)
@cluster_option("Submit to the standalone Flink cluster of `adstream up --cluster`.")
@click.pass_context
def join(context: click.Context, /, bounded: bool, cluster: bool, **flags: Any) -> None:
    """Run the Flink join (SPEC section 3): every input record to exactly one outcome stream.

    Kafka topics, or Kinesis streams with --platform aws (docs/aws.md). Restarts resume from
    the latest checkpoint in the data directory. Without --cluster the job runs in a Flink
    mini-cluster of its own; with it, Ctrl-C cancels the cluster job.
    """
    from adstream.join.launcher import run_join
    from adstream.platform import require_local

    settings = build_settings(context, flags)
    if cluster:
        require_local(settings, "the join on a standalone cluster")
    run_join(settings, bounded=bounded, cluster=cluster)


LAKEHOUSE: Final = ("data_dir", *PLATFORM, "catalog_type", "catalog_uri", "warehouse")
ATHENA: Final = ("athena_workgroup", "athena_output_location", "athena_timeout")
DASHBOARD: Final = ("dashboard_host", "dashboard_port", "dashboard_refresh")


@cli.command()
@settings_options("query_engine", *LAKEHOUSE, *ATHENA)
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["table", "csv", "json"]),
    default="table",
    show_default=True,
    help="table: aligned text; csv: with a header row; json: one object per line.",
)
@click.argument("sql")
@click.pass_context
def query(context: click.Context, /, output_format: str, sql: str, **flags: Any) -> None:
    """Read-only SQL over the tables: one SELECT, the tables by their short names.

    enriched_ad_data, impressions, unmatched_clicks, rejected_events, campaign_metrics_minute
    and dashboard_metrics_minute. DuckDB (the default engine) reads each at its current
    snapshot, on this machine. Money is exact (decimal); times are UTC.

    With --engine athena the same SQL, in DuckDB's dialect, is translated to Athena's (Trino)
    and run by Amazon Athena in --athena-workgroup over the tables of the Glue database
    ad_analytics; the rows are printed alike (docs/aws.md).
    """
    from adstream.query import render, run_query

    settings = build_settings(context, flags)
    if settings.query_engine == "athena":
        from adstream.athena import run_query as run_on_athena

        result = run_on_athena(settings, sql)
    else:
        result = run_query(settings, sql)
    click.echo(render(result, output_format), nl=False)  # type: ignore[arg-type]


ENRICH: Final = (
    *CONNECTION,
    "lib_dir",
    "catalog_type",
    "catalog_uri",
    "warehouse",
    "premium_threshold",
    "revenue_multiplier",
    "enrich_trigger_interval",
    "enrich_max_batch_records",
    "spark_master",
    "spark_driver_memory",
    "maintain_interval",
    "maintain_snapshot_retention",
    "maintain_orphan_age",
)


@cli.command()
@settings_options(*ENRICH)
@click.option(
    "--bounded",
    is_flag=True,
    help="Process what the outcome topics hold now, write it to the tables, exit.",
)
@click.pass_context
def enrich(context: click.Context, /, bounded: bool, **flags: Any) -> None:
    """Run the Spark enrichment (SPEC section 5): outcome topics to the Iceberg tables.

    Creates the tables when missing. Exactly once: restarts, with or without the checkpoint in
    the data directory, never write a record twice.
    """
    from adstream.enrich.launcher import run_enrich

    settings = build_settings(context, flags)
    run_enrich(settings, bounded=bounded)


@cli.command()
@settings_options(
    *LAKEHOUSE,
    "lib_dir",
    "spark_master",
    "spark_driver_memory",
    "maintain_snapshot_retention",
    "maintain_orphan_age",
)
@click.pass_context
def maintain(context: click.Context, /, **flags: Any) -> None:
    """Maintain the Iceberg tables (docs/maintain.md); safe while the enrichment writes them.

    Compacts small data files, rewrites manifests, expires snapshots older than the retention
    (never one the enrichment still reads) and removes unreferenced files; prints, per table,
    data files, bytes, manifests and snapshots before and after.
    """
    from adstream.enrich.maintain import maintain_lakehouse

    for line in maintain_lakehouse(build_settings(context, flags)):
        click.echo(line)


PACKAGE: Final = (
    "aws_region",
    "stream_prefix",
    "warehouse",
    "premium_threshold",
    "revenue_multiplier",
    "enrich_trigger_interval",
    "enrich_max_batch_records",
    "flink_python",
)


@cli.command()
@settings_options(*PACKAGE)
@click.option(
    "--output",
    type=click.Path(path_type=Path),
    default=Path("dist"),
    show_default=True,
    help="Folder the artefacts are written to.",
)
@click.pass_context
def package(context: click.Context, /, output: Path, **flags: Any) -> None:
    """Build the AWS deployment artefacts (SPEC section 9) into --output (docs/aws.md).

    adstream-msf.zip, the join as a Managed Service for Apache Flink application; glue/, the
    enrichment as a Glue streaming job: its script, adstream's wheel and job-arguments.json.
    --warehouse names the CloudFormation stack's bucket and prefix
    (s3://<bucket>/<prefix>/warehouse), where the job arguments put the code and checkpoint.
    Runs in adstream's source tree, with Maven and access to PyPI.
    """
    from adstream.deploy import package as build

    settings = build_settings(context, flags)
    for path in build(settings, output, lambda line: log.info("%s", line)):
        log.info("built %s (%s bytes)", path, f"{path.stat().st_size:,}")


@cli.command()
@settings_options(
    *dict.fromkeys((*CONNECTION, *LAKEHOUSE)),
    "attribution_window",
    "out_of_orderness",
    "future_bound",
    "revenue_multiplier",
)
@click.pass_context
def verify(context: click.Context, /, **flags: Any) -> None:
    """Reconcile: recompute every outcome from the input topics, compare with the tables.

    Prints expected and stored counts per outcome and the attributed click revenue; exits 1 on
    any difference.
    """
    from adstream.verify import reconcile

    result = reconcile(build_settings(context, flags))
    click.echo(result.render(), nl=False)
    if not result.ok:
        context.exit(1)


@cli.command()
@settings_options(*LAKEHOUSE, *DASHBOARD)
@click.pass_context
def dashboard(context: click.Context, /, **flags: Any) -> None:
    """Serve the live campaign dashboard, a web page, until Ctrl-C (docs/dashboard.md).

    Listens on 127.0.0.1 unless told otherwise; any other address needs a password, set as
    ADSTREAM_DASHBOARD_PASSWORD or dashboard_password in the settings file (HTTP Basic auth,
    user adstream). Read-only: it runs fixed queries over the tables' current snapshots.
    """
    from adstream.dashboard.server import DashboardServer

    server = DashboardServer(build_settings(context, flags))
    log.info("dashboard: %s (Ctrl-C stops)", server.url)
    server.serve()
    log.info("dashboard stopped")


@cli.command()
@settings_options(
    *dict.fromkeys((*BROKER, *GENERATOR[:-2], *JOIN, *ENRICH, *DASHBOARD, "restarts"))
)
@click.pass_context
def run(context: click.Context, /, **flags: Any) -> None:
    """Run the whole pipeline locally, with live progress, until Ctrl-C or --events/--duration.

    Starts Kafka (unless running), creates topics and tables, starts the join and the
    enrichment, and generates traffic. When the generator stops (its bound, or Ctrl-C), the
    join reads the input to its end and drains, the enrichment writes the last outcomes, and
    the final accounting is printed. A second Ctrl-C stops at once (the next run resumes).
    A job, or the broker, that stops meanwhile is restarted (--restarts times).
    The dashboard is served meanwhile, at the address printed when it starts.
    """
    from adstream.pipeline import run_pipeline

    settings = build_settings(context, flags)
    accounting = run_pipeline(settings, lambda line: log.info("%s", line))
    click.echo(accounting, nl=False)


def _progress(report: Any) -> None:
    log.info("%s", report.line())


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
        # Not standalone, click returns what `context.exit(n)` asks for instead of raising.
        code = cli.main(args=args, prog_name="adstream", standalone_mode=False)
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
    return code if isinstance(code, int) and not isinstance(code, bool) else 0


if __name__ == "__main__":
    sys.exit(main())
