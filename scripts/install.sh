#!/usr/bin/env bash
# Create ./.venv (if missing) and install hpo_plugins with the extras named in $1 (default: all),
# using the pins in constraints.txt so that torch stays on its CPU build.
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-all}"
python="${PYTHON:-python3}"
if [[ ! -x .venv/bin/python ]]; then
    "$python" -m venv .venv
fi
if [[ "$extras" == "core" ]]; then
    .venv/bin/python -m pip install --quiet -c constraints.txt -e .
else
    .venv/bin/python -m pip install --quiet -c constraints.txt -e ".[$extras]"
fi
