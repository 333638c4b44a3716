#!/usr/bin/env bash
# System packages the test suite uses: Chromium (the TensorBoard dashboard test) and PostgreSQL
# (the server-storage tests). Installed with apt-get when missing and we are root; otherwise the
# tests that need them are skipped with a message.
set -euo pipefail
missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
if [[ ${#missing[@]} -eq 0 ]]; then
    exit 0
fi
if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
    echo "Installing system packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${missing[@]}" >/dev/null
else
    echo "Not installing ${missing[*]} (needs root and apt-get): the tests that use them skip."
fi
