"""The join job's SQL, built from the event schema (SPEC sections 2-4). Imports no engine.

Each record's JSON is parsed once, by the job's own SQL function `adstream_json_fields`
(java/src/main/java/io/adstream/flink/JsonFields.java): an array of the record's top-level
fields that the job reads, each value tagged with its JSON kind (`s` string, `n` number, ...),
and NULL when the record is not exactly one JSON object in UTF-8. The rules below read that.
(Flink's JSON_VALUE and JSON_QUERY parse the whole record again on every call, and Flink 2.2's
VARIANT has no field access from SQL yet; see docs/join.md.)

The plan, for each input stream:

1. `<stream>_source`: the raw record as bytes, where it came from (Kafka partition and offset,
   or Kinesis shard number and sequence number: `adstream.join.streams`) and its produce
   timestamp; `rt` is the event time when it parses and is not too far in the future (epoch 0
   otherwise, so no such record moves the watermark).
2. `events_checked`, over both streams as one (`input_events`), and `<stream>_checked`, its
   records of one stream: the record's fields, the first failing validation rule (`reason`,
   `detail`), and the partition watermark: the largest valid event time seen so far in the
   record's own partition (or shard). A valid record more than D behind it is late. This is
   deterministic (it depends only on the order within a partition), so `adstream verify` can
   recompute it exactly; as a safety net a record at or behind the operator watermark is late
   too, so the operators below never drop one silently. That watermark is both streams'
   together, as the join's operator sees it; it can only be ahead of the partition watermark
   after an idle partition wakes up, or while a whole stream is idle.

Then on-time impressions and on-time clicks, each keyed by impression_id, go to one keyed
operator, the process table function `adstream_join` (java/.../AdJoin.java), which decides in
event time which impression is unique and which click is attributed, duplicate or unmatched (ties
in event time break by arrival order, which within one key is the order in its partition), and
emits one row per event with its `outcome`. The INSERTs split those rows by outcome. Every input
record gets one outcome.
"""

from collections.abc import Sequence
from enum import StrEnum
from typing import Final

from adstream.events.outcomes import (
    IMPRESSIONS_OUT_TOPIC,
    JOINED_TOPIC,
    KEYED_BY_IMPRESSION,
    REJECTED_EVENTS_TOPIC,
    UNMATCHED_CLICKS_TOPIC,
    Reason,
    Stream,
)
from adstream.events.schema import (
    CLICK_FIELDS,
    IMPRESSION_FIELDS,
    INPUT_STREAMS,
    MAX_RAW_PAYLOAD_BYTES,
    Field,
)
from adstream.join.params import JoinParams

EPOCH: Final = "TO_TIMESTAMP_LTZ(0, 3)"
JSON_FIELDS: Final = "adstream_json_fields"
"""SQL function: (BYTES, name, ...) -> ARRAY<STRING> of the named top-level fields' tagged
values in that order, or NULL when not one JSON object."""
IDLENESS_CONNECTOR: Final = "adstream-source"
"""The job's source connector (java/.../InputIdlenessSourceFactory.java): another connector's
source, its partitions made idle by the job's rule."""
EVENT_TIME: Final = "adstream_event_time"
"""SQL function: tagged value [, latest allowed] -> TIMESTAMP_LTZ(3), NULL unless a string
holding a valid time (not after the latest allowed)."""
INPUT_EVENTS: Final = "input_events"
"""Both input streams' records, each with the name of its stream (`source_stream`)."""
CHECKED_EVENTS: Final = "events_checked"
"""Every input record with its fields, its failing rule if any, and whether it is late."""
RAW_PAYLOAD: Final = "adstream_raw_payload"
"""SQL function: (BYTES, max bytes) -> STRING, the record's text in at most that many bytes of
UTF-8, never a character split (a rejected-event record's `raw_payload`, SPEC section 4)."""
JOIN: Final = "adstream_join"
"""Process table function: on-time impressions and clicks, each partitioned by impression_id ->
one row per event with its outcome (unique or duplicate impression, attributed, duplicate or
unmatched click)."""


class Outcome(StrEnum):
    """The `outcome` of a row of `adstream_join` (the constants of AdJoin.java)."""

    UNIQUE_IMPRESSION = "unique_impression"
    DUPLICATE_IMPRESSION = Reason.DUPLICATE_IMPRESSION.value
    ATTRIBUTED_CLICK = "attributed_click"
    DUPLICATE_CLICK = Reason.DUPLICATE_CLICK.value
    UNMATCHED_CLICK = "unmatched_click"


_FUNCTION_CLASSES: Final = {
    JSON_FIELDS: "io.adstream.flink.JsonFields",
    EVENT_TIME: "io.adstream.flink.EventTime",
    RAW_PAYLOAD: "io.adstream.flink.RawPayload",
    JOIN: "io.adstream.flink.AdJoin",
}
_FIELD_NAMES: Final = tuple(dict.fromkeys(f.name for f in (*IMPRESSION_FIELDS, *CLICK_FIELDS)))
"""The fields the job reads, of both streams, in the order `_parsed` returns them."""
JOINED_IMPRESSION_FIELDS: Final = (
    "ad_id",
    "campaign_id",
    "publisher_id",
    "geo_location",
    "platform",
    "device_type",
    "ad_type",
    "bid_price",
)
"""The impression's fields in a joined row (SPEC section 3.6): what the join keeps per id for W."""


def seconds(milliseconds: int) -> str:
    """A SQL interval literal of `milliseconds` (days to milliseconds, so any length fits)."""
    days, rest = divmod(milliseconds, 86_400_000)
    hours, rest = divmod(rest, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, millis = divmod(rest, 1000)
    return f"INTERVAL '{days} {hours:02d}:{minutes:02d}:{secs:02d}.{millis:03d}' DAY TO SECOND(3)"


def iso_time(expression: str) -> str:
    """SQL formatting a TIMESTAMP_LTZ like the input events: `2026-11-27T03:34:08.123Z`."""
    return "DATE_FORMAT(" + expression + ", 'yyyy-MM-dd''T''HH:mm:ss.SSS''Z''')"


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def functions() -> list[str]:
    """Register the job's own SQL functions (their jar is on `pipeline.jars`)."""
    return [
        f"CREATE TEMPORARY SYSTEM FUNCTION {name} AS {_quote(java_class)} LANGUAGE JAVA"
        for name, java_class in _FUNCTION_CLASSES.items()
    ]


def _parsed(payload: str, names: Sequence[str] = _FIELD_NAMES) -> str:
    """The record's fields `names` (tagged values), or NULL when it is not one JSON object."""
    return f"{JSON_FIELDS}({payload}, {', '.join(_quote(name) for name in names)})"


def _field(fields: str, name: str) -> str:
    """A field's tagged value in the result of `_parsed`: NULL when absent or null."""
    return f"{fields}[{_FIELD_NAMES.index(name) + 1}]"


def _text(tagged: str) -> str:
    """The text of a tagged value: the unescaped string, or a number's exact JSON text."""
    return f"SUBSTR({tagged}, 2)"


def source_ddl(stream: Stream, params: JoinParams) -> str:
    """The source of one input stream, read as raw bytes (nothing dropped by a format)."""
    # Flink evaluates `rt` twice, in the source (for the watermark) and after it, and repeats
    # the parse for every mention of the event time in it: so one call, bound included.
    event_time = f"{_parsed('payload', ['event_time'])}[1]"
    in_time = f"{EVENT_TIME}({event_time}, produced_at + {seconds(params.future_bound_ms)})"
    # One millisecond below max - D, so an event exactly D behind is never late to an operator.
    watermark_delay = seconds(params.out_of_orderness_ms + 1)
    options = dict(params.connectors.sources[stream])
    if not params.bounded:
        # Idle partitions, by the job's own rule (java/.../InputIdleness.java): a partition
        # is idle once the others were read for the timeout while it delivered nothing, so a
        # broker outage or a pause, when nothing is read, calls none idle. A bounded run calls
        # no partition idle: it ends by draining, which flushes every partition.
        options = {
            "connector": IDLENESS_CONNECTOR,
            "adstream.connector": options.pop("connector"),
            "adstream.idle-timeout": f"{params.idle_timeout_ms} ms",
        } | options
    return f"""
CREATE TABLE {stream}_source (
  payload BYTES,{params.connectors.source_columns},
  proc_time AS PROCTIME(),
  rt AS COALESCE({in_time}, {EPOCH}),
  WATERMARK FOR rt AS rt - {watermark_delay}
) WITH ({_options(options)})"""


def _validation_rules(
    fields: Sequence[Field], future_bound_ms: int
) -> list[tuple[str, Reason, str]]:
    """(condition, reason, detail SQL) in the order `adstream.events.validation` checks them.

    The conditions read `fields` (the record's fields from `_parsed`), `produced_at` and `rt`.
    `rt` is the event time when it parses and is within the future bound, epoch 0 otherwise, so
    only such records (and one exactly at epoch 0) parse it again, to tell the two apart.
    """
    rules: list[tuple[str, Reason, str]] = [
        ("fields IS NULL", Reason.MALFORMED_JSON, "'not a JSON object'")
    ]
    for field in fields:
        if field.required:
            rules.append(
                (
                    f"{_field('fields', field.name)} IS NULL",
                    Reason.MISSING_FIELD,
                    _quote(f"{field.name} is missing"),
                )
            )
    for field in fields:
        value = _field("fields", field.name)
        if field.kind == "price":
            rules.append(
                (
                    f"{value} NOT LIKE 'n%'",
                    Reason.INVALID_TYPE,
                    _quote(f"{field.name} is not a JSON number"),
                )
            )
        else:
            rules.append(
                (
                    f"{value} NOT LIKE 's%'",
                    Reason.INVALID_TYPE,
                    _quote(f"{field.name} is not a string"),
                )
            )
        if field.kind == "id":
            rules.append((f"{value} = 's'", Reason.MISSING_FIELD, _quote(f"{field.name} is empty")))
    event_time = f"{EVENT_TIME}({_field('fields', 'event_time')})"
    rules.append(
        (
            f"rt = {EPOCH} AND {event_time} IS NULL",
            Reason.INVALID_TIMESTAMP,
            f"CONCAT('event_time ', {_text(_field('fields', 'event_time'))}, ' is not ISO-8601')",
        )
    )
    for field in fields:
        if field.kind == "price":
            text = _text(_field("fields", field.name))
            price = f"TRY_CAST({text} AS DECIMAL(38, 18))"
            rules.append(
                (
                    f"NOT COALESCE({price} > 0 AND {price} <= 10000, FALSE)",
                    Reason.INVALID_PRICE,
                    f"CONCAT('{field.name} ', {text}, ' is outside (0, 10000]')",
                )
            )
    rules.append(
        (
            f"rt = {EPOCH} AND {event_time} > produced_at + {seconds(future_bound_ms)}",
            Reason.FUTURE_TIMESTAMP,
            "'event_time is more than the future bound ahead of the clock'",
        )
    )
    return rules


def input_events_view() -> str:
    """Both input streams as one: each record with its stream's name (`source_stream`).

    One stream, so that the watermark the checked records are compared with is the one the
    join's operator will see: both streams' together (one called idle left out), not the
    record's own stream's alone.
    """
    branches = [
        f"SELECT '{stream}' AS source_stream, payload, source_partition, source_offset, "
        f"source_sequence_number, produced_at, proc_time, rt FROM {stream}_source"
        for stream in INPUT_STREAMS
    ]
    return f"CREATE TEMPORARY VIEW {INPUT_EVENTS} AS " + " UNION ALL ".join(branches)


def checked_view(params: JoinParams) -> str:
    """Each record with its fields, its first failing rule (or NULL) and whether it is late.

    The record is parsed and its rules are checked below the per-partition OVER aggregate,
    which passes on the number of the first failing rule (`rule`, numbered across both
    streams); above it, `reason` and `detail` only look that number up. That keeps the planner
    from inlining (and so repeating) the parse and the rules in every view that reads them:
    Flink's code generator shares no common subexpression. The aggregate is partitioned by
    stream and partition together (as one number, which also keeps the planner from splitting
    the streams again below it).
    """
    rule, reason, detail = [], [], []
    number = 0
    for stream, spec in INPUT_STREAMS.items():
        conditions = []
        for condition, why, text in _validation_rules(spec.fields, params.future_bound_ms):
            number += 1
            conditions.append(f"WHEN {condition} THEN {number}")
            reason.append(f"WHEN {number} THEN '{why.value}'")
            detail.append(f"WHEN {number} THEN {text}")
        rule.append(f"WHEN '{stream}' THEN CASE {' '.join(conditions)} END")
    late_by = seconds(params.out_of_orderness_ms)
    stream_number = " ".join(
        f"WHEN '{stream}' THEN {number}" for number, stream in enumerate(INPUT_STREAMS)
    )
    return f"""
CREATE TEMPORARY VIEW {CHECKED_EVENTS} AS
SELECT *,
  rule IS NULL AND COALESCE(
    rt < partition_watermark_base - {late_by} OR rt <= CURRENT_WATERMARK(rt), FALSE) AS is_late
FROM (
  SELECT source_stream, payload, fields, source_partition, source_offset,
    source_sequence_number, rt, partition_watermark_base, rule,
    CASE rule {" ".join(reason)} END AS reason,
    CASE rule {" ".join(detail)} END AS detail
  FROM (
    SELECT *,
      MAX(NULLIF(rt, {EPOCH})) OVER (
        PARTITION BY stream_partition ORDER BY proc_time
        ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS partition_watermark_base
    FROM (
      SELECT *, CASE source_stream {" ".join(rule)} END AS rule
      FROM (
        SELECT source_stream, payload, source_partition, source_offset, source_sequence_number,
          produced_at, proc_time, rt, {_parsed("payload")} AS fields,
          source_partition * {len(INPUT_STREAMS)} + CASE source_stream {stream_number} END
            AS stream_partition
        FROM {INPUT_EVENTS}
      )
    )
  )
)"""


def stream_checked_views() -> list[str]:
    """`<stream>_checked`: the checked records of one stream."""
    return [
        f"CREATE TEMPORARY VIEW {stream}_checked AS "
        f"SELECT * FROM {CHECKED_EVENTS} WHERE source_stream = '{stream}'"
        for stream in INPUT_STREAMS
    ]


def join_options(params: JoinParams) -> dict[str, str]:
    """The job options `adstream_join` reads when it is planned.

    Options rather than arguments of the call: Flink 2.2.1 takes no scalar argument next to two
    table arguments (docs/join.md). Without a runtime (MSF, whose snapshots adstream does not
    see) the function always looks for ids a drained run left.
    """
    drained = (
        {}
        if params.runtime is None
        else {"adstream.join.drained-until": str(params.runtime.drained_until_ms)}
    )
    return drained | {
        "adstream.join.attribution-window": f"{params.attribution_window_ms} ms",
        "adstream.join.dedup-horizon": f"{params.state_ttl_ms} ms",
        "adstream.join.joined-fields": ",".join(
            str(_FIELD_NAMES.index(name)) for name in JOINED_IMPRESSION_FIELDS
        ),
    }


def on_time_views() -> list[str]:
    """Each stream's valid, on-time events, with their impression_id: the join's two inputs.

    Their columns are those of AdJoin.INPUT, in that order.
    """
    impression_id = _text(_field("fields", "impression_id"))
    return [
        f"""
CREATE TEMPORARY VIEW {stream}_on_time AS
SELECT {impression_id} AS impression_id,
  rt, payload, fields, source_partition, source_offset, source_sequence_number
FROM {stream}_checked WHERE rule IS NULL AND NOT is_late"""
        for stream in INPUT_STREAMS
    ]


DECIDED_VIEW: Final = "events_decided"
"""Every on-time event with its outcome; registered from `decided_query` by the job."""


def decided_query() -> str:
    """Every on-time event with its outcome, from `adstream_join`.

    `adstream_join` (java/src/main/java/io/adstream/flink/AdJoin.java) takes both tables
    partitioned by impression_id and returns one row per event: its `outcome` and what the sinks
    need of it (the impression's joined fields only with an attributed click). The job registers
    this query as a view object, not as SQL text: Flink 2.2.1 writes a view's PTF call back as
    text it cannot parse again (docs/join.md).
    """
    return f"""
SELECT outcome, impression_id, event_time, fields, impression_fields, impression_time,
  payload, source_partition, source_offset, source_sequence_number
FROM {JOIN}(
  impressions => TABLE impressions_on_time PARTITION BY impression_id,
  clicks => TABLE clicks_on_time PARTITION BY impression_id,
  on_time => DESCRIPTOR(rt),
  uid => 'adstream-join')"""


def _options(options: dict[str, str]) -> str:
    return ", ".join(f"{_quote(key)} = {_quote(value)}" for key, value in options.items())


_SOURCE_POSITION: Final = (
    "source_partition INT, source_offset BIGINT, source_sequence_number STRING"
)
"""Where the input record of an outcome came from: its identity (SPEC section 9)."""


def _column_type(field: Field) -> str:
    return "DECIMAL(18, 6)" if field.kind == "price" else "STRING"


def _sink(topic: str, params: JoinParams) -> str:
    """The clauses after a sink table's columns: its key, if any, and its options."""
    keyed = params.connectors.keyed_sinks if topic in KEYED_BY_IMPRESSION else ""
    return f"{keyed} WITH ({_options(params.connectors.sinks[topic])})".lstrip()


def sink_ddls(params: JoinParams) -> list[str]:
    """The four outcome topics."""
    impression_columns = ", ".join(f"{f.name} {_column_type(f)}" for f in IMPRESSION_FIELDS)
    click_columns = ", ".join(f"{f.name} {_column_type(f)}" for f in CLICK_FIELDS)
    return [
        f"""CREATE TABLE joined_sink (
  ad_id STRING, impression_id STRING, campaign_id STRING, publisher_id STRING,
  impression_time STRING, click_time STRING,
  geo_location STRING, platform STRING, device_type STRING, ad_type STRING,
  bid_price DECIMAL(18, 6), click_price DECIMAL(18, 6)
) {_sink(JOINED_TOPIC, params)}""",
        f"""CREATE TABLE unique_impressions_sink ({impression_columns},
  {_SOURCE_POSITION}
) {_sink(IMPRESSIONS_OUT_TOPIC, params)}""",
        f"""CREATE TABLE unmatched_clicks_sink ({click_columns},
  {_SOURCE_POSITION}
) {_sink(UNMATCHED_CLICKS_TOPIC, params)}""",
        f"""CREATE TABLE rejected_events_sink (
  `stream` STRING, reason STRING, detail STRING, raw_payload STRING,
  source_partition INT, source_offset BIGINT, rejected_at STRING, source_sequence_number STRING
) {_sink(REJECTED_EVENTS_TOPIC, params)}""",
    ]


def _values(fields: Sequence[Field], values: str, time: str) -> str:
    """The columns of `fields` from the result of `_parsed`, the event time from `time`."""
    columns = []
    for field in fields:
        text = _text(_field(values, field.name))
        if field.kind == "timestamp":
            columns.append(iso_time(time))
        elif field.kind == "price":
            columns.append(f"CAST({text} AS DECIMAL(18, 6))")
        else:
            columns.append(text)
    return ", ".join(columns)


def inserts() -> list[str]:
    """One INSERT per outcome topic; together they route every input record exactly once."""
    impression = {
        name: _text(_field("impression_fields", name)) for name in JOINED_IMPRESSION_FIELDS
    }
    raw = f"{RAW_PAYLOAD}(payload, {MAX_RAW_PAYLOAD_BYTES})"
    rejected = [
        f"SELECT '{stream}', COALESCE(reason, '{Reason.LATE_EVENT.value}'), "
        f"COALESCE(detail, 'event_time is behind the watermark of its partition'), {raw}, "
        f"source_partition, source_offset, {iso_time('CURRENT_TIMESTAMP')}, "
        f"source_sequence_number FROM {stream}_checked WHERE rule IS NOT NULL OR is_late"
        for stream in INPUT_STREAMS
    ]
    duplicate_impression, duplicate_click = Outcome.DUPLICATE_IMPRESSION, Outcome.DUPLICATE_CLICK
    rejected.append(
        f"SELECT CASE outcome WHEN '{duplicate_impression}' THEN 'impressions' ELSE 'clicks' END, "
        "outcome, "
        f"CASE outcome WHEN '{duplicate_impression}' THEN 'a copy of an earlier impression' "
        "ELSE 'a later click on an impression already clicked' END, "
        f"{raw}, source_partition, source_offset, {iso_time('CURRENT_TIMESTAMP')}, "
        f"source_sequence_number FROM {DECIDED_VIEW} "
        f"WHERE outcome IN ('{duplicate_impression}', '{duplicate_click}')"
    )
    return [
        f"""INSERT INTO joined_sink SELECT
  {impression["ad_id"]}, impression_id, {impression["campaign_id"]}, {impression["publisher_id"]},
  {iso_time("impression_time")}, {iso_time("event_time")},
  {impression["geo_location"]}, {impression["platform"]}, {impression["device_type"]},
  {impression["ad_type"]}, CAST({impression["bid_price"]} AS DECIMAL(18, 6)),
  CAST({_text(_field("fields", "click_price"))} AS DECIMAL(18, 6))
FROM {DECIDED_VIEW} WHERE outcome = '{Outcome.ATTRIBUTED_CLICK}'""",
        f"""INSERT INTO unique_impressions_sink
SELECT {_values(IMPRESSION_FIELDS, "fields", "event_time")},
  source_partition, source_offset, source_sequence_number
FROM {DECIDED_VIEW} WHERE outcome = '{Outcome.UNIQUE_IMPRESSION}'""",
        f"""INSERT INTO unmatched_clicks_sink
SELECT {_values(CLICK_FIELDS, "fields", "event_time")},
  source_partition, source_offset, source_sequence_number
FROM {DECIDED_VIEW} WHERE outcome = '{Outcome.UNMATCHED_CLICK}'""",
        "INSERT INTO rejected_events_sink\n" + "\nUNION ALL\n".join(rejected),
    ]


def tables(params: JoinParams) -> list[str]:
    """The functions, the source tables and the sink tables: what a compiled plan refers to."""
    sources = [source_ddl(stream, params) for stream in INPUT_STREAMS]
    return [*functions(), *sources, *sink_ddls(params)]


def views(params: JoinParams) -> list[str]:
    """Every view, in order, before `DECIDED_VIEW` and the INSERTs (after `tables`)."""
    return [input_events_view(), checked_view(params), *stream_checked_views(), *on_time_views()]
