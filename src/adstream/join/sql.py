"""The join job's SQL, built from the event schema (SPEC sections 2-4). Imports no engine.

The plan, for each input stream:

1. `<stream>_source`: the raw Kafka record as a string, its partition, offset and produce
   timestamp; `rt` is the event time when it parses and is not too far in the future (epoch 0
   otherwise, so no such record moves the watermark).
2. `<stream>_checked`: the first failing validation rule (`reason`, `detail`), and the
   partition watermark: the largest valid event time seen so far in the record's own Kafka
   partition. A valid record more than D behind it is late. This is deterministic (it depends
   only on the order within a partition), so `adstream verify` can recompute it exactly; as a
   safety net a record at or behind the operator watermark (which can only be ahead of the
   partition watermark after an idle partition wakes up) is late too, so the operators below
   never drop one silently.

Then impressions and on-time clicks are unioned and keyed by impression_id, in event time:
`MIN(impression time)` over all earlier-or-equal rows gives each click its impression; a
ROWS-ordered count numbers the impressions (1 = unique, later = duplicate) and the matching
clicks (1 = attributed, later = duplicate). Ties in event time break by arrival order, which
within one key is the order in its Kafka partition. Every input record gets one outcome.
"""

from collections.abc import Sequence
from typing import Final

from adstream.events.outcomes import (
    CLICKS_TOPIC,
    IMPRESSIONS_OUT_TOPIC,
    IMPRESSIONS_TOPIC,
    JOINED_TOPIC,
    REJECTED_EVENTS_TOPIC,
    UNMATCHED_CLICKS_TOPIC,
    Reason,
    Stream,
)
from adstream.events.schema import (
    CLICK_FIELDS,
    IMPRESSION_FIELDS,
    MAX_RAW_PAYLOAD_BYTES,
    Field,
)
from adstream.join.params import JoinParams

EPOCH: Final = "TO_TIMESTAMP_LTZ(0, 3)"
_TIME_PATTERN: Final = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?Z?\z"
_STREAM_TOPIC: Final[dict[Stream, str]] = {"impressions": IMPRESSIONS_TOPIC, "clicks": CLICKS_TOPIC}
_STREAM_FIELDS: Final[dict[Stream, tuple[Field, ...]]] = {
    "impressions": IMPRESSION_FIELDS,
    "clicks": CLICK_FIELDS,
}


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


def _json(field: str, payload: str = "payload") -> str:
    return f"JSON_VALUE({payload}, '$.{field}')"


def _wrapped(field: str) -> str:
    # The field's raw JSON inside [...]: tells a string ("...") from a number, bool or object.
    return f"JSON_QUERY(payload, '$.{field}' WITH UNCONDITIONAL ARRAY WRAPPER)"


def parsed_event_time(source: str = "payload", *, extracted: bool = False) -> str:
    """SQL for the event time as TIMESTAMP_LTZ(3), or NULL when it is not a valid time.

    Mirrors `adstream.events.timestamps.parse_event_time`: the ISO-8601 shape, a fraction of
    1-9 digits truncated to milliseconds, an optional Z, and a real calendar date and time
    (Flink's own cast would roll 2026-02-30 over into March).
    """
    text = source if extracted else _json("event_time", source)
    fraction = f"RPAD(COALESCE(REGEXP_EXTRACT({text}, '\\.([0-9]{{1,3}})', 1), ''), 3, '0')"
    cast = (
        f"TRY_CAST(CONCAT(SUBSTR({text}, 1, 10), ' ', SUBSTR({text}, 12, 8), '.', {fraction})"
        " AS TIMESTAMP_LTZ(3))"
    )
    return (
        f"CASE WHEN REGEXP({text}, '{_TIME_PATTERN}') "
        f"AND DATE_FORMAT({cast}, 'yyyy-MM-dd''T''HH:mm:ss') = SUBSTR({text}, 1, 19) "
        f"THEN {cast} END"
    )


def source_ddl(stream: Stream, params: JoinParams) -> str:
    """The Kafka source of one input stream, read as raw strings (nothing dropped by a format)."""
    parsed = parsed_event_time()
    in_time = (
        f"CASE WHEN {parsed} <= produced_at + {seconds(params.future_bound_ms)} THEN {parsed} END"
    )
    # One millisecond below max - D, so an event exactly D behind is never late to an operator.
    watermark_delay = seconds(params.out_of_orderness_ms + 1)
    options = {
        "connector": "kafka",
        "topic": _STREAM_TOPIC[stream],
        "properties.bootstrap.servers": params.bootstrap_servers,
        "properties.group.id": params.consumer_group,
        "properties.isolation.level": "read_committed",
        # Without a checkpoint to restore, continue after what earlier runs committed.
        "scan.startup.mode": "group-offsets",
        "properties.auto.offset.reset": "earliest",
        "scan.watermark.idle-timeout": f"{params.idle_timeout_ms} ms",
        "format": "raw",
        "raw.charset": "UTF-8",
    }
    if params.bounded:
        options["scan.bounded.mode"] = "latest-offset"
    return f"""
CREATE TABLE {stream}_source (
  payload STRING,
  source_partition INT METADATA FROM 'partition' VIRTUAL,
  source_offset BIGINT METADATA FROM 'offset' VIRTUAL,
  produced_at TIMESTAMP_LTZ(3) METADATA FROM 'timestamp' VIRTUAL,
  proc_time AS PROCTIME(),
  rt AS COALESCE({in_time}, {EPOCH}),
  WATERMARK FOR rt AS rt - {watermark_delay}
) WITH ({_options(options)})"""


def _validation_rules(
    fields: Sequence[Field], future_bound_ms: int
) -> list[tuple[str, Reason, str]]:
    """(condition, reason, detail SQL) in the order `adstream.events.validation` checks them."""
    rules: list[tuple[str, Reason, str]] = [
        (
            "NOT is_object",
            Reason.MALFORMED_JSON,
            "'not a JSON object'",
        )
    ]
    for field in fields:
        if field.required:
            rules.append(
                (
                    f"w_{field.name} IS NULL",
                    Reason.MISSING_FIELD,
                    _quote(f"{field.name} is missing"),
                )
            )
    for field in fields:
        wrapped = f"w_{field.name}"
        if field.kind == "price":
            rules.append(
                (
                    f"NOT REGEXP(SUBSTR({wrapped}, 2, 1), '[-0-9]')",
                    Reason.INVALID_TYPE,
                    _quote(f"{field.name} is not a JSON number"),
                )
            )
        else:
            rules.append(
                (
                    f"{wrapped} IS NOT NULL AND {wrapped} NOT LIKE '[\"%'",
                    Reason.INVALID_TYPE,
                    _quote(f"{field.name} is not a string"),
                )
            )
        if field.kind == "id":
            rules.append(
                (f"{wrapped} = '[\"\"]'", Reason.MISSING_FIELD, _quote(f"{field.name} is empty"))
            )
    rules.append(
        (
            "event_time_parsed IS NULL",
            Reason.INVALID_TIMESTAMP,
            "CONCAT('event_time ', v_event_time, ' is not ISO-8601')",
        )
    )
    for field in fields:
        if field.kind == "price":
            price = f"TRY_CAST(v_{field.name} AS DECIMAL(38, 18))"
            rules.append(
                (
                    f"{price} IS NULL OR {price} <= 0 OR {price} > 10000",
                    Reason.INVALID_PRICE,
                    f"CONCAT('{field.name} ', v_{field.name}, ' is outside (0, 10000]')",
                )
            )
    rules.append(
        (
            f"event_time_parsed > produced_at + {seconds(future_bound_ms)}",
            Reason.FUTURE_TIMESTAMP,
            "'event_time is more than the future bound ahead of the clock'",
        )
    )
    return rules


def checked_view(stream: Stream, params: JoinParams) -> str:
    """Each record with its first failing rule (or NULL) and whether it is late.

    The JSON is read once per field below the per-partition OVER aggregate, which keeps the
    planner from inlining (and so repeating) those reads in every rule that uses them.
    """
    fields = _STREAM_FIELDS[stream]
    rules = _validation_rules(fields, params.future_bound_ms)
    reason = "CASE " + " ".join(f"WHEN {c} THEN '{r.value}'" for c, r, _ in rules) + " END"
    detail = "CASE " + " ".join(f"WHEN {c} THEN {d}" for c, _, d in rules) + " END"
    extracted = ",\n      ".join(
        [f"{_wrapped(f.name)} AS w_{f.name}" for f in fields]
        + [f"{_json(f.name)} AS v_{f.name}" for f in fields if f.kind in ("price", "timestamp")]
    )
    late_by = seconds(params.out_of_orderness_ms)
    return f"""
CREATE TEMPORARY VIEW {stream}_checked AS
SELECT *,
  reason IS NULL AND COALESCE(
    rt < partition_watermark_base - {late_by} OR rt <= CURRENT_WATERMARK(rt), FALSE) AS is_late
FROM (
  SELECT payload, source_partition, source_offset, rt, partition_watermark_base,
    {reason} AS reason,
    {detail} AS detail
  FROM (
    SELECT *, {parsed_event_time("v_event_time", extracted=True)} AS event_time_parsed
    FROM (
      SELECT *,
        MAX(NULLIF(rt, {EPOCH})) OVER (
          PARTITION BY source_partition ORDER BY proc_time
          ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS partition_watermark_base
      FROM (
        SELECT payload, source_partition, source_offset, produced_at, proc_time, rt,
          payload IS JSON OBJECT AND RTRIM(payload) LIKE '%}}' AS is_object,
          {extracted}
        FROM {stream}_source
      )
    )
  )
)"""


def ranked_view(params: JoinParams) -> str:
    """On-time impressions and clicks, keyed by impression_id, numbered in event time."""
    window = seconds(params.attribution_window_ms)
    return f"""
CREATE TEMPORARY VIEW events_on_time AS
SELECT 'impression' AS kind, {_json("impression_id")} AS impression_id,
  payload, source_partition, source_offset, rt
FROM impressions_checked WHERE reason IS NULL AND NOT is_late
UNION ALL
SELECT 'click' AS kind, {_json("impression_id")} AS impression_id,
  payload, source_partition, source_offset, rt
FROM clicks_checked WHERE reason IS NULL AND NOT is_late;

CREATE TEMPORARY VIEW events_with_impression AS
SELECT *,
  MIN(CASE WHEN kind = 'impression' THEN rt END) OVER peers AS impression_time,
  FIRST_VALUE(CASE WHEN kind = 'impression' THEN payload END) OVER peers AS impression_payload
FROM events_on_time
WINDOW peers AS (
  PARTITION BY impression_id ORDER BY rt RANGE BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW);

CREATE TEMPORARY VIEW events_ranked AS
SELECT kind, impression_id, payload, source_partition, source_offset, rt,
  impression_time, impression_payload, matched,
  COUNT(CASE WHEN kind = 'impression' THEN 1 END) OVER arrivals AS impression_seq,
  COUNT(CASE WHEN matched THEN 1 END) OVER arrivals AS matched_click_seq
FROM (
  SELECT *, kind = 'click' AND impression_time IS NOT NULL
    AND rt <= impression_time + {window} AS matched
  FROM events_with_impression
)
WINDOW arrivals AS (
  PARTITION BY impression_id ORDER BY rt ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)"""


def _options(options: dict[str, str]) -> str:
    return ", ".join(f"{_quote(key)} = {_quote(value)}" for key, value in options.items())


def _sink_options(topic: str, params: JoinParams, key: str | None) -> str:
    options = {
        "connector": "kafka",
        "topic": topic,
        "properties.bootstrap.servers": params.bootstrap_servers,
        "sink.delivery-guarantee": "exactly-once",
        "sink.transactional-id-prefix": f"{params.transactional_id_prefix}-{topic}",
        # Well above checkpoint interval + restart time, below the broker's maximum (1 h).
        "properties.transaction.timeout.ms": "900000",
        "value.format": "json",
        "value.json.encode.decimal-as-plain-number": "true",
    }
    if key is not None:
        options |= {"key.format": "raw", "key.fields": key, "value.fields-include": "ALL"}
    return _options(options)


def _column_type(field: Field) -> str:
    return "DECIMAL(18, 6)" if field.kind == "price" else "STRING"


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
) WITH ({_sink_options(JOINED_TOPIC, params, key="impression_id")})""",
        f"""CREATE TABLE unique_impressions_sink ({impression_columns},
  source_partition INT, source_offset BIGINT
) WITH ({_sink_options(IMPRESSIONS_OUT_TOPIC, params, key="impression_id")})""",
        f"""CREATE TABLE unmatched_clicks_sink ({click_columns},
  source_partition INT, source_offset BIGINT
) WITH ({_sink_options(UNMATCHED_CLICKS_TOPIC, params, key="impression_id")})""",
        f"""CREATE TABLE rejected_events_sink (
  `stream` STRING, reason STRING, detail STRING, raw_payload STRING,
  source_partition INT, source_offset BIGINT, rejected_at STRING
) WITH ({_sink_options(REJECTED_EVENTS_TOPIC, params, key=None)})""",
    ]


def _values(fields: Sequence[Field], payload: str, time: str) -> str:
    columns = []
    for field in fields:
        if field.kind == "timestamp":
            columns.append(iso_time(time))
        elif field.kind == "price":
            columns.append(f"CAST({_json(field.name, payload)} AS DECIMAL(18, 6))")
        else:
            columns.append(_json(field.name, payload))
    return ", ".join(columns)


def inserts() -> list[str]:
    """One INSERT per outcome topic; together they route every input record exactly once."""
    impression = {f.name: _json(f.name, "impression_payload") for f in IMPRESSION_FIELDS}
    raw = f"SUBSTR(payload, 1, {MAX_RAW_PAYLOAD_BYTES})"
    rejected = [
        f"SELECT '{stream}', COALESCE(reason, '{Reason.LATE_EVENT.value}'), "
        f"COALESCE(detail, 'event_time is behind the watermark of its partition'), {raw}, "
        f"source_partition, source_offset, {iso_time('CURRENT_TIMESTAMP')} "
        f"FROM {stream}_checked WHERE reason IS NOT NULL OR is_late"
        for stream in ("impressions", "clicks")
    ]
    rejected.append(
        "SELECT CASE kind WHEN 'impression' THEN 'impressions' ELSE 'clicks' END, "
        f"CASE kind WHEN 'impression' THEN '{Reason.DUPLICATE_IMPRESSION.value}' "
        f"ELSE '{Reason.DUPLICATE_CLICK.value}' END, "
        "CASE kind WHEN 'impression' THEN 'a copy of an earlier impression' "
        "ELSE 'a later click on an impression already clicked' END, "
        f"{raw}, source_partition, source_offset, {iso_time('CURRENT_TIMESTAMP')} "
        "FROM events_ranked WHERE (kind = 'impression' AND impression_seq > 1) "
        "OR (matched AND matched_click_seq > 1)"
    )
    return [
        f"""INSERT INTO joined_sink SELECT
  {impression["ad_id"]}, impression_id, {impression["campaign_id"]}, {impression["publisher_id"]},
  {iso_time("impression_time")}, {iso_time("rt")},
  {impression["geo_location"]}, {impression["platform"]}, {impression["device_type"]},
  {impression["ad_type"]}, CAST({impression["bid_price"]} AS DECIMAL(18, 6)),
  CAST({_json("click_price")} AS DECIMAL(18, 6))
FROM events_ranked WHERE matched AND matched_click_seq = 1""",
        f"""INSERT INTO unique_impressions_sink
SELECT {_values(IMPRESSION_FIELDS, "payload", "rt")},
  source_partition, source_offset
FROM events_ranked WHERE kind = 'impression' AND impression_seq = 1""",
        f"""INSERT INTO unmatched_clicks_sink SELECT {_values(CLICK_FIELDS, "payload", "rt")},
  source_partition, source_offset
FROM events_ranked WHERE kind = 'click' AND NOT matched""",
        "INSERT INTO rejected_events_sink\n" + "\nUNION ALL\n".join(rejected),
    ]


def statements(params: JoinParams) -> list[str]:
    """Every DDL and view, in order, before the INSERTs."""
    ddl = [source_ddl("impressions", params), source_ddl("clicks", params)]
    ddl += [checked_view("impressions", params), checked_view("clicks", params)]
    ddl += [part for part in ranked_view(params).split(";\n") if part.strip()]
    return ddl + sink_ddls(params)
