#!/usr/bin/env bash
# Runs the conformance suite (Tests/conformance): the official TigerBeetle Python client
# (tigerbeetle==0.17.9 from PyPI, in the venv .build/conformance-venv) against real `ledger`
# processes. Builds the release server unless LEDGER_BIN names a directory that has `ledger` and
# `ledger-format`. Extra arguments go to pytest, e.g. `scripts/conformance.sh -k two_phase -x`.
# Environment: LEDGER_BIN, LEDGER_DEVELOPMENT (default 1), LEDGER_TEST_DIR, LEDGER_TEST_TIMEOUT,
# LEDGER_CRASH_ROUNDS, LEDGER_CRASH_SEED (see Tests/conformance/conftest.py).
set -euo pipefail
cd "$(dirname "$0")/.."

source ./scripts/python-client-setup.sh

# Bytecode and the pytest cache go under .build (ignored by git), not into the source tree.
export PYTHONDONTWRITEBYTECODE=1
status=0
"$venv/bin/python" -m pytest -q -o cache_dir=.build/pytest-cache Tests/conformance "$@" || status=$?
if [ "$status" -eq 134 ] || [ "$status" -eq 7 ]; then
    # libtb_client aborts its host process when a reply breaks one of its invariants (wire spec
    # section 11): the Python traceback above (faulthandler) names the test that was running.
    echo "conformance: the official client aborted the test process (status $status): a reply" \
         "broke a client invariant (wire spec section 11)" >&2
fi
exit "$status"
