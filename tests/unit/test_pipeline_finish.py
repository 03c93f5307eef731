"""The pieces `adstream run` finishes with: the tally's input count and a log's new lines."""

from collections import Counter
from decimal import Decimal
from pathlib import Path

from adstream.services.process import LogTail
from adstream.verify import ATTRIBUTED, UNIQUE, UNMATCHED, Tally


def test_input_records_count_every_input_outcome_but_not_the_enrichments_rejections() -> None:
    tally = Tally(
        Counter(
            {
                UNIQUE: 900,
                ATTRIBUTED: 20,
                UNMATCHED: 3,
                "impressions duplicate_impression": 7,
                "impressions invalid_timestamp": 2,
                "clicks late_event": 1,
                "clicks duplicate_click": 4,
                "joined invalid_joined_row": 5,  # a joined row, not an input record
            }
        ),
        Decimal("12.000000"),
    )
    assert tally.input_records() == 900 + 20 + 3 + 7 + 2 + 1 + 4
    # SPEC section 4: exactly the two identities' right-hand sides.
    assert "impressions in 910 = unique 900 + duplicate 7 + invalid 2 + late 0" in (
        tally.accounting(910, 28)
    )


def test_log_tail_sees_only_what_is_written_after_it(tmp_path: Path) -> None:
    log_file = tmp_path / "job.log"
    assert LogTail(log_file).text() == ""  # no file yet
    log_file.write_text("adstream-join: running: an earlier run\n")
    tail = LogTail(log_file)
    assert not tail.contains("running:")
    with log_file.open("a") as output:
        output.write("adstream-join: job id: 1234\nadstream-join: running: now\n")
    assert tail.text() == "adstream-join: job id: 1234\nadstream-join: running: now\n"
    assert tail.contains("running: now")
