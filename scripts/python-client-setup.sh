# Sourced by conformance.sh and client-benchmark.sh (from the repository root): the venv with
# the official client (`venv`, .build/conformance-venv, tigerbeetle==0.17.9 and pytest from
# Tests/conformance/requirements.txt) and the release server binaries (`LEDGER_BIN`: built
# unless already set to a directory holding `ledger` and `ledger-format`).

venv=.build/conformance-venv

# Debian/Ubuntu ship `python3 -m venv` in a separate package (python3-venv: it provides ensurepip).
if ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
    sudo_cmd=""
    [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
    $sudo_cmd apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq python3-venv
fi

if [ ! -x "$venv/bin/python" ]; then
    mkdir -p .build
    python3 -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    -r Tests/conformance/requirements.txt

if [ -z "${LEDGER_BIN:-}" ]; then
    ./scripts/install-dependencies.sh
    # One product per invocation: `swift build` takes a single --product.
    swift build -c release --product ledger
    swift build -c release --product ledger-format
    LEDGER_BIN="$(swift build -c release --show-bin-path)"
fi
export LEDGER_BIN
