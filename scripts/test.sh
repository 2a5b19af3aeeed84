#!/usr/bin/env bash
# Builds and runs every test: the Swift suites (debug build, as CI does), then the conformance
# suite — the official TigerBeetle Python client (tigerbeetle==0.17.9 from PyPI) against real
# `ledger` server processes (release build) — and checks that the release benchmark compiles.
# Installs missing system packages (liburing-dev, pkg-config, python3-venv) first.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-dependencies.sh
swift build --build-tests
swift test --skip-build
./scripts/conformance.sh
swift build -c release --product ledger-benchmark
