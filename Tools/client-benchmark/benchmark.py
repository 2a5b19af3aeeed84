"""End-to-end benchmark with the official TigerBeetle client (libtb_client from the PyPI package
tigerbeetle==0.17.9) against a release `ledger` server on loopback.

Phases (the issue's benchmark): 10 000 accounts; then 1 000 000 transfers in batches of 8189 from
one client; then 20 000 requests of a single transfer. For each phase it prints the rate, the
latency per request (p50 / p99 / max) and the server's RSS (VmRSS and VmHWM from
/proc/<pid>/status) after the phase.

Usage: benchmark.py --bin DIR [--dir DIR] [--accounts N] [--transfers N] [--batch N]
                    [--singles N] [--development] [--seed N]
(scripts/client-benchmark.sh builds the server, prepares the venv and passes the defaults.)

Python client limits, and what is done about them:
* The Python wrapper (tigerbeetle.ClientSync) converts every event to a ctypes struct on submit
  (~5–10 µs each: ~60 ms for 8189 transfers) and every result to a dataclass on completion, all
  inside the call. That would measure Python, not the server. So this benchmark drives
  libtb_client through the wrapper's own ctypes bindings (tb_client_init / tb_client_submit /
  tb_client_deinit) with request bodies built up front (not timed) as raw 128-byte records, and a
  completion callback that only copies the reply bytes; results are checked after the timer stops.
* What remains per request: a ctypes call into the client, a hand-off to the client's IO thread,
  and a Python callback (needs the GIL) plus an Event wake-up, roughly 50–150 µs. That floor
  dominates the single-transfer phase: its latency is client + loopback + server, and one client
  has at most one request in flight, so 20 000 single requests measure round trips, not server
  throughput.
* One client packs at most one request at a time (8189 transfers). Throughput of the batched phase
  is therefore bounded by the server's per-request latency, which is what the issue asks for.
"""

from __future__ import annotations

import argparse
import ctypes
import math
import os
import random
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from array import array
from pathlib import Path

from tigerbeetle import bindings
from tigerbeetle.lib import c_uint128

OPERATION_LOOKUP_ACCOUNTS = 140
OPERATION_CREATE_ACCOUNTS = 146
OPERATION_CREATE_TRANSFERS = 147
STATUS_CREATED = 0xFFFFFFFF
PACKET_OK = 0
PACKET_TOO_MUCH_DATA = 1
REPLY_BYTES_MAX = 1 << 20
READY_TIMEOUT_S = 60.0

# Account and Transfer, 128 bytes each (wire spec 9.1, 9.2); u128 = two little-endian u64 halves.
ACCOUNT = struct.Struct("<QQ QQ QQ QQ QQ QQ Q I I I H H Q")
TRANSFER = struct.Struct("<QQ QQ QQ QQ QQ QQ Q I I I H H Q")
assert ACCOUNT.size == 128 and TRANSFER.size == 128


class RawClient:
    """One libtb_client instance; submit() blocks until the reply and returns its bytes' length."""

    def __init__(self, port: int):
        self.client = bindings.CClient()
        self.done = threading.Event()
        self.reply = (ctypes.c_uint8 * REPLY_BYTES_MAX)()
        self.reply_size = 0
        self.packet_status = PACKET_OK
        self.callback = bindings.OnCompletion(self.on_completion)  # keep the thunk alive
        cluster = c_uint128.from_param(0)
        address = str(port).encode()
        status = bindings.tb_client_init(
            ctypes.byref(self.client),
            ctypes.cast(ctypes.byref(cluster), ctypes.POINTER(ctypes.c_uint8 * 16)),
            address, len(address), 1, self.callback)
        if status != bindings.InitStatus.SUCCESS:
            raise RuntimeError(f"tb_client_init failed: {status}")

    def on_completion(self, context, packet, timestamp, data, size):  # client IO thread
        self.packet_status = packet[0].status
        if self.packet_status == PACKET_OK and size > 0:
            ctypes.memmove(self.reply, data, size)
        self.reply_size = size
        self.done.set()

    def submit(self, operation: int, body, body_size: int) -> int:
        packet = bindings.CPacket()
        packet.user_data = None
        packet.data = ctypes.cast(body, ctypes.c_void_p)
        packet.data_size = body_size
        packet.user_tag = 0
        packet.operation = operation
        packet.status = PACKET_OK
        self.done.clear()
        if bindings.tb_client_submit(ctypes.byref(self.client), ctypes.byref(packet)) != \
                bindings.ClientStatus.OK:
            raise RuntimeError("tb_client_submit: client closed")
        self.done.wait()
        if self.packet_status == PACKET_TOO_MUCH_DATA:
            raise RuntimeError("the client refused the batch as too large for the server's "
                               "batch_size_limit (a --development server accepts 253 "
                               "events per request; pass --batch 253)")
        if self.packet_status != PACKET_OK:
            raise RuntimeError(f"request failed with packet status {self.packet_status}")
        return self.reply_size

    def reply_bytes(self, size: int) -> bytes:
        return ctypes.string_at(self.reply, size)

    def close(self) -> None:
        bindings.tb_client_deinit(ctypes.byref(self.client))


class Server:
    def __init__(self, bin_dir: Path, data_dir: Path, development: bool):
        self.ledger = bin_dir / "ledger"
        self.ledger_format = bin_dir / "ledger-format"
        for binary in (self.ledger, self.ledger_format):
            if not os.access(binary, os.X_OK):
                sys.exit(f"client-benchmark: {binary} not found: build it with `swift build -c "
                         "release --product ledger` / `--product ledger-format`, or set LEDGER_BIN")
        self.data_dir = data_dir
        self.path = data_dir / "0_0.ledger"
        self.log_path = data_dir / "server.log"
        self.development = development
        self.process = None
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]

    def format(self) -> None:
        if self.path.exists():
            print(f"client-benchmark: removing the leftover {self.path}")
            self.path.unlink()
        args = [str(self.ledger_format), "--cluster=0", "--replica=0", "--replica-count=1"]
        args += ["--development"] if self.development else []
        done = subprocess.run(args + [str(self.path)], capture_output=True, text=True)
        if done.returncode != 0:
            sys.exit(f"client-benchmark: ledger-format failed ({done.returncode}):\n"
                     f"{done.stdout}{done.stderr}")

    def start(self) -> None:
        args = [str(self.ledger), "start", f"--addresses=127.0.0.1:{self.port}"]
        args += ["--development"] if self.development else []
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(args + [str(self.path)], stdout=log,
                                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:  # bounded by the deadline
            if self.process.poll() is not None:
                self.fail(f"ledger exited with status {self.process.returncode} at start-up")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.fail(f"ledger did not accept connections within {READY_TIMEOUT_S:.0f} s")
            time.sleep(0.05)

    def fail(self, message: str) -> None:
        tail = "\n".join(self.log_path.read_text(errors="replace").splitlines()[-40:])
        self.stop()
        sys.exit(f"client-benchmark: {message}\n--- server log (tail) ---\n{tail}")

    def memory(self) -> str:
        values = {}
        with open(f"/proc/{self.process.pid}/status") as status:
            for line in status:
                key, _, rest = line.partition(":")
                if key in ("VmRSS", "VmHWM"):
                    values[key] = int(rest.split()[0]) / 1024
        return f"server VmRSS {values['VmRSS']:.1f} MiB, VmHWM {values['VmHWM']:.1f} MiB"

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def failed_creates(reply: bytes) -> int:
    """Results of a create request (16 bytes each) whose status is not `created`."""
    results = array("I")
    results.frombytes(reply)
    return len(results) // 4 - results[2::4].count(STATUS_CREATED)


def build_accounts(count: int) -> bytearray:
    body = bytearray(128 * count)
    for index in range(count):
        # id, 4 balances, user_data_128, user_data_64, user_data_32, reserved, ledger, code,
        # flags, timestamp
        ACCOUNT.pack_into(body, 128 * index, index + 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                          0, 0, 0, 1, 1, 0, 0)
    return body


def build_transfers(count: int, first_id: int, accounts: int, rng: random.Random) -> bytearray:
    body = bytearray(128 * count)
    for index in range(count):
        debit = rng.randrange(1, accounts + 1)
        credit = rng.randrange(1, accounts)
        credit += credit >= debit  # a different account, uniformly
        # id, debit, credit, amount, pending_id, user_data_128 (lo, hi each), user_data_64,
        # user_data_32, timeout, ledger, code, flags, timestamp
        TRANSFER.pack_into(body, 128 * index, first_id + index, 0, debit, 0, credit, 0,
                           rng.randrange(1, 1000), 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 0, 0)
    return body


def percentile(sorted_values: list[float], fraction: float) -> float:
    """Nearest-rank percentile."""
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return sorted_values[rank - 1]


def run_phase(client: RawClient, operation: int, body: bytearray, events: int, batch: int):
    """Submits `body` in requests of `batch` events; returns (seconds, latencies_ms, failures)."""
    buffer = (ctypes.c_uint8 * len(body)).from_buffer(body)
    base = ctypes.addressof(buffer)
    latencies, replies = [], []
    started = time.perf_counter()
    for start in range(0, events, batch):
        count = min(batch, events - start)
        t0 = time.perf_counter_ns()
        size = client.submit(operation, ctypes.c_void_p(base + 128 * start), 128 * count)
        latencies.append((time.perf_counter_ns() - t0) / 1e6)
        if size != 16 * count:  # one 16-byte result per event
            raise RuntimeError(f"reply of {size} bytes to {count} events")
        replies.append(client.reply_bytes(size))  # a memcpy; decoded after the phase
    elapsed = time.perf_counter() - started
    return elapsed, latencies, sum(failed_creates(reply) for reply in replies)


def report(name: str, events: int, requests: int, unit: str, elapsed: float,
           latencies: list[float], failures: int, memory: str) -> None:
    ordered = sorted(latencies)
    print(f"{name}: {events} {unit} in {requests} requests, {elapsed:.2f} s, "
          f"{events / elapsed:,.0f} {unit}/s")
    print(f"  latency per request: p50 {percentile(ordered, 0.50):.3f} ms, "
          f"p99 {percentile(ordered, 0.99):.3f} ms, max {ordered[-1]:.3f} ms")
    print(f"  not created: {failures}")
    print(f"  {memory}")
    sys.stdout.flush()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bin", type=Path, required=True)
    parser.add_argument("--dir", type=Path, default=Path(".build/client-benchmark"))
    parser.add_argument("--accounts", type=int, default=10_000)
    parser.add_argument("--transfers", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=8189)
    parser.add_argument("--singles", type=int, default=20_000)
    parser.add_argument("--development", action="store_true")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    if args.accounts < 2 or not 1 <= args.batch <= 8189:
        parser.error("need at least 2 accounts and 1 ≤ batch ≤ 8189")

    rng = random.Random(args.seed)
    print(f"client-benchmark: generating {args.accounts} accounts, {args.transfers} + "
          f"{args.singles} transfers (seed {args.seed}; not timed)")
    accounts = build_accounts(args.accounts)
    transfers = build_transfers(args.transfers, 1, args.accounts, rng)
    singles = build_transfers(args.singles, args.transfers + 1, args.accounts, rng)

    created_dir = not args.dir.exists()
    args.dir.mkdir(parents=True, exist_ok=True)
    server = Server(args.bin.resolve(), args.dir.resolve(), args.development)
    client = None
    try:
        server.format()
        server.start()
        print(f"client-benchmark: {server.ledger} on 127.0.0.1:{server.port}, data file "
              f"{server.path}{' (--development)' if args.development else ''}")
        print(f"after start-up: {server.memory()}")
        client = RawClient(server.port)
        # Register the session (the client's first register is sent before it has connected,
        # so it costs a retry of ~0.6 s) outside any timed phase.
        zero = (ctypes.c_uint8 * 16)()
        client.submit(OPERATION_LOOKUP_ACCOUNTS, zero, 16)

        elapsed, latencies, failures = run_phase(client, OPERATION_CREATE_ACCOUNTS, accounts,
                                                 args.accounts, args.batch)
        report("accounts", args.accounts, len(latencies), "accounts", elapsed, latencies,
               failures, server.memory())
        elapsed, latencies, failures = run_phase(client, OPERATION_CREATE_TRANSFERS, transfers,
                                                 args.transfers, args.batch)
        report(f"transfers (batches of {args.batch})", args.transfers, len(latencies),
               "transfers", elapsed, latencies, failures, server.memory())
        elapsed, latencies, failures = run_phase(client, OPERATION_CREATE_TRANSFERS, singles,
                                                 args.singles, 1)
        report("single-transfer requests", args.singles, len(latencies), "transfers", elapsed,
               latencies, failures, server.memory())
    finally:
        if client is not None:
            client.close()
        server.stop()
        server.path.unlink(missing_ok=True)
        if created_dir:
            shutil.rmtree(args.dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
