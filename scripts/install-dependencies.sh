#!/usr/bin/env bash
# Installs the system packages Ledger builds against, if they are missing (Debian/Ubuntu).
set -euo pipefail
need=()
dpkg -s liburing-dev >/dev/null 2>&1 || need+=(liburing-dev)
dpkg -s pkg-config >/dev/null 2>&1 || need+=(pkg-config)
if [ ${#need[@]} -gt 0 ]; then
    sudo_cmd=""
    [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
    $sudo_cmd apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${need[@]}"
fi
command -v swift >/dev/null || { echo "swift 6.1 or newer is required (https://swift.org/install)" >&2; exit 1; }
