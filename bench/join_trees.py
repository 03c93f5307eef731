"""Benchmark: the join alone, bounded, over one preloaded dataset; source trees side by side.

Preloads N events (every fault knob on, seed 7) into a private broker. Then, in rounds, `adstream
join --bounded` of each source tree given (default: this one) reads them all from a fresh data
directory, the trees alternating so that they share the machine's noise. Each run is measured
as the comparison harness measures a contender (wall time, CPU seconds of every process it
started, peak memory) and checked: the attributed clicks it wrote to `joined_output` against
SPEC section 3 recomputed in plain Python. Results: bench/results/join_trees.json.

    .venv/bin/python bench/join_trees.py [--events 2000000] [--runs 2]
        [--tree before=/path/to/other/checkout --tree after=.] [--output FILE]

A tree is a checkout of adstream: its `src` is put first on the path, and its join functions
jar (java/target/adstream-flink-functions.jar, `mvn -f TREE/java/pom.xml package -DskipTests`)
replaces this checkout's; the Kafka connector, the Python environments and the broker are this
checkout's. This checkout runs as it is (its lib/flink, as `make` built it).
"""

import json
import shutil
import sys
import tempfile
from decimal import Decimal
from pathlib import Path
from typing import Any

from adstream.events.outcomes import JOINED_TOPIC
from adstream.events.timestamps import parse_event_time
from adstream.services.kafka_client import read_topic
from adstream.settings import Settings
from adstream.verify import click_revenue, read_source_records
from compare import log
from enrich_throughput import (
    ADSTREAM,
    ROOT,
    TIMEOUT_S,
    WINDOW,
    _env,
    tree_arguments,
    write_results,
)
from harness import (
    Dataset,
    Row,
    become_subreaper,
    broker_process_ids,
    check,
    expected_rows,
    free_ports,
    measure,
    preload,
    private_broker,
)

RESULTS = ROOT / "bench" / "results" / "join_trees.json"
FUNCTIONS_JAR = "adstream-flink-functions.jar"


def _lib_dir(tree: Path, work: Path) -> Path:
    """This checkout's lib, with `tree`'s functions jar in lib/flink (unless it is this one)."""
    if tree == ROOT:
        return ROOT / "lib"
    jar = tree / "java" / "target" / FUNCTIONS_JAR
    if not jar.is_file():
        sys.exit(f"join_trees: no {jar}; build it: mvn -f {tree}/java/pom.xml package -DskipTests")
    lib = work / f"lib-{tree.name}-{len(list(work.glob('lib-*')))}"
    (lib / "flink").mkdir(parents=True, exist_ok=True)
    for name in ("kafka", "spark"):
        (lib / name).symlink_to(ROOT / "lib" / name)
    for path in (ROOT / "lib" / "flink").glob("*.jar"):
        if path.name != FUNCTIONS_JAR:
            shutil.copy2(path, lib / "flink")
    shutil.copy2(jar, lib / "flink")
    return lib


def _joined_since(settings: Settings, seen: set[tuple[int, int]]) -> list[Row]:
    """The attributed clicks in `joined_output` that no earlier run wrote (adds them to seen)."""
    rows = []
    for record in read_topic(settings, JOINED_TOPIC):
        if (record.partition, record.offset) in seen:
            continue
        seen.add((record.partition, record.offset))
        joined = json.loads(record.value or b"null", parse_float=Decimal)
        click_time = parse_event_time(joined["click_time"])
        rows.append(
            (
                joined["impression_id"],
                -1 if click_time is None else click_time,  # never expected: counted as wrong
                click_revenue(Decimal(joined["click_price"]), settings.revenue_multiplier),
            )
        )
    return rows


def main() -> None:
    args, trees = tree_arguments(__doc__ or "", RESULTS)
    become_subreaper()
    dataset = Dataset(events=args.events, seed=7)
    runs: dict[str, list[dict[str, Any]]] = {label: [] for label in trees}
    with tempfile.TemporaryDirectory(prefix="adstream-bench-") as work:
        workdir = Path(work)
        libs = {label: _lib_dir(tree, workdir) for label, tree in trees.items()}
        with private_broker(workdir / "broker", *free_ports(2)) as settings:
            log(f"preloading {args.events:,} events")
            preload(settings, dataset)
            broker = broker_process_ids(settings)
            log(f"recomputing SPEC section 3 for W = {WINDOW} (plain Python)")
            expected = expected_rows(settings, read_source_records(settings), WINDOW)
            seen: set[tuple[int, int]] = set()
            for number in range(1, args.runs + 1):
                for label, tree in trees.items():
                    env = _env(workdir / f"{label}-{number}", settings.bootstrap_servers, tree)
                    env["ADSTREAM_LIB_DIR"] = str(libs[label])
                    env["ADSTREAM_FLINK_PYTHON"] = str(ROOT / ".venv-flink" / "bin" / "python")
                    usage = measure(
                        [ADSTREAM, "join", "--bounded"],
                        env,
                        workdir / f"{label}.log",
                        broker,
                        TIMEOUT_S,
                    )
                    verdict = check(expected, _joined_since(settings, seen))
                    runs[label].append(
                        {
                            "wall_s": round(usage.wall_s, 1),
                            "cpu_s": round(usage.cpu_s, 1),
                            "peak_rss_mib": round(usage.peak_rss_bytes / 2**20),
                            "correct": verdict.correct,
                            "attributed_clicks": verdict.produced_rows,
                        }
                    )
                    log(
                        f"{label} run {number}: {usage.wall_s:.1f} s, {usage.cpu_s:.0f} CPU-s, "
                        f"peak {usage.peak_rss_bytes / 2**20:,.0f} MiB, "
                        f"{'correct' if verdict.correct else 'WRONG'}"
                    )
    write_results(args, "join_trees", dataset, trees, runs, {})


if __name__ == "__main__":
    main()
