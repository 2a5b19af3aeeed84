#!/usr/bin/env bash
# The main job on a fresh machine: installs what is missing, builds the server in release,
# formats a data file on first run, and serves a single-replica cluster on 127.0.0.1:3000
# until Ctrl-C.
#
#   ./scripts/run.sh                 # data file ./data/0_0.ledger, cluster 0, port 3000
#   LEDGER_DATA=/var/lib/ledger/0_0.ledger LEDGER_ADDRESS=0.0.0.0:3000 ./scripts/run.sh
#   LEDGER_DEVELOPMENT=1 ./scripts/run.sh   # a filesystem without O_DIRECT (tmpfs, overlay)
#
# Extra arguments go to `ledger start` (e.g. --cache-grid=512MiB).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-dependencies.sh
swift build -c release --product ledger
swift build -c release --product ledger-format
bin="$(swift build -c release --show-bin-path)"

data="${LEDGER_DATA:-./data/0_0.ledger}"
address="${LEDGER_ADDRESS:-127.0.0.1:3000}"
cluster="${LEDGER_CLUSTER:-0}"
development=()
[ "${LEDGER_DEVELOPMENT:-0}" = "1" ] && development=(--development)

if [ ! -e "$data" ]; then
    mkdir -p "$(dirname "$data")"
    "$bin/ledger-format" --cluster="$cluster" --replica=0 --replica-count=1 "${development[@]}" "$data"
fi
exec "$bin/ledger" start --addresses="$address" "${development[@]}" "$@" "$data"
