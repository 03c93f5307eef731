"""Benchmark: the enrichment alone, bounded, over one join output; source trees side by side.

Preloads N events (every fault knob on, seed 7) into a private broker and runs `adstream join
--bounded` over them once. Then, in rounds, `adstream enrich --bounded` of each source tree
given (default: this one) reads that same join output from a fresh data directory, the trees
alternating so that they share the machine's noise. Each run is measured as the comparison
harness measures a contender (wall time, CPU seconds of every process it started, peak memory)
and checked: its attributed clicks against SPEC section 3 recomputed in plain Python, and every
table's row count against the first run's. Results: bench/results/enrich_throughput.json.

    .venv/bin/python bench/enrich_throughput.py [--events 2000000] [--runs 2]
        [--tree before=/path/to/other/checkout --tree after=.] [--output FILE]

A tree is a checkout of adstream (its `src` is put first on the path); jars and the Python
environment are this checkout's.
"""

import argparse
import json
import os
import statistics
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from adstream.lakehouse.catalog import row_counts
from adstream.settings import load_settings
from adstream.verify import read_source_records
from compare import log, machine
from harness import (
    Dataset,
    become_subreaper,
    broker_process_ids,
    check,
    expected_rows,
    free_ports,
    measure,
    preload,
    private_broker,
    produced_rows,
)

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "enrich_throughput.json"
ADSTREAM = str(Path(sys.executable).with_name("adstream"))
WINDOW = timedelta(minutes=10)
TIMEOUT_S = 3600.0


def _tree(text: str) -> tuple[str, Path]:
    label, _, path = text.partition("=")
    if not path or not (Path(path) / "src" / "adstream").is_dir():
        raise argparse.ArgumentTypeError(f"not LABEL=CHECKOUT: {text}")
    return label, Path(path).resolve()


def _env(data_dir: Path, bootstrap: str, tree: Path | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ADSTREAM_")}
    env |= {
        "ADSTREAM_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "ADSTREAM_DATA_DIR": str(data_dir),
        "ADSTREAM_ATTRIBUTION_WINDOW": str(WINDOW.total_seconds()),
        "ADSTREAM_LIB_DIR": str(ROOT / "lib"),
    }
    if tree is not None:
        env["PYTHONPATH"] = str(tree / "src")
    return env


def tree_arguments(doc: str, output: Path) -> tuple[argparse.Namespace, dict[str, Path]]:
    """The command line of a benchmark of source trees side by side: its arguments and trees."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--events", type=int, default=2_000_000)
    parser.add_argument("--runs", type=int, default=2, help="Rounds (each runs every tree once).")
    parser.add_argument("--tree", type=_tree, action="append", help="LABEL=CHECKOUT")
    parser.add_argument("--output", type=Path, default=output)
    args = parser.parse_args()
    return args, dict(args.tree or [("this", ROOT)])


def main() -> None:
    args, trees = tree_arguments(__doc__ or "", RESULTS)
    become_subreaper()
    dataset = Dataset(events=args.events, seed=7)
    runs: dict[str, list[dict[str, Any]]] = {label: [] for label in trees}
    with tempfile.TemporaryDirectory(prefix="adstream-bench-") as work:
        workdir = Path(work)
        with private_broker(workdir / "broker", *free_ports(2)) as settings:
            log(f"preloading {args.events:,} events")
            preload(settings, dataset)
            broker = broker_process_ids(settings)
            log("adstream join --bounded")
            join_env = _env(workdir / "join", settings.bootstrap_servers)
            joined = measure(
                [ADSTREAM, "join", "--bounded"], join_env, workdir / "join.log", broker, TIMEOUT_S
            )
            log(f"recomputing SPEC section 3 for W = {WINDOW} (plain Python)")
            expected = expected_rows(settings, read_source_records(settings), WINDOW)
            counts: dict[str, int] | None = None
            for number in range(1, args.runs + 1):
                for label, tree in trees.items():
                    data_dir = workdir / f"{label}-{number}"
                    usage = measure(
                        [ADSTREAM, "enrich", "--bounded"],
                        _env(data_dir, settings.bootstrap_servers, tree),
                        workdir / f"{label}.log",
                        broker,
                        TIMEOUT_S,
                    )
                    verdict = check(
                        expected, produced_rows(data_dir, "ad_analytics.enriched_ad_data")
                    )
                    rows = row_counts(load_settings(data_dir=data_dir))
                    counts = counts or rows
                    runs[label].append(
                        {
                            "wall_s": round(usage.wall_s, 1),
                            "cpu_s": round(usage.cpu_s, 1),
                            "peak_rss_mib": round(usage.peak_rss_bytes / 2**20),
                            "correct": verdict.correct,
                            "same_rows_as_the_first_run": rows == counts,
                            "rows": rows,
                        }
                    )
                    log(
                        f"{label} run {number}: {usage.wall_s:.1f} s, {usage.cpu_s:.0f} CPU-s, "
                        f"peak {usage.peak_rss_bytes / 2**20:,.0f} MiB, "
                        f"{'correct' if verdict.correct else 'WRONG'}"
                        f"{'' if rows == counts else ', row counts differ'}"
                    )
    write_results(
        args, "enrich_throughput", dataset, trees, runs, {"join_wall_s": round(joined.wall_s, 1)}
    )


def write_results(
    args: argparse.Namespace,
    benchmark: str,
    dataset: Dataset,
    trees: dict[str, Path],
    runs: dict[str, list[dict[str, Any]]],
    extra: dict[str, Any],
) -> None:
    """Write the runs of each tree and their medians to `args.output`; print the medians."""
    medians = {label: _medians(args.events, rows) for label, rows in runs.items()}
    result = {
        "benchmark": benchmark,
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "dataset": dataset.describe(),
        "window_s": WINDOW.total_seconds(),
        **extra,
        "trees": {label: str(tree) for label, tree in trees.items()},
        "median": medians,
        "runs": runs,
    }
    args.output.parent.mkdir(exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    for label, median in medians.items():
        print(label, json.dumps(median))


def _medians(events: int, rows: list[dict[str, Any]]) -> dict[str, Any]:
    wall = statistics.median(row["wall_s"] for row in rows)
    return {
        "wall_s": wall,
        "events_per_s": round(events / wall),
        "cpu_s": statistics.median(row["cpu_s"] for row in rows),
        "cpu_us_per_event": round(statistics.median(row["cpu_s"] for row in rows) / events * 1e6),
        "peak_rss_mib": statistics.median(row["peak_rss_mib"] for row in rows),
        "all_correct": all(
            row["correct"] and row.get("same_rows_as_the_first_run", True) for row in rows
        ),
    }


if __name__ == "__main__":
    main()
