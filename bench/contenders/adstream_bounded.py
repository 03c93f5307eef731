"""Contender (a): adstream as built. `adstream join --bounded`, then `adstream enrich --bounded`.

The commands a user runs, on the broker given and a data directory of its own, with the
attribution window given; the result is `ad_analytics.enriched_ad_data` in that directory's
catalog. The join reads the input to its end and drains before the enrichment starts: the two
JVMs never compete for the two cores.

    .venv/bin/python bench/contenders/adstream_bounded.py --bootstrap-servers HOST:PORT
        --data-dir DIR [--window-seconds 600] [--state-backend rocksdb] [--flink-heap 1g]
        [--gc-time-ratio 12]
"""

import argparse
import os
import subprocess
import sys
from pathlib import Path

ADSTREAM = str(Path(sys.executable).with_name("adstream"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap-servers", required=True)
    parser.add_argument("--data-dir", required=True, type=Path)
    parser.add_argument("--window-seconds", type=float, default=600.0)
    parser.add_argument("--state-backend", help="The join's state backend (default: adstream's).")
    parser.add_argument("--flink-heap", help="The join JVM's heap (default: adstream's).")
    parser.add_argument("--gc-time-ratio", help="The join JVM's GCTimeRatio (default: adstream's).")
    args = parser.parse_args()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("ADSTREAM_")},
        "ADSTREAM_KAFKA_BOOTSTRAP_SERVERS": args.bootstrap_servers,
        "ADSTREAM_DATA_DIR": str(args.data_dir),
        "ADSTREAM_ATTRIBUTION_WINDOW": str(args.window_seconds),
    }
    if args.state_backend:
        env["ADSTREAM_JOIN_STATE_BACKEND"] = args.state_backend
    if args.flink_heap:
        env["ADSTREAM_FLINK_LOCAL_HEAP"] = args.flink_heap
    if args.gc_time_ratio:
        env["ADSTREAM_FLINK_LOCAL_GC_TIME_RATIO"] = args.gc_time_ratio
    for command in ("join", "enrich"):
        print(f"adstream {command} --bounded", file=sys.stderr, flush=True)
        done = subprocess.run([ADSTREAM, command, "--bounded"], env=env, check=False)
        if done.returncode != 0:
            print(f"adstream {command} --bounded failed ({done.returncode})", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
