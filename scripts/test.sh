#!/usr/bin/env bash
# Builds and runs every test (debug build, as CI does), then checks that the release build of
# the benchmark compiles. Installs missing system packages first.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-dependencies.sh
swift build --build-tests
swift test --skip-build
swift build -c release --product ledger-benchmark
