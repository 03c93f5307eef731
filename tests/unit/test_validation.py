import json
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest

from adstream.events.outcomes import Reason, Stream
from adstream.events.validation import Rejection, ValidEvent, validate

NOW_MS = 1_795_750_448_000  # 2026-11-27T03:34:08Z
HOUR_MS = 3_600_000

IMPRESSION: dict[str, Any] = {
    "ad_id": "ad-1",
    "impression_id": "imp-1",
    "campaign_id": "cmp-1",
    "publisher_id": "pub-1",
    "event_time": "2026-11-27T03:34:08.123Z",
    "device_type": "phone",
    "geo_location": "US",
    "platform": "iOS",
    "ad_type": "video",
    "bid_price": 12.5,
}
CLICK: dict[str, Any] = {
    **{k: v for k, v in IMPRESSION.items() if k not in ("ad_type", "bid_price")},
    "click_price": 0.75,
}


def edited(base: dict[str, Any], **changes: Any) -> str:
    record = {**base, **changes}
    return json.dumps({k: v for k, v in record.items() if v is not _ABSENT})


_ABSENT = object()


@dataclass(frozen=True)
class Case:
    name: str
    stream: Stream
    raw: str | bytes
    reason: Reason | None  # None: valid


CASES = [
    Case("valid impression", "impressions", edited(IMPRESSION), None),
    Case("valid click", "clicks", edited(CLICK), None),
    Case(
        "optional fields absent",
        "impressions",
        edited(
            IMPRESSION, device_type=_ABSENT, geo_location=_ABSENT, platform=_ABSENT, ad_type=_ABSENT
        ),
        None,
    ),
    Case("optional fields null", "clicks", edited(CLICK, platform=None, device_type=None), None),
    Case("extra fields ignored", "clicks", edited(CLICK, user_agent="x", extra={"a": 1}), None),
    Case(
        "timestamp without Z",
        "impressions",
        edited(IMPRESSION, event_time="2026-11-27T03:34:08.123"),
        None,
    ),
    Case("integer price", "impressions", edited(IMPRESSION, bid_price=3), None),
    Case("price at the upper bound", "clicks", edited(CLICK, click_price=10000), None),
    Case("not JSON", "impressions", '{"ad_id": "ad-1", ', Reason.MALFORMED_JSON),
    Case("not UTF-8", "impressions", b'{"ad_id": "\xff"}', Reason.MALFORMED_JSON),
    Case(
        "two objects in one record",
        "impressions",
        edited(IMPRESSION) + ' {"ad_id": "ad-2"}',
        Reason.MALFORMED_JSON,
    ),
    Case("JSON array", "clicks", "[1, 2]", Reason.MALFORMED_JSON),
    Case("JSON string", "clicks", '"click"', Reason.MALFORMED_JSON),
    Case(
        "NaN is not JSON",
        "impressions",
        edited(IMPRESSION).replace("12.5", "NaN"),
        Reason.MALFORMED_JSON,
    ),
    Case("empty record", "impressions", "", Reason.MALFORMED_JSON),
    Case(
        "missing impression_id",
        "clicks",
        edited(CLICK, impression_id=_ABSENT),
        Reason.MISSING_FIELD,
    ),
    Case("null ad_id", "impressions", edited(IMPRESSION, ad_id=None), Reason.MISSING_FIELD),
    Case(
        "empty campaign_id", "impressions", edited(IMPRESSION, campaign_id=""), Reason.MISSING_FIELD
    ),
    Case("missing event_time", "clicks", edited(CLICK, event_time=_ABSENT), Reason.MISSING_FIELD),
    Case(
        "missing bid_price",
        "impressions",
        edited(IMPRESSION, bid_price=_ABSENT),
        Reason.MISSING_FIELD,
    ),
    Case("missing click_price", "clicks", edited(CLICK, click_price=_ABSENT), Reason.MISSING_FIELD),
    Case("numeric ad_id", "impressions", edited(IMPRESSION, ad_id=7), Reason.INVALID_TYPE),
    Case("price as string", "clicks", edited(CLICK, click_price="0.75"), Reason.INVALID_TYPE),
    Case(
        "price as boolean", "impressions", edited(IMPRESSION, bid_price=True), Reason.INVALID_TYPE
    ),
    Case(
        "numeric event_time", "clicks", edited(CLICK, event_time=1795750448123), Reason.INVALID_TYPE
    ),
    Case(
        "platform as object", "clicks", edited(CLICK, platform={"os": "ios"}), Reason.INVALID_TYPE
    ),
    Case(
        "unparseable time",
        "impressions",
        edited(IMPRESSION, event_time="27/11/2026 03:34"),
        Reason.INVALID_TIMESTAMP,
    ),
    Case(
        "impossible date",
        "clicks",
        edited(CLICK, event_time="2026-02-30T10:00:00Z"),
        Reason.INVALID_TIMESTAMP,
    ),
    Case("empty time", "clicks", edited(CLICK, event_time=""), Reason.INVALID_TIMESTAMP),
    Case("zero price", "impressions", edited(IMPRESSION, bid_price=0), Reason.INVALID_PRICE),
    Case("negative price", "clicks", edited(CLICK, click_price=-1.5), Reason.INVALID_PRICE),
    Case(
        "price above 10000",
        "impressions",
        edited(IMPRESSION, bid_price=10000.000001),
        Reason.INVALID_PRICE,
    ),
    Case(
        "more than an hour ahead",
        "clicks",
        edited(CLICK, event_time="2026-11-27T04:34:08.001Z"),
        Reason.FUTURE_TIMESTAMP,
    ),
    Case(
        "exactly an hour ahead is accepted",
        "clicks",
        edited(CLICK, event_time="2026-11-27T04:34:08.000Z"),
        None,
    ),
]


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_validation_outcome(case: Case) -> None:
    result = validate(case.raw, case.stream, now_ms=NOW_MS, future_bound_ms=HOUR_MS)
    if case.reason is None:
        assert isinstance(result, ValidEvent), result
    else:
        assert isinstance(result, Rejection)
        assert result.reason is case.reason
        assert result.detail


def test_valid_event_is_normalised_exactly() -> None:
    raw = edited(CLICK, click_price=0.1234565, platform=_ABSENT)
    result = validate(raw, "clicks", now_ms=NOW_MS, future_bound_ms=HOUR_MS)
    assert isinstance(result, ValidEvent)
    assert result.event_time == NOW_MS + 123
    assert result.fields["click_price"] == Decimal("0.1234565")  # money is never a float
    assert result.fields["platform"] is None


def test_first_failing_check_wins() -> None:
    raw = edited(CLICK, impression_id=_ABSENT, click_price=-1)
    result = validate(raw, "clicks", now_ms=NOW_MS, future_bound_ms=HOUR_MS)
    assert isinstance(result, Rejection)
    assert result.reason is Reason.MISSING_FIELD
