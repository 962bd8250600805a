"""Before/after for a prototype: the fake of this checkout against the fake of another source
tree (a scratch copy of the project with a change in `mock_server/`), with bare Starlette as
the baseline, in interleaved rounds (A, B, bare; then bare, B, A; ...), on the same wrk settings
as the main benchmark; optionally the lifecycle benchmark too.

    python -m bench.ab /tmp/scratch [--rounds 2] [--seconds 8] [--lifecycle 10000]

The other tree needs `mock_server/` and `openapi.yaml`; it is run with itself as the working
directory (so its `mock_server` is the one imported), and this checkout's `bench` on PYTHONPATH.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

from .http_bench import ENDPOINTS, HttpOptions, _fake_bodies, _measure
from .servers import free_port, python_command, running
from .tooling import ROOT, WORK, ensure_wrk

__all__ = ["main"]


def _serve(tree: Path, port: int) -> list[str]:
    return python_command("-m", "mock_server.cli", "serve", "--port", str(port))


def _round(
    variants: dict[str, Path], order: list[str], options: HttpOptions
) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for name in order:
        port = free_port()
        if name == "bare Starlette":
            bodies = WORK / "bodies.json"
            command = python_command(
                "-m", "bench.bare_app", "--port", str(port), "--bodies", str(bodies)
            )
            with running("ab-bare", command, port) as server:
                found += [m.to_json() for m in _measure(name, server, "tk-x", options)]
            continue
        with running(
            f"ab-{len(found)}", _serve(variants[name], port), port, variants[name]
        ) as server:
            task_id, post, get = _fake_bodies(server.url)
            (WORK / "bodies.json").write_text(
                json.dumps({"post": post.decode(), "get": get.decode()})
            )
            found += [m.to_json() for m in _measure(name, server, task_id, options)]
    return found


def _lifecycle(tree: Path, count: int) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "bench.lifecycle", str(count)],
        cwd=tree, env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.ab", description=__doc__)
    parser.add_argument("tree", type=Path, help="the other source tree (with mock_server/)")
    parser.add_argument("--before", type=Path, default=ROOT, help="default: this checkout")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--lifecycle", type=int, default=0, metavar="N", help="also N tasks")
    args = parser.parse_args()
    ensure_wrk()
    WORK.mkdir(parents=True, exist_ok=True)
    variants = {
        f"before ({args.before})": args.before.resolve(),
        f"after ({args.tree})": args.tree.resolve(),
    }
    names = [*variants, "bare Starlette"]
    options = HttpOptions(seconds=args.seconds, warmup=args.warmup)
    rows: list[dict[str, Any]] = []
    lifecycles: dict[str, list[dict[str, Any]]] = {name: [] for name in variants}
    for number in range(args.rounds):
        order = names if number % 2 == 0 else names[::-1]
        rows += _round(variants, order, options)
        for name in order if args.lifecycle else []:
            if name in variants:
                lifecycles[name].append(_lifecycle(variants[name], args.lifecycle))
    _report(rows, names, lifecycles)


def _median(rows: list[dict[str, Any]], key: str) -> float:
    return float(statistics.median(row[key] for row in rows))


def _report(
    rows: list[dict[str, Any]], names: list[str], lifecycles: dict[str, list[dict[str, Any]]]
) -> None:
    print("\n| variant | endpoint | req/s | p50 ms | p99 ms | server µs CPU/req | ÷ bare req/s |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for endpoint in ENDPOINTS:
        bare = [r for r in rows if r["target"] == "bare Starlette" and r["endpoint"] == endpoint]
        for name in names:
            mine = [r for r in rows if r["target"] == name and r["endpoint"] == endpoint]
            rps, p50, p99 = (_median(mine, k) for k in ("rps", "p50_ms", "p99_ms"))
            cpu = _median(mine, "server_cpu_us_per_request")
            ratio = rps / _median(bare, "rps")
            print(
                f"| {name} | {endpoint} | {rps:,.0f} | {p50:.2f} | {p99:.2f} | {cpu:.0f} "
                f"| {ratio:.0%} |"
            )
    for name, runs in lifecycles.items():
        for run in runs:
            print(
                f"lifecycle {name}: total {run['total_s']:.2f} s (create {run['create_s']:.2f}, "
                f"poll {run['poll_s']:.2f}), {run['callbacks_per_s']:,.0f} callbacks/s"
            )


if __name__ == "__main__":
    main()
