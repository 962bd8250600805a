"""`python -m bench` (or `bench/run.sh`): run the benchmarks, write `bench/results.md` and
`bench/results.png` (raw figures in `bench/.work/results.json`).

Installs what it needs on first use: wrk (apt), Prism 5 and WireMock 3 (npm, into
`bench/.node/`), matplotlib (pip, into this virtualenv). Sends traffic only to 127.0.0.1.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from datetime import UTC, datetime
from typing import Any

from .tooling import BENCH, WORK, ensure_node_packages, ensure_python_package, ensure_wrk

SECTIONS = ("http", "lifecycle", "memory", "images")
_MEMORY_SIZES = (10_000, 100_000, 1_000_000)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bench/run.sh", description=__doc__)
    parser.add_argument("--only", action="append", choices=SECTIONS, help="run only these")
    parser.add_argument("--seconds", type=float, default=10.0, help="each wrk measurement")
    parser.add_argument("--warmup", type=float, default=3.0, help="each wrk warm-up")
    parser.add_argument(
        "--rounds", type=int, default=3, help="rounds of the HTTP comparison (medians shown)"
    )
    parser.add_argument("--tasks", type=int, default=10_000, help="tasks in the lifecycle run")
    parser.add_argument(
        "--memory-limit", type=float, default=150.0, help="seconds allowed per memory size"
    )
    return parser


def _run(sections: list[str], args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {}
    if "http" in sections:
        from .http_bench import HttpOptions, run_http

        options = HttpOptions(seconds=args.seconds, warmup=args.warmup, rounds=args.rounds)
        results["http"] = run_http(options)
    if "lifecycle" in sections:
        from .lifecycle import run_lifecycle

        print(f"[bench] lifecycle of {args.tasks:,} tasks", flush=True)
        results["lifecycle"] = run_lifecycle(args.tasks)
    if "memory" in sections:
        from .memory import memory_per_task, state_file_per_task

        sizes = []
        for count in _MEMORY_SIZES:
            print(f"[bench] memory: {count:,} tasks", flush=True)
            sizes.append(memory_per_task(count, args.memory_limit))
        print("[bench] memory: --state file", flush=True)
        state = state_file_per_task()
        results["memory"] = {"limit_s": args.memory_limit, "sizes": sizes, "state": state}
    if "images" in sections:
        from .images import run_images

        results["images"] = run_images(seconds=min(args.seconds, 8.0))
    return results


def main() -> None:
    args = _parser().parse_args()
    sections = args.only or list(SECTIONS)
    ensure_wrk()
    ensure_python_package("matplotlib")
    if "http" in sections:
        ensure_node_packages()
    WORK.mkdir(parents=True, exist_ok=True)
    started, clock = datetime.now(UTC), time.monotonic()
    results = _run(sections, args)
    results["elapsed_s"] = time.monotonic() - clock
    (WORK / "results.json").write_text(json.dumps(results, indent=2))
    from .report import render_markdown, write_chart

    command = "bench/run.sh" + "".join(" " + shlex.quote(a) for a in sys.argv[1:])
    (BENCH / "results.md").write_text(render_markdown(results, started, command))
    write_chart(results, BENCH / "results.png")
    print(
        f"[bench] done in {results['elapsed_s']:.0f} s: {BENCH / 'results.md'}, "
        f"{BENCH / 'results.png'} (raw: {WORK / 'results.json'})",
        flush=True,
    )


if __name__ == "__main__":
    main()
