"""The join stage through the real Flink job (SPEC sections 2-4), one row per rule."""

import json
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from adstream.events.outcomes import INPUT_TOPICS, Stream
from adstream.generator.runner import generate
from adstream.generator.sinks import KafkaSink
from adstream.join.launcher import join_log
from adstream.settings import Settings
from tests.join_harness import (
    JoinOutputs,
    assert_same_outputs,
    click,
    expected_outputs,
    impression,
    join_settings,
    produce,
    recreate_topics,
    run_bounded_join,
    source_records,
)

pytestmark = pytest.mark.integration

START = datetime(2026, 11, 1, tzinfo=UTC)


def at(slot: int, seconds: float, *, z: bool = True) -> str:
    """Event time `seconds` into the case's own hour (cases never share a watermark window)."""
    moment = START + timedelta(hours=slot, seconds=seconds)
    return (
        moment.strftime("%Y-%m-%dT%H:%M:%S.")
        + f"{moment.microsecond // 1000:03d}"
        + ("Z" if z else "")
    )


@dataclass(frozen=True)
class Record:
    stream: Stream
    value: dict[str, Any] | str | bytes
    expected: str  # the outcome: unique, attributed, unmatched, or a rejection reason

    @property
    def raw(self) -> str | bytes:
        return self.value if isinstance(self.value, str | bytes) else json.dumps(self.value)


def I(value: dict[str, Any] | str | bytes, expected: str) -> Record:  # noqa: E743
    return Record("impressions", value, expected)


def C(value: dict[str, Any] | str | bytes, expected: str) -> Record:
    return Record("clicks", value, expected)


@dataclass(frozen=True)
class Case:
    name: str
    records: list[Record] = field(default_factory=list)  # in arrival order


def cases() -> list[Case]:
    rows: list[Case] = []

    def case(name: str, *records: Record) -> None:
        rows.append(Case(name, list(records)))

    s = 0  # slot of the next case: each case lives in its own hour of event time

    def slot() -> int:
        nonlocal s
        s += 1
        return s

    k = slot()
    case(
        "on time",
        I(impression("on-time", at(k, 0)), "unique"),
        C(click("on-time", at(k, 5)), "attributed"),
    )
    k = slot()
    case(
        "click at the impression time (window start)",
        I(impression("edge-start", at(k, 0)), "unique"),
        C(click("edge-start", at(k, 0)), "attributed"),
    )
    k = slot()
    case(
        "click exactly W after (window end)",
        I(impression("edge-end", at(k, 0)), "unique"),
        C(click("edge-end", at(k, 600)), "attributed"),
    )
    k = slot()
    case(
        "one millisecond past the window",
        I(impression("past", at(k, 0)), "unique"),
        C(click("past", at(k, 600.001)), "unmatched"),
    )
    k = slot()
    case(
        "click before its impression",
        C(click("before", at(k, 0)), "unmatched"),
        I(impression("before", at(k, 1)), "unique"),
    )
    k = slot()
    case(
        "out of order within D",
        I(impression("ooo-a", at(k, 4.9)), "unique"),
        C(click("ooo-b", at(k, 4.9)), "attributed"),
        I(impression("ooo-b", at(k, 0)), "unique"),  # arrives 4.9 s behind: not late
        C(click("ooo-a", at(k, 5)), "attributed"),
    )
    k = slot()
    case(
        "duplicate impressions with different times",
        I(impression("dup-imp", at(k, 2)), "duplicate_impression"),
        I(impression("dup-imp", at(k, 0), ad_type="banner"), "unique"),  # earliest wins
        I(impression("dup-imp", at(k, 2)), "duplicate_impression"),
        C(click("dup-imp", at(k, 1)), "attributed"),
    )
    k = slot()
    case(
        "several clicks on one impression",
        I(impression("multi", at(k, 0)), "unique"),
        C(click("multi", at(k, 2)), "duplicate_click"),
        C(click("multi", at(k, 1), click_price=0.25), "attributed"),  # earliest, arrives 2nd
        C(click("multi", at(k, 3)), "duplicate_click"),
        C(click("multi", at(k, 1)), "duplicate_click"),
    )  # same time: arrival order decides
    k = slot()
    case("orphan click", C(click("no-such-impression", at(k, 0)), "unmatched"))
    k = slot()
    case(
        "very late impression",
        I(impression("late-imp-advance", at(k, 100)), "unique"),
        I(impression("late-imp", at(k, 10)), "late_event"),
        C(click("late-imp", at(k, 20)), "unmatched"),
    )
    k = slot()
    case(
        "very late click",
        I(impression("late-click", at(k, 0)), "unique"),
        C(click("late-click-advance", at(k, 200)), "unmatched"),
        C(click("late-click", at(k, 5)), "late_event"),
    )
    k = slot()
    case(
        "malformed JSON",
        I('{"ad_id": "ad-1", "impression_id": ', "malformed_json"),
        C("not json at all", "malformed_json"),
        C("[1, 2, 3]", "malformed_json"),
        I(json.dumps(impression("two-objects", at(k, 0))) + ' {"ad_id": "ad-2"}', "malformed_json"),
        C(
            json.dumps(click("not-utf8", at(k, 1))).encode().replace(b"phone", b"ph\xffone"),
            "malformed_json",
        ),
    )
    case(
        "missing fields",
        I(impression("miss", at(k, 0), ad_id=None), "missing_field"),
        C(
            {
                "ad_id": "a",
                "campaign_id": "c",
                "publisher_id": "p",
                "event_time": at(k, 1),
                "click_price": 1,
            },
            "missing_field",
        ),
        I(
            {k2: v for k2, v in impression("miss2", at(k, 0)).items() if k2 != "bid_price"},
            "missing_field",
        ),
        C(click("miss3", at(k, 1), campaign_id=""), "missing_field"),
    )
    case(
        "wrong types",
        I(impression("type1", at(k, 0), bid_price="12.5"), "invalid_type"),
        C(click("type2", at(k, 1), ad_id=42), "invalid_type"),
        C(click("type3", at(k, 1), click_price=True), "invalid_type"),
        I(impression("type4", at(k, 0), platform={"os": "ios"}), "invalid_type"),
    )
    case(
        "bad prices",
        I(impression("price1", at(k, 0), bid_price=0), "invalid_price"),
        C(click("price2", at(k, 1), click_price=-1.5), "invalid_price"),
        I(impression("price3", at(k, 0), bid_price=10000.01), "invalid_price"),
    )
    case(
        "unparseable timestamps",
        I(impression("ts1", "yesterday"), "invalid_timestamp"),
        C(click("ts2", "2026-02-30T10:00:00Z"), "invalid_timestamp"),
        C(click("ts3", "2026-11-01 01:00:00"), "invalid_timestamp"),
    )
    case(
        "future timestamp",
        C(click("future", "2099-01-01T00:00:00Z"), "future_timestamp"),
        I(impression("future-imp", "2099-01-01T00:00:00.000"), "future_timestamp"),
    )
    k = slot()
    case(
        "both valid timestamp spellings",
        I(impression("spell", at(k, 0, z=False)[:19]), "unique"),  # no fraction, no Z
        C(click("spell", at(k, 1.5)[:-1] + "999999Z"), "attributed"),
    )  # 9 digits, truncated
    k = slot()
    case(
        "closing event: moves every watermark past the last case",
        I(impression("closing", at(k, 0)), "unique"),
        C(click("closing", at(k, 0)), "attributed"),
    )
    return rows


@pytest.fixture(scope="module")
def case_outputs(
    kafka: Settings, tmp_path_factory: pytest.TempPathFactory
) -> tuple[list[Record], JoinOutputs, Settings]:
    settings = join_settings(kafka, tmp_path_factory.mktemp("join-cases"))
    recreate_topics(settings, partitions=1)  # arrival order is the order below
    records = [record for case in cases() for record in case.records]
    produce(settings, [(r.stream, r.raw, None) for r in records])
    return records, run_bounded_join(settings), settings


@pytest.mark.parametrize("case", cases(), ids=lambda case: case.name)
def test_every_record_gets_its_outcome(
    case: Case, case_outputs: tuple[list[Record], JoinOutputs, Settings]
) -> None:
    records, outputs, _ = case_outputs
    assert_outcomes(case, records, outputs, lambda stream, number: number)


def assert_outcomes(
    case: Case,
    records: list[Record],
    outputs: JoinOutputs,
    offset_of: Callable[[Stream, int], int],
) -> None:
    """Each record of the case got its expected outcome; the records went to one partition,
    where `offset_of(stream, n)` is the offset of the stream's n-th record."""
    numbers: dict[Stream, int] = Counter()
    attributed = {row["click_time"] for row in outputs.joined}
    for record in records:
        offset = offset_of(record.stream, numbers[record.stream])
        numbers[record.stream] += 1
        if record not in case.records:
            continue
        found = outputs.outcome_of(record.stream, 0, offset)
        if record.expected == "attributed":
            assert found == [], (record, found)
            assert isinstance(record.value, dict)
            assert _iso(record.value["event_time"]) in attributed, record
        else:
            assert found == [record.expected], (record, found)


def test_joined_rows_are_exact(case_outputs: tuple[list[Record], JoinOutputs, Settings]) -> None:
    _, outputs, _ = case_outputs
    rows = {row["impression_id"]: row for row in outputs.joined}
    assert rows["dup-imp"]["impression_time"] == "2026-11-01T07:00:00.000Z"
    assert rows["dup-imp"]["ad_type"] == "banner"  # dimensions of the earliest impression
    assert rows["multi"] == {
        "ad_id": "ad-1",
        "impression_id": "multi",
        "campaign_id": "cmp-1",
        "publisher_id": "pub-1",
        "impression_time": "2026-11-01T08:00:00.000Z",
        "click_time": "2026-11-01T08:00:01.000Z",
        "geo_location": "US",
        "platform": "iOS",
        "device_type": "phone",
        "ad_type": "video",
        "bid_price": Decimal("12.500000"),
        "click_price": Decimal("0.250000"),
    }
    assert rows["spell"]["click_time"] == "2026-11-01T13:00:01.500Z"  # 9 digits truncated
    assert len(outputs.joined) == len(rows)  # one row per impression


def test_reference_recomputation_agrees_on_the_cases(
    case_outputs: tuple[list[Record], JoinOutputs, Settings],
) -> None:
    _, outputs, settings = case_outputs
    assert_same_outputs(outputs, expected_outputs(settings))


def _iso(text: str) -> str:
    from adstream.events.timestamps import format_event_time, parse_event_time

    parsed = parse_event_time(text)
    assert parsed is not None
    return format_event_time(parsed)


def test_generated_dataset_matches_the_batch_recomputation(kafka: Settings, tmp_path: Path) -> None:
    settings = join_settings(
        kafka,
        tmp_path / "join-generated",
        seed=11,
        rate=0.0,
        events=80_000,
        start_time=START,
        out_of_order_fraction=0.05,
        late_fraction=0.01,
        duplicate_impression_fraction=0.03,
        duplicate_click_fraction=0.05,
        orphan_click_fraction=0.05,
        invalid_fraction=0.02,
    )
    recreate_topics(settings, partitions=2)
    generate(settings, KafkaSink(settings, INPUT_TOPICS))
    outputs = run_bounded_join(settings)

    assert_same_outputs(outputs, expected_outputs(settings))
    assert len(source_records(settings)) == outputs.total() == 80_000
    reasons = Counter(reason for _, reason, _, _ in outputs.rejected)
    assert all(
        reasons[r] > 0
        for r in (
            "late_event",
            "duplicate_impression",
            "duplicate_click",
            "malformed_json",
            "future_timestamp",
        )
    )


def test_a_run_restored_from_a_drained_one_remembers_its_impressions(
    kafka: Settings, tmp_path: Path
) -> None:
    """A bounded run drains; the next one restores its savepoint and still knows every id it
    decided: a copy is a duplicate, a click joins the earlier run's impression (with its
    dimensions) or is a duplicate of the click attributed there, or is past W."""
    settings = join_settings(kafka, tmp_path / "join-drained")
    recreate_topics(settings, partitions=1)
    first = [
        I(impression("kept-copy", at(1, 0)), "unique"),
        I(impression("kept-click", at(1, 0), ad_type="banner", bid_price=7.25), "unique"),
        I(impression("kept-clicked", at(1, 0)), "unique"),
        C(click("kept-clicked", at(1, 5)), "attributed"),
        I(impression("kept-window", at(1, 0)), "unique"),
    ]
    produce(settings, [(r.stream, r.raw, None) for r in first])
    run_bounded_join(settings)

    # Minutes later in event time (more than D), so no record of it is ordered before the first
    # run's: the recomputation over both runs' input is then exactly what the two runs owe.
    second = [
        I(impression("kept-copy", at(1, 120)), "duplicate_impression"),
        C(click("kept-click", at(1, 120)), "attributed"),
        C(click("kept-clicked", at(1, 121)), "duplicate_click"),
        C(click("kept-window", at(1, 601)), "unmatched"),
    ]
    produce(settings, [(r.stream, r.raw, None) for r in second])
    outputs = run_bounded_join(settings)

    assert_same_outputs(outputs, expected_outputs(settings))
    both = Case("both runs", first + second)
    assert_outcomes(both, both.records, outputs, lambda stream, number: number)
    joined = {row["impression_id"]: row for row in outputs.joined}
    assert (joined["kept-click"]["impression_time"], joined["kept-click"]["ad_type"]) == (
        "2026-11-01T01:00:00.000Z",
        "banner",
    )
    assert joined["kept-click"]["bid_price"] == Decimal("7.250000")


def test_a_damaged_cached_plan_is_planned_again_and_runs_compiled_or_loaded_restore_each_other(
    kafka: Settings, tmp_path: Path
) -> None:
    """The join runs from a compiled plan cached under lib/flink/plans (adstream.join.plans).
    One cut short (a disk that filled as it was written) is compiled again; a run from the plan
    just compiled and one from the plan loaded restore each other's savepoints: a copy of an
    impression an earlier run decided is a duplicate."""
    # A dedup horizon no other test has: a plan of its own, which no other test repairs meanwhile.
    settings = join_settings(kafka, tmp_path / "join-plan", dedup_horizon=timedelta(seconds=3540))
    recreate_topics(settings, partitions=1)
    runs = [
        [I(impression("plan-a", at(1, 0)), "unique"), C(click("plan-a", at(1, 5)), "attributed")],
        [
            I(impression("plan-a", at(1, 120)), "duplicate_impression"),
            I(impression("plan-b", at(1, 125)), "unique"),
        ],
        [
            I(impression("plan-b", at(1, 240)), "duplicate_impression"),
            C(click("plan-b", at(1, 245)), "attributed"),
        ],
    ]
    plan_marks = []
    for number, records in enumerate(runs):
        produce(settings, [(r.stream, r.raw, None) for r in records])
        outputs = run_bounded_join(settings)
        log = join_log(settings).read_text(errors="replace")
        plan_marks.append(PLAN_MARK.findall(log)[-1])
        if number == 0:
            plan_file = settings.lib_dir / "flink" / "plans" / plan_marks[0][1]
            plan_file.write_text(plan_file.read_text()[:1000])

    assert_same_outputs(outputs, expected_outputs(settings))
    every = Case("three runs", [r for records in runs for r in records])
    assert_outcomes(every, every.records, outputs, lambda stream, number: number)
    assert f"the cached plan {plan_file} cannot be loaded" in log
    assert [way for way, _ in plan_marks[1:]] == ["compiled", "loaded"]
    assert {name for _, name in plan_marks} == {plan_file.name}


PLAN_MARK = re.compile(r"plan (loaded|compiled) in [\d.]+ s \((join-\w+\.json)\)")
