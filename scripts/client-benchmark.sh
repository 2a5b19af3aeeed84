#!/usr/bin/env bash
# The end-to-end benchmark of the issue with the official TigerBeetle client (tigerbeetle==0.17.9
# from PyPI): formats a fresh data file in ${LEDGER_BENCH_DIR:-.build/client-benchmark}, starts the
# release server, creates 10 000 accounts, then 1 000 000 transfers in batches of 8189, then
# 20 000 single-transfer requests, and prints transfers/s, latency p50/p99/max per request and the
# server's RSS after each phase; then stops the server and deletes the file.
# Builds the release server unless LEDGER_BIN is set. LEDGER_DEVELOPMENT=1 passes --development
# (no O_DIRECT: tmpfs, overlayfs; such a server may accept only 253 events per request: then pass
# --batch 253). Extra arguments go to Tools/client-benchmark/benchmark.py (--transfers N, ...).
set -euo pipefail
cd "$(dirname "$0")/.."

source ./scripts/python-client-setup.sh

development=()
[ "${LEDGER_DEVELOPMENT:-0}" = "1" ] && development=(--development)

export PYTHONDONTWRITEBYTECODE=1
exec "$venv/bin/python" Tools/client-benchmark/benchmark.py --bin "$LEDGER_BIN" \
    --dir "${LEDGER_BENCH_DIR:-.build/client-benchmark}" "${development[@]}" "$@"
