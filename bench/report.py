"""The results as `bench/results.md` (tables, targets met or missed) and `bench/results.png`."""

from __future__ import annotations

import os
import platform
import statistics
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

__all__ = ["evaluate", "http_rows", "render_markdown", "write_chart"]

_BARE = "bare Starlette"
_FAKE = "hiapi-mock"
_POST, _GET = "POST /v1/tasks", "GET /v1/tasks/{id}"
_KIB = 1024


def http_rows(http: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per (target, endpoint): medians over the rounds, and ratios to bare Starlette."""
    measured = http["measurements"]
    keys = list(dict.fromkeys((m["target"], m["endpoint"]) for m in measured))
    rows = []
    for target, endpoint in keys:
        runs = [m for m in measured if (m["target"], m["endpoint"]) == (target, endpoint)]
        row = {"target": target, "endpoint": endpoint, "rounds": len(runs)}
        for field in ("rps", "p50_ms", "p99_ms", "server_cpu_us_per_request", "others_cores"):
            row[field] = statistics.median(run[field] for run in runs)
        row["non2xx"] = sum(run["non2xx"] + run["socket_errors"] for run in runs)
        rows.append(row)
    for row in rows:
        bare = next(r for r in rows if r["target"] == _BARE and r["endpoint"] == row["endpoint"])
        for field in ("rps", "p50_ms", "p99_ms"):
            row[f"{field}_vs_bare"] = row[field] / bare[field] if bare[field] else 0.0
    return rows


def _row(rows: list[dict[str, Any]], target: str, endpoint: str) -> dict[str, Any] | None:
    return next((r for r in rows if r["target"] == target and r["endpoint"] == endpoint), None)


def evaluate(results: dict[str, Any]) -> list[tuple[str, str, bool | None]]:
    """(target, what was measured, met?) for every target of the issue; None: not measured."""
    found: list[tuple[str, str, bool | None]] = []
    if "http" in results:
        rows = http_rows(results["http"])
        for endpoint, share in ((_POST, 0.60), (_GET, 0.70)):
            fake = _row(rows, _FAKE, endpoint)
            prism = _row(rows, "Prism 5", endpoint)
            wiremock = _row(rows, "WireMock 3", endpoint)
            if fake is None:
                continue
            verb = endpoint.split()[0]
            found.append((
                f"{verb} ≥ {share:.0%} of bare Starlette's req/s",
                f"{fake['rps_vs_bare']:.0%} ({fake['rps']:,.0f} req/s)",
                fake["rps_vs_bare"] >= share,
            ))  # fmt: skip
            if prism:
                times = fake["rps"] / prism["rps"]
                found.append((f"{verb} ≥ 4x Prism's req/s", f"{times:.1f}x", times >= 4))
            if wiremock:
                times = fake["rps"] / wiremock["rps"]
                found.append((f"{verb} ≥ WireMock's req/s", f"{times:.2f}x", times >= 1))
            found.append((
                f"{verb} p99 < 10 ms at 32 connections",
                f"{fake['p99_ms']:.1f} ms",
                fake["p99_ms"] < 10,
            ))  # fmt: skip
    if "lifecycle" in results:
        life = results["lifecycle"]
        found.append((
            f"{life['tasks']:,} tasks through the lifecycle with callbacks < 5 s",
            f"{life['total_s']:.2f} s",
            life["total_s"] < 5 and life["delivered"] == life["tasks"],
        ))  # fmt: skip
        found.append((
            "≥ 2,000 callbacks/s to a local receiver",
            f"{life['callbacks_per_s']:,.0f}/s",
            life["callbacks_per_s"] >= 2000,
        ))  # fmt: skip
    if "memory" in results:
        for run in results["memory"]["sizes"]:
            found.append((
                f"≤ 2 KiB resident memory per task ({run['tasks']:,} tasks)",
                f"{run['bytes_per_task'] / _KIB:.2f} KiB",
                run["bytes_per_task"] <= 2 * _KIB,
            ))  # fmt: skip
    if "images" in results:
        four = next(r for r in results["images"]["ttfb"] if r["resolution"] == "4K")
        found.append((
            "4K first byte < 300 ms, first download",
            f"{four['first_median_ms']:.0f} ms",
            four["first_median_ms"] < 300,
        ))  # fmt: skip
        found.append((
            "4K first byte < 20 ms, cached",
            f"{four['cached_median_ms']:.2f} ms",
            four["cached_median_ms"] < 20,
        ))  # fmt: skip
        for run in results["images"]["concurrent"]:
            slow = _slowdown(run)
            found.append((
                f"4K first downloads slow concurrent GETs ≤ 20% ({run['connections']} conn.)",
                f"{slow:+.0%} (worse of req/s and p50)",
                slow <= 0.20,
            ))  # fmt: skip
    return found


def _slowdown(run: dict[str, Any]) -> float:
    alone, busy = run["alone"], run["with_4k"]
    fewer = 1 - busy["rps"] / alone["rps"] if alone["rps"] else 0.0
    slower = busy["p50_ms"] / alone["p50_ms"] - 1 if alone["p50_ms"] else 0.0
    return max(fewer, slower)


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def _mark(met: bool | None) -> str:
    return "n/a" if met is None else ("met" if met else "**missed**")


def render_markdown(results: dict[str, Any], started: datetime, command: str) -> str:
    lines = [
        "# hiapi-mock benchmarks",
        "",
        f"Run {started.astimezone(UTC):%Y-%m-%d %H:%M} UTC with `{command}` on "
        f"`nproc` = {os.cpu_count()} ({_cpu_model()}), Linux {platform.release()}.",
        "Every ratio compares two figures measured in this same run. Benchmarks are not tests:",
        "nothing fails on a time. Re-run to refresh; absolute figures drift between machines.",
        "Where a target is missed: [profile.md](profile.md), what the profiles showed, what was",
        "changed, and before/after figures of each change.",
        "",
        "## Targets",
        "",
        "| target | measured | |",
        "|---|---|---|",
    ]
    lines += [f"| {name} | {value} | {_mark(met)} |" for name, value, met in evaluate(results)]
    sections: list[tuple[str, Callable[[Any], list[str]]]] = [
        ("http", _http_section),
        ("lifecycle", _lifecycle_section),
        ("memory", _memory_section),
        ("images", _images_section),
    ]
    for key, section in sections:
        if key in results:
            lines += ["", *section(results[key])]
    return "\n".join(lines) + "\n"


def _http_section(http: dict[str, Any]) -> list[str]:
    stack, options = http["stack"], http["options"]
    rows = http_rows(http)
    others = statistics.mean(r["others_cores"] for r in rows)
    lines = [
        "## HTTP throughput and latency",
        "",
        f"wrk ({stack['wrk']}) `-t{options['threads']} -c{options['connections']}`, the same "
        f"body and key for every target, a {options['warmup']:g} s warm-up then "
        f"{options['seconds']:g} s measured per endpoint, {options['rounds']} round(s) in "
        "alternating order (medians shown); targets run one at a time on 127.0.0.1.",
        f"Python {stack['python']}, uvicorn {stack['uvicorn']}, Starlette {stack['starlette']}.",
        "- **hiapi-mock**: `hiapi-mock serve` in its default configuration (profile `fast`, real",
        "  clock; validation, state, journal and rate-limit headers on). Its CLI serves with",
        '  `uvicorn.Server(uvicorn_config(app, host, port, log_level="info"))`: the guarded',
        f"  {stack['http']} protocol, the loop left at `auto`, which picks {stack['loop']}; the",
        "  access log is on. One API key for all the load: the `fast` profile counts requests",
        "  per key and sends `X-RateLimit-*` but enforces no limit, so no request is refused.",
        "- **bare Starlette** (`bench/bare_app.py`): two routes answering the fake's own bytes",
        "  as constants (the POST route reads the body), served by the very same call.",
        f"- **Prism** {stack['prism']}: `prism mock -v silent openapi.yaml` (logging off, the",
        "  kindest setting for it; with a callback in the spec Prism also tries to call it).",
        f"- **WireMock** {stack['wiremock']}: `--disable-request-logging --no-request-journal`,",
        "  two stubs answering the fake's bytes.",
        "",
        "| target | endpoint | req/s | p50 ms | p99 ms | req/s ÷ bare | p50 ÷ bare "
        "| p99 ÷ bare | server CPU µs/req | errors |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['target']} | `{r['endpoint']}` | {r['rps']:,.0f} | {r['p50_ms']:.2f} "
            f"| {r['p99_ms']:.2f} | {r['rps_vs_bare']:.2f} | {r['p50_ms_vs_bare']:.2f} "
            f"| {r['p99_ms_vs_bare']:.2f} | {r['server_cpu_us_per_request']:,.0f} | {r['non2xx']} |"
        )
    lines += [
        "",
        f"Other people's processes kept on average {others:.2f} of the {os.cpu_count()} cores",
        "busy during these measurements (CPU time of the machine minus the server's and wrk's):",
        "throughput is noisy to that extent; server CPU µs per request is the steadier figure.",
    ]
    return lines


def _lifecycle_section(life: dict[str, Any]) -> list[str]:
    return [
        "## Lifecycle under the manual clock",
        "",
        f"{life['tasks']:,} tasks, each with `callback.url`, created **in-process** (each create",
        "and poll is one call of the fake's ASGI app: every middleware and route, no sockets),",
        "the manual clock advanced past every task's end, every task polled once, every",
        "callback delivered over HTTP to the project's `CallbackReceiver` in another process.",
        "",
        "| tasks | terminal when polled | callbacks delivered | received | create s | poll s "
        "| callbacks done after advance s | total s | tasks/s | callbacks/s |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        f"| {life['tasks']:,} | {life['terminal']:,} | {life['delivered']:,} "
        f"| {life['received']:,} | {life['create_s']:.2f} | {life['poll_s']:.2f} "
        f"| {life['callbacks_s']:.2f} | {life['total_s']:.2f} | {life['tasks_per_s']:,.0f} "
        f"| {life['callbacks_per_s']:,.0f} |",
        "",
        "tasks/s = tasks ÷ total; callbacks/s = callbacks ÷ time from the clock's advance to the",
        "last delivery (polling runs meanwhile, on another thread of the same process).",
    ]


def _memory_section(memory: dict[str, Any]) -> list[str]:
    lines = [
        "## Memory",
        "",
        "Tasks created through `Backend.create` (Python API, no HTTP) in a fresh process per",
        "size; RSS after minus RSS before, divided by the tasks held. Each size is bounded in",
        f"time ({memory['limit_s']:g} s); a size cut short says so.",
        "",
        "| tasks asked | tasks held | seconds | RSS before MiB | RSS after MiB | per task |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for run in memory["sizes"]:
        cut = "" if run["complete"] else " (cut short by the time bound)"
        lines.append(
            f"| {run['asked']:,} | {run['tasks']:,}{cut} | {run['seconds']:.1f} "
            f"| {run['rss_before'] / 2**20:.0f} | {run['rss_after'] / 2**20:.0f} "
            f"| {run['bytes_per_task']:,.0f} B ({run['bytes_per_task'] / _KIB:.2f} KiB) |"
        )
    state = memory["state"]
    lines.append("")
    if state.get("available"):
        lines.append(
            f"With `--state`: {state['tasks']:,} tasks (wrk POSTs for a few seconds at "
            f"{state['post_rps']:,.0f} req/s) took {state['bytes_while_serving']:,} bytes "
            f"of state file(s) while serving ({state['bytes_per_task']:,.0f} B per task) and "
            f"{state['bytes_after_stop']:,} bytes after the server stopped "
            f"({state['bytes_per_task_after_stop']:,.0f} B per task)."
        )
    else:
        lines.append(f"File size per task with `--state`: not measured: {state['reason']}.")
    return lines


def _images_section(images: dict[str, Any]) -> list[str]:
    lines = [
        "## Images",
        "",
        "Time to first byte over a connection made beforehand, from `hiapi-mock serve`",
        "(default configuration); first download = a task never downloaded before (rendered),",
        "cached = the same file again (median of 5).",
        "",
        "| resolution (1:1, png) | bytes | first download ms (median; each) | cached ms |",
        "|---|---:|---:|---:|",
    ]
    for row in images["ttfb"]:
        each = ", ".join(f"{t:.0f}" for t in row["first_ms"])
        lines.append(
            f"| {row['resolution']} | {row['bytes']:,} | {row['first_median_ms']:.1f} ({each}) "
            f"| {row['cached_median_ms']:.2f} |"
        )
    lines += [
        "",
        "`GET /v1/tasks/{id}` under wrk, alone and while a client downloads 4K outputs of fresh",
        "tasks back to back (each a render):",
        "",
        "| connections | req/s alone → with 4K | p50 ms alone → with | p99 ms alone → with "
        "| 4K first downloads meanwhile (median ms each) |",
        "|---:|---:|---:|---:|---:|",
    ]
    for run in images["concurrent"]:
        a, b = run["alone"], run["with_4k"]
        each = run["render_download_median_ms"]
        lines.append(
            f"| {run['connections']} | {a['rps']:,.0f} → {b['rps']:,.0f} "
            f"| {a['p50_ms']:.2f} → {b['p50_ms']:.2f} | {a['p99_ms']:.2f} → {b['p99_ms']:.2f} "
            f"| {run['renders']} ({each:.0f} ms) |"
            if each is not None
            else f"| {run['connections']} | {a['rps']:,.0f} → {b['rps']:,.0f} | | | 0 |"
        )
    return lines


def write_chart(results: dict[str, Any], path: Path) -> None:
    """Four panels: req/s and p99 per target, memory per task, image time to first byte."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(2, 2, figsize=(13, 9))
    (rps_axis, p99_axis), (memory_axis, image_axis) = axes
    if "http" in results:
        rows = http_rows(results["http"])
        targets = list(dict.fromkeys(r["target"] for r in rows))
        width = 0.38
        for offset, endpoint in ((-width / 2, _POST), (width / 2, _GET)):
            mine = [_row(rows, t, endpoint) for t in targets]
            xs = [i + offset for i in range(len(targets))]
            rps_axis.bar(xs, [r["rps"] if r else 0 for r in mine], width, label=endpoint)
            p99_axis.bar(xs, [r["p99_ms"] if r else 0 for r in mine], width, label=endpoint)
        for axis, title in ((rps_axis, "requests/s (32 connections)"), (p99_axis, "p99 ms")):
            axis.set_xticks(range(len(targets)), targets)
            axis.set_title(title)
            axis.legend()
        p99_axis.set_yscale("log")
        p99_axis.axhline(10, color="grey", linestyle="--", linewidth=1)
    if "memory" in results:
        sizes = results["memory"]["sizes"]
        names = [f"{run['tasks']:,}" for run in sizes]
        memory_axis.bar(names, [run["bytes_per_task"] for run in sizes], color="tab:green")
        memory_axis.axhline(2 * _KIB, color="grey", linestyle="--", linewidth=1)
        memory_axis.set_title("resident bytes per task (dashed: 2 KiB target)")
    if "images" in results:
        ttfb = results["images"]["ttfb"]
        labels = [row["resolution"] for row in ttfb]
        xs = list(range(len(labels)))
        image_axis.bar([x - 0.2 for x in xs], [r["first_median_ms"] for r in ttfb], 0.4,
                       label="first download")  # fmt: skip
        image_axis.bar([x + 0.2 for x in xs], [r["cached_median_ms"] for r in ttfb], 0.4,
                       label="cached")  # fmt: skip
        image_axis.set_xticks(list(xs), labels)
        image_axis.set_yscale("log")
        image_axis.set_title("image time to first byte, ms")
        image_axis.legend()
    figure.suptitle(f"hiapi-mock benchmarks, {datetime.now(UTC):%Y-%m-%d}, nproc {os.cpu_count()}")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
