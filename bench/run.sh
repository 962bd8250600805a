#!/usr/bin/env bash
# One command for all the benchmarks: bench/run.sh [--only http|lifecycle|memory|images] ...
# Creates the project's virtualenv if missing (make's own recipe), then runs `python -m bench`,
# which installs wrk, Prism, WireMock and matplotlib on first use.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
    make .venv/.installed
fi
exec .venv/bin/python -m bench "$@"
