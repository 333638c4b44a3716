#!/usr/bin/env bash
# Install system packages (when root) and everything into ./.venv, then lint (ruff), type-check (mypy) and run the test suite.
# Extra arguments go to pytest, e.g. `scripts/test.sh -k study -x`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/system-deps.sh
scripts/install.sh dev
export TF_CPP_MIN_LOG_LEVEL=2 TF_ENABLE_ONEDNN_OPTS=0
.venv/bin/ruff check src tests examples benchmarks scripts
.venv/bin/mypy
.venv/bin/pytest "$@"
