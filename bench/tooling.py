"""What the benchmarks need besides the project: wrk, Prism, WireMock, matplotlib.

Each is installed on first use, and only then: wrk from Debian's packages (apt), the two peers
from npm into `bench/.node/` (ignored by git), matplotlib (and, for `--profile`, py-spy) into the
virtualenv that runs the bench. Nothing is added to `pyproject.toml`.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

__all__ = [
    "BENCH",
    "NODE",
    "NODE_PACKAGES",
    "ROOT",
    "WORK",
    "ensure_node_packages",
    "ensure_python_package",
    "ensure_wrk",
    "node_bin",
    "node_package_version",
]

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
NODE = BENCH / ".node"
WORK = BENCH / ".work"

#: The peers, pinned to the major versions the comparison is about.
NODE_PACKAGES = {"@stoplight/prism-cli": "5", "wiremock": "3"}


def _say(message: str) -> None:
    print(f"[bench] {message}", flush=True)


def ensure_wrk() -> str:
    """The path of `wrk`, installed with apt-get when missing."""
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() != 0:
        raise SystemExit("wrk is missing: install it (apt-get install wrk) and run again")
    _say("installing wrk with apt-get")
    subprocess.run(["apt-get", "update", "-qq"], check=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True, env=env)
    found = shutil.which("wrk")
    if not found:
        raise SystemExit("apt-get installed wrk, but it is not on PATH")
    return found


def node_bin(name: str) -> Path:
    return NODE / "node_modules" / ".bin" / name


def ensure_node_packages() -> None:
    """Prism and WireMock in `bench/.node/`, from npm, when missing."""
    if node_bin("prism").exists() and node_bin("wiremock").exists():
        return
    if not shutil.which("npm"):
        raise SystemExit("npm is missing: the Prism and WireMock peers need Node.js and npm")
    NODE.mkdir(parents=True, exist_ok=True)
    manifest = NODE / "package.json"
    if not manifest.exists():
        manifest.write_text(json.dumps({"private": True, "name": "hiapi-mock-bench-peers"}))
    specs = [f"{name}@{major}" for name, major in NODE_PACKAGES.items()]
    _say(f"installing {', '.join(specs)} into {NODE.relative_to(ROOT)}")
    subprocess.run(
        ["npm", "install", "--no-audit", "--no-fund", "--loglevel=error", *specs],
        cwd=NODE,
        check=True,
    )


def node_package_version(name: str) -> str:
    manifest = NODE / "node_modules" / name / "package.json"
    try:
        version: str = json.loads(manifest.read_text())["version"]
    except (OSError, ValueError, KeyError):
        return "?"
    return version


def ensure_python_package(module: str, requirement: str | None = None) -> None:
    """`module` importable in this interpreter, pip-installing `requirement` when it is not."""
    if importlib.util.find_spec(module) is not None:
        return
    _say(f"installing {requirement or module} into {sys.prefix}")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", requirement or module], check=True
    )
    importlib.invalidate_caches()
