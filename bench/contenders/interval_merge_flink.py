"""Contender (b), the Flink half: the original design's interval join, as literally written.

Two Kafka sources with the `json` format (`json.ignore-parse-errors`: a record that is not JSON
is skipped, a field that does not convert is null, and a null time joins nothing), event-time
watermarks of D out-of-orderness, and an interval join
of every click with every impression of the same impression_id and ad_id whose event times are
at most W apart, in either direction. Each joined pair goes, as JSON keyed by impression_id,
to `bench_b_joined`. The sources are bounded at the offsets of the moment the job starts, so
the job ends by itself once it has read them and flushed the join.

Runs inside `.venv-flink`, started by `interval_merge.py`:

    .venv-flink/bin/python bench/contenders/interval_merge_flink.py PARAMS.json
"""

import sys
from collections.abc import Sequence
from pathlib import Path

from interval_merge_params import JOINED_TOPIC, FlinkJobParams
from pyflink.table import EnvironmentSettings, TableEnvironment

from adstream.events.outcomes import CLICKS_TOPIC, IMPRESSIONS_TOPIC
from adstream.events.schema import CLICK_FIELDS, IMPRESSION_FIELDS, PRICE_SCALE, Field, FieldKind
from adstream.join.sql import seconds

_FLINK_TYPE: dict[FieldKind, str] = {
    "id": "STRING",
    "string": "STRING",
    "timestamp": "TIMESTAMP_LTZ(3)",
    "price": f"DECIMAL(18, {PRICE_SCALE})",
}
_JSON_FORMAT = {
    # The generator writes `2026-11-27T03:34:08.123Z`: Flink's ISO-8601 form of TIMESTAMP_LTZ.
    "json.timestamp-format.standard": "ISO-8601",
}
JOINED_ROW = {
    "ad_id": "i.ad_id",
    "impression_id": "i.impression_id",
    "campaign_id": "i.campaign_id",
    "publisher_id": "i.publisher_id",
    # Plain timestamps: a sink takes at most one rowtime attribute.
    "impression_time": "CAST(i.event_time AS TIMESTAMP_LTZ(3))",
    "click_time": "CAST(c.event_time AS TIMESTAMP_LTZ(3))",
    "geo_location": "i.geo_location",
    "platform": "i.platform",
    "device_type": "i.device_type",
    "ad_type": "i.ad_type",
    "bid_price": "i.bid_price",
    "click_price": "c.click_price",
}
"""The joined row (SPEC section 3's joined_output fields): dimensions from the impression."""


def _options(options: dict[str, str]) -> str:
    return ",\n  ".join(f"'{key}' = '{value}'" for key, value in options.items())


def source_ddl(name: str, topic: str, fields: Sequence[Field], params: FlinkJobParams) -> str:
    """A bounded Kafka source of one input stream, typed by the event schema, with watermarks."""
    columns = ",\n  ".join(f"`{field.name}` {_FLINK_TYPE[field.kind]}" for field in fields)
    options = {
        "connector": "kafka",
        "topic": topic,
        "properties.bootstrap.servers": params.bootstrap_servers,
        "scan.startup.mode": "earliest-offset",
        "scan.bounded.mode": "latest-offset",
        "format": "json",
        "json.ignore-parse-errors": "true",
        **_JSON_FORMAT,
    }
    return f"""
CREATE TABLE {name} (
  {columns},
  WATERMARK FOR event_time AS event_time - {seconds(params.out_of_orderness_ms)}
) WITH (
  {_options(options)}
)"""


def sink_ddl(params: FlinkJobParams) -> str:
    """The joined rows as JSON on `bench_b_joined`, keyed by impression_id."""
    types = {field.name: _FLINK_TYPE[field.kind] for field in (*IMPRESSION_FIELDS, *CLICK_FIELDS)}
    types |= {"impression_time": types["event_time"], "click_time": types["event_time"]}
    columns = ",\n  ".join(f"`{name}` {types[name]}" for name in JOINED_ROW)
    options = {
        "connector": "kafka",
        "topic": JOINED_TOPIC,
        "properties.bootstrap.servers": params.bootstrap_servers,
        "key.format": "raw",
        "key.fields": "impression_id",
        "value.format": "json",
        "value.fields-include": "ALL",
        **{f"value.{key}": value for key, value in _JSON_FORMAT.items()},
        "value.json.encode.decimal-as-plain-number": "true",
        "sink.delivery-guarantee": "at-least-once",
    }
    return f"""
CREATE TABLE joined (
  {columns}
) WITH (
  {_options(options)}
)"""


def join_insert(params: FlinkJobParams) -> str:
    """Every click with every impression of its impression_id and ad_id within ±W."""
    window = seconds(params.window_ms)
    projection = ",\n  ".join(f"{source} AS {name}" for name, source in JOINED_ROW.items())
    return f"""
INSERT INTO joined
SELECT
  {projection}
FROM impressions AS i
JOIN clicks AS c
  ON c.impression_id = i.impression_id
  AND c.ad_id = i.ad_id
  AND c.event_time BETWEEN i.event_time - {window} AND i.event_time + {window}"""


def configure(t_env: TableEnvironment, params: FlinkJobParams) -> None:
    """Time zone, parallelism, connector jar, checkpoints and temporary files."""
    config = t_env.get_config()
    for key, value in {
        "table.local-time-zone": "UTC",
        "parallelism.default": str(params.parallelism),
        "pipeline.jars": ";".join(Path(jar).resolve().as_uri() for jar in params.connector_jars),
        "pipeline.name": "bench-interval-merge",
        "execution.checkpointing.interval": f"{params.checkpoint_interval_ms} ms",
        "execution.checkpointing.dir": Path(params.checkpoint_dir).resolve().as_uri(),
        "io.tmp.dirs": params.tmp_dir,
    }.items():
        config.set(key, value)


def main(argv: list[str]) -> int:
    """Run the join to the end of its bounded sources."""
    params = FlinkJobParams.from_json(Path(argv[1]).read_text())
    t_env = TableEnvironment.create(EnvironmentSettings.in_streaming_mode())
    configure(t_env, params)
    t_env.execute_sql(source_ddl("impressions", IMPRESSIONS_TOPIC, IMPRESSION_FIELDS, params))
    t_env.execute_sql(source_ddl("clicks", CLICKS_TOPIC, CLICK_FIELDS, params))
    t_env.execute_sql(sink_ddl(params))
    result = t_env.execute_sql(join_insert(params))
    result.wait()  # raises when the job fails
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
