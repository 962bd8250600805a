"""The benchmark's own logic, without servers or timing: wrk scripts and summaries, ratios to the
baseline, and which targets a set of results meets."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.report import evaluate, http_rows, render_markdown
from bench.wrk import lua_script, parse_summary


def test_lua_script_escapes_quotes_backslashes_and_non_ascii() -> None:
    script = lua_script("POST", {"Authorization": 'Bearer "sk\\x'}, '{"p":"é"}')
    assert 'wrk.method = "POST"' in script
    assert r'wrk.headers["Authorization"] = "Bearer \034sk\092x"' in script
    assert r'wrk.body = "{\034p\034:\034\195\169\034}"' in script


def test_parse_summary_reads_the_line_done_prints() -> None:
    output = (
        "Running 10s test @ http://127.0.0.1:1/v1/tasks\n"
        'BENCH-SUMMARY {"requests":20000,"duration_us":10000000,"non2xx":3,"connect":0,'
        '"read":1,"write":0,"timeout":2,"p50":1500,"p90":2500,"p99":9000,"max":12000,'
        '"mean":1600.0}\n'
    )
    result = parse_summary(output)
    assert result.rps == 2000
    assert (result.p50_ms, result.p99_ms, result.non2xx, result.socket_errors) == (1.5, 9, 3, 3)


def _measurement(target: str, endpoint: str, rps: float, p99: float) -> dict[str, Any]:
    return {
        "target": target,
        "endpoint": endpoint,
        "rps": rps,
        "p50_ms": 1.0,
        "p99_ms": p99,
        "server_cpu_us_per_request": 100.0,
        "others_cores": 0.0,
        "non2xx": 0,
        "socket_errors": 0,
    }


def _results() -> dict[str, Any]:
    post, get = "POST /v1/tasks", "GET /v1/tasks/{id}"
    rows = [
        ("hiapi-mock", 6000, 12000),
        ("bare Starlette", 10000, 15000),
        ("Prism 5", 1000, 3000),
        ("WireMock 3", 5000, 20000),
    ]
    measurements = [
        _measurement(name, endpoint, rps, 5.0)
        for name, post_rps, get_rps in rows
        for endpoint, rps in ((post, post_rps), (get, get_rps))
    ]
    stack = dict.fromkeys(
        ("python", "uvicorn", "starlette", "loop", "http", "prism", "wiremock", "wrk"), "x"
    )
    options = {"seconds": 10, "warmup": 3, "connections": 32, "threads": 1, "rounds": 1}
    return {"http": {"options": options, "stack": stack, "measurements": measurements}}


def test_ratios_are_to_bare_starlette_of_the_same_endpoint() -> None:
    rows = http_rows(_results()["http"])
    fake_get = next(
        r for r in rows if r["target"] == "hiapi-mock" and r["endpoint"] == "GET /v1/tasks/{id}"
    )
    assert fake_get["rps_vs_bare"] == 12000 / 15000


def test_evaluate_marks_each_target_met_or_missed() -> None:
    verdicts = {name: met for name, _, met in evaluate(_results())}
    assert verdicts["POST ≥ 60% of bare Starlette's req/s"] is True
    assert verdicts["GET ≥ 70% of bare Starlette's req/s"] is True
    assert verdicts["POST ≥ 4x Prism's req/s"] is True
    assert verdicts["GET ≥ 4x Prism's req/s"] is True
    assert verdicts["GET ≥ WireMock's req/s"] is False


def test_the_report_lists_the_missed_targets() -> None:
    text = render_markdown(_results(), datetime(2026, 1, 1, tzinfo=UTC), "bench/run.sh")
    assert "| GET ≥ WireMock's req/s | 0.60x | **missed** |" in text
    assert "Run 2026-01-01 00:00 UTC with `bench/run.sh`" in text


def test_the_readme_table_is_the_recorded_run() -> None:
    """The README's benchmark table carries the figures of `bench/results.md`, row by row, so
    a re-run that refreshes one and not the other is caught."""
    root = Path(__file__).resolve().parents[2]
    recorded = (root / "bench" / "results.md").read_text(encoding="utf-8")
    readme = (root / "README.md").read_text(encoding="utf-8")
    run = re.search(r"Run (\d{4}-\d\d-\d\d \d\d:\d\d) UTC", recorded)
    assert run is not None and f"A run on {run.group(1)} UTC" in readme
    rows = re.findall(
        r"^\| ([^|]+) \| `(POST|GET) [^`]+` \| ([\d,]+) \| ([\d.]+) \| ([\d.]+) \| ([\d.]+) "
        r"\|[^|]+\|[^|]+\| ([\d,]+) \|",
        recorded,
        re.MULTILINE,
    )
    assert len(rows) == 8
    for target, method, rps, p50, p99, ratio, cpu in rows:
        assert f"| {target} | {method} | {rps} | {p50} | {p99} | {ratio} | {cpu} |" in readme
