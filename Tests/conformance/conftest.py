"""Harness for the conformance suite: real `ledger` processes driven by the official TigerBeetle
Python client (tigerbeetle==0.17.9, which bundles libtb_client).

What lives here:
* `LedgerServer`: formats a data file, starts/stops/SIGKILLs/restarts `ledger` on the same file,
  waits until the port accepts connections, keeps the server's stderr in a log file and puts its
  tail into every error.
* fixtures: `server` (one server per test module, shared by its tests), `fresh_server` (one per
  test, for tests that need an empty ledger or kill the process), `client` (the module server's
  client; replaced after a test timeout) / `make_client` (clients are always closed),
  `frame_proxy`, `ids` / `ledgers` (unique ids and ledger numbers).
* `FrameProxy`: a TCP proxy that parses message frames (wire spec 2.2) so a test can hold back a
  reply, restart the server and watch the client's retransmission get the stored reply.
* small builders and assertions shared by the test modules (`from conftest import ...`).

Environment:
  LEDGER_BIN           directory with `ledger` and `ledger-format` (default .build/release)
  LEDGER_DEVELOPMENT   1 (default): pass --development (no O_DIRECT; tmpfs/overlay work); 0: don't
  LEDGER_TEST_DIR      where data files go (default: the system temp dir); each is ~1.1 GiB and is
                       deleted when its server fixture ends
  LEDGER_TEST_TIMEOUT  seconds one test may take (default 180); the official client retries
                       forever, so a server that never answers would otherwise hang the suite
  LEDGER_CRASH_ROUNDS, LEDGER_CRASH_SEED   see test_crash.py
"""

from __future__ import annotations

import ctypes
import itertools
import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import pytest
import tigerbeetle as tb
from tigerbeetle import bindings
from tigerbeetle.lib import c_uint128

REPO_ROOT = Path(__file__).resolve().parents[2]
MAX128 = 2**128 - 1
MAX64 = 2**64 - 1
MAX32 = 2**32 - 1
TS_MAX = 2**63 - 1  # the largest valid timestamp (state-machine spec, conventions)
NS_PER_S = 1_000_000_000
READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0
# With --development a real server accepts request bodies of at most 32 KiB: 253 creates or 2031
# lookup ids per request (wire spec 7.2). Tests chunk bigger lists so they run in either mode.
CREATE_CHUNK = 253
LOOKUP_CHUNK = 2031
QUERY_LIMIT_MAX = 8189

S = tb.CreateAccountStatus  # short names used by the test modules
T = tb.CreateTransferStatus
AF = tb.AccountFlags
TF = tb.TransferFlags


# ------------------------------------------------------------------------------------------------
# Binaries and the server process
# ------------------------------------------------------------------------------------------------

class LedgerBinaryMissing(Exception):
    """`ledger` or `ledger-format` is not where LEDGER_BIN (or the default) says."""


class ServerError(Exception):
    """The server could not be formatted, started or stopped; the message carries its stderr."""


def ledger_bin_dir() -> Path:
    value = os.environ.get("LEDGER_BIN", ".build/release")
    path = Path(value).expanduser()
    if path.is_absolute():
        return path
    # A relative LEDGER_BIN means the working directory; fall back to the repository root so that
    # the default works whether pytest runs from the root or from Tests/conformance.
    if (Path.cwd() / path).is_dir():
        return (Path.cwd() / path).resolve()
    return (REPO_ROOT / path).resolve()


_binary_problems: set[str] = set()  # repeated once at the end of the run


def find_binaries(bin_dir: Path) -> tuple[Path, Path]:
    """Returns (ledger, ledger-format) or raises LedgerBinaryMissing with what to do about it."""
    missing = [name for name in ("ledger", "ledger-format")
               if not (bin_dir / name).is_file() or not os.access(bin_dir / name, os.X_OK)]
    if missing:
        raise LedgerBinaryMissing(
            f"{' and '.join(missing)} not found (or not executable) in {bin_dir}: build them with "
            "`swift build -c release --product ledger` and `--product ledger-format`, or set "
            "LEDGER_BIN to the directory that holds `ledger` and `ledger-format` "
            "(scripts/conformance.sh does both)")
    return bin_dir / "ledger", bin_dir / "ledger-format"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def env_flag(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value not in ("0", "false", "no")


class LedgerServer:
    """One single-replica cluster (cluster 0) on loopback: its data file and its process.

    The port stays the same across restarts so that a client keeps working through them."""

    live: list["LedgerServer"] = []  # for the timeout message

    def __init__(self, bin_dir: Path, data_dir: Path, *, development: bool = True,
                 port: Optional[int] = None, owns_data_dir: bool = True):
        self.ledger, self.ledger_format = find_binaries(bin_dir)
        self.data_dir = data_dir
        self.owns_data_dir = owns_data_dir
        self.path = data_dir / "0_0.ledger"
        self.log_path = data_dir / "server.log"
        self.development = development
        self.port = port if port is not None else free_port()
        self.process: Optional[subprocess.Popen] = None
        self.starts = 0
        LedgerServer.live.append(self)

    # -- lifecycle ---------------------------------------------------------------------------

    def format(self) -> None:
        args = [str(self.ledger_format), "--cluster=0", "--replica=0", "--replica-count=1"]
        if self.development:
            args.append("--development")
        args.append(str(self.path))
        done = subprocess.run(args, capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise ServerError(f"ledger-format exited with status {done.returncode}: "
                              f"{' '.join(args)}\n{done.stdout}{done.stderr}")

    def start(self) -> None:
        assert self.process is None or self.process.poll() is not None, "server already running"
        args = [str(self.ledger), "start", f"--addresses=127.0.0.1:{self.port}"]
        if self.development:
            args.append("--development")
        args.append(str(self.path))
        self.starts += 1
        with open(self.log_path, "ab") as log:
            log.write(f"\n==== start #{self.starts}: {' '.join(args)}\n".encode())
            log.flush()
            self.process = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log,
                                            stderr=subprocess.STDOUT, cwd=self.data_dir)
        self.wait_ready()

    def wait_ready(self, timeout_s: float = READY_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout_s
        while True:  # bounded by the deadline
            status = self.process.poll()
            if status is not None:
                raise ServerError(f"ledger exited with status {status} before accepting "
                                  f"connections on port {self.port}\n{self.stderr_tail()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.kill()
                raise ServerError(f"ledger did not accept connections on port {self.port} "
                                  f"within {timeout_s:.0f} s\n{self.stderr_tail()}")
            time.sleep(0.05)

    def stop(self) -> int:
        """SIGTERM; returns the exit status (the contract says 0)."""
        assert self.process is not None, "server not started"
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
                raise ServerError(f"ledger did not exit within {STOP_TIMEOUT_S:.0f} s of "
                                  f"SIGTERM\n{self.stderr_tail()}")
        return self.process.returncode

    def kill(self) -> None:
        """SIGKILL (a crash: nothing is flushed) and reap the process."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def restart(self, *, kill: bool = False) -> None:
        if kill:
            self.kill()
        else:
            self.stop()
        self.start()

    def close(self) -> None:
        self.kill()
        if self in LedgerServer.live:
            LedgerServer.live.remove(self)
        if self.owns_data_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)
        else:
            self.path.unlink(missing_ok=True)

    # -- observation --------------------------------------------------------------------------

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def memory_kib(self) -> dict[str, int]:
        """VmRSS and VmHWM of the server process, in KiB."""
        values = {}
        with open(f"/proc/{self.pid}/status") as status:
            for line in status:
                key, _, rest = line.partition(":")
                if key in ("VmRSS", "VmHWM"):
                    values[key] = int(rest.split()[0])
        return values

    def stderr_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no server log)"
        tail = text.splitlines()[-lines:]
        return f"--- last {len(tail)} lines of {self.log_path} ---\n" + "\n".join(tail)


def new_server(*, development: Optional[bool] = None, start: bool = True) -> LedgerServer:
    if development is None:
        development = env_flag("LEDGER_DEVELOPMENT", True)
    data_dir = Path(tempfile.mkdtemp(prefix="ledger-conformance-",
                                     dir=os.environ.get("LEDGER_TEST_DIR") or None))
    try:
        server = LedgerServer(ledger_bin_dir(), data_dir, development=development)
    except LedgerBinaryMissing as error:
        _binary_problems.add(str(error))
        shutil.rmtree(data_dir, ignore_errors=True)
        raise
    except Exception:
        shutil.rmtree(data_dir, ignore_errors=True)
        raise
    try:
        server.format()
        if start:
            server.start()
    except Exception:
        server.close()
        raise
    return server


# ------------------------------------------------------------------------------------------------
# Clients
# ------------------------------------------------------------------------------------------------

def open_client(port: int) -> tb.ClientSync:
    return tb.ClientSync(cluster_id=0, replica_addresses=str(port))


def close_client(client: tb.ClientSync) -> None:
    try:
        client.close()
    except AssertionError:
        # A call interrupted by the test timeout leaves its packet registered; tb_client_deinit
        # has completed it already, only the Python bookkeeping complains.
        pass


class ClientPool:
    def __init__(self) -> None:
        self.clients: list[tb.ClientSync] = []

    def __call__(self, port: int) -> tb.ClientSync:
        client = open_client(port)
        self.clients.append(client)
        return client

    def discard(self, client: tb.ClientSync) -> None:
        """Closes one client now (e.g. an evicted one, which still holds its connection)."""
        self.clients.remove(client)
        close_client(client)

    def close(self) -> None:
        for client in self.clients:
            close_client(client)
        self.clients.clear()


# ------------------------------------------------------------------------------------------------
# Fixtures
# ------------------------------------------------------------------------------------------------

class TestTimeout(Exception):
    pass


def pytest_configure(config):
    config.addinivalue_line("markers", "deadline(seconds): time limit of one test (default "
                                       "LEDGER_TEST_TIMEOUT or 180 s)")
    config.addinivalue_line("markers", "no_server: harness self-test; needs no ledger binary")


def pytest_terminal_summary(terminalreporter):
    for problem in sorted(_binary_problems):
        terminalreporter.write_line(f"ledger binaries: {problem}", red=True, bold=True)


@pytest.fixture(autouse=True)
def _deadline(request):
    """Fails a test that runs too long instead of letting a retrying client hang the suite."""
    marker = request.node.get_closest_marker("deadline")
    seconds = float(marker.args[0]) if marker else float(os.environ.get("LEDGER_TEST_TIMEOUT",
                                                                         "180"))

    def on_alarm(signum, frame):
        _timeouts["count"] += 1
        tails = "\n".join(s.stderr_tail(20) for s in LedgerServer.live if s.process is not None)
        raise TestTimeout(f"test exceeded {seconds:.0f} s (a client call retries forever while "
                          f"the server does not answer)\n{tails}")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@pytest.fixture(scope="module")
def server():
    """One server per test module; tests share it and keep apart by unique ids and ledgers."""
    instance = new_server()
    yield instance
    instance.close()


_timeouts = {"count": 0}  # test timeouts so far: a timed-out call poisons its client


@pytest.fixture(scope="module")
def _module_client(server):
    holder = {"client": None}
    yield holder
    if holder["client"] is not None:
        close_client(holder["client"])


@pytest.fixture
def client(server, _module_client):
    """The module's client (registering a session costs ~0.6 s, so tests share one). A test that
    timed out leaves a call in flight that the client retries forever; the next test gets a new
    client. If the module's server died, tests fail at once instead of timing out one by one."""
    if not server.running:
        pytest.fail(f"the module's server is not running (exit status "
                    f"{server.process.returncode})\n{server.stderr_tail()}")
    if _module_client["client"] is None:
        _module_client["client"] = open_client(server.port)
    timeouts_before = _timeouts["count"]
    yield _module_client["client"]
    if _timeouts["count"] != timeouts_before:
        close_client(_module_client["client"])
        _module_client["client"] = None


@pytest.fixture
def fresh_server():
    """A server of its own for one test (empty ledger; the test may kill and restart it)."""
    instance = new_server()
    yield instance
    instance.close()


@pytest.fixture
def make_client():
    pool = ClientPool()
    yield pool
    pool.close()


_ledger_counter = itertools.count(random.randrange(1_000, 1_000_000) * 100)


@pytest.fixture
def ledgers() -> Callable[[], int]:
    """Fresh ledger numbers, so queries and balance sums only see this test's objects."""
    return lambda: next(_ledger_counter)


@pytest.fixture
def ids() -> Callable[[], int]:
    """Fresh 128-bit ids (the client's ULID generator: unique and increasing)."""
    return tb.id


# ------------------------------------------------------------------------------------------------
# Builders, assertions and polling
# ------------------------------------------------------------------------------------------------

def account(id: int, ledger: int = 1, code: int = 1, flags: int = 0, **fields) -> tb.Account:
    return tb.Account(id=id, ledger=ledger, code=code, flags=flags, **fields)


def transfer(id: int, debit: int = 0, credit: int = 0, amount: int = 0, ledger: int = 1,
             code: int = 1, flags: int = 0, **fields) -> tb.Transfer:
    return tb.Transfer(id=id, debit_account_id=debit, credit_account_id=credit, amount=amount,
                       ledger=ledger, code=code, flags=flags, **fields)


def statuses(results) -> list:
    return [result.status for result in results]


def create_accounts(client, accounts) -> list:
    results = []
    for start in range(0, len(accounts), CREATE_CHUNK):
        results += client.create_accounts(accounts[start:start + CREATE_CHUNK])
    return results


def create_transfers(client, transfers) -> list:
    results = []
    for start in range(0, len(transfers), CREATE_CHUNK):
        results += client.create_transfers(transfers[start:start + CREATE_CHUNK])
    return results


def lookup_accounts(client, account_ids) -> list:
    found = []
    for start in range(0, len(account_ids), LOOKUP_CHUNK):
        found += client.lookup_accounts(account_ids[start:start + LOOKUP_CHUNK])
    return found


def lookup_transfers(client, transfer_ids) -> list:
    found = []
    for start in range(0, len(transfer_ids), LOOKUP_CHUNK):
        found += client.lookup_transfers(transfer_ids[start:start + LOOKUP_CHUNK])
    return found


def created_accounts(client, *accounts) -> list[int]:
    """Creates the accounts, asserts each is `created`, returns their timestamps."""
    results = create_accounts(client, list(accounts))
    assert statuses(results) == [S.CREATED] * len(accounts)
    return [result.timestamp for result in results]


def created_transfers(client, *transfers) -> list[int]:
    results = create_transfers(client, list(transfers))
    assert statuses(results) == [T.CREATED] * len(transfers)
    return [result.timestamp for result in results]


def balances(client, account_id: int) -> tuple[int, int, int, int]:
    """(debits_pending, debits_posted, credits_pending, credits_posted) — the spec's notation."""
    found = client.lookup_accounts([account_id])
    assert len(found) == 1, f"account {account_id} not found"
    a = found[0]
    return (a.debits_pending, a.debits_posted, a.credits_pending, a.credits_posted)


def lookup_account(client, account_id: int) -> tb.Account:
    found = client.lookup_accounts([account_id])
    assert len(found) == 1, f"account {account_id} not found"
    return found[0]


def lookup_transfer(client, transfer_id: int) -> tb.Transfer:
    found = client.lookup_transfers([transfer_id])
    assert len(found) == 1, f"transfer {transfer_id} not found"
    return found[0]


def account_filter(account_id: int, *, limit: int = QUERY_LIMIT_MAX,
                   flags: int = tb.AccountFilterFlags.DEBITS | tb.AccountFilterFlags.CREDITS,
                   user_data_128: int = 0, user_data_64: int = 0, user_data_32: int = 0,
                   code: int = 0, timestamp_min: int = 0, timestamp_max: int = 0
                   ) -> tb.AccountFilter:
    return tb.AccountFilter(account_id=account_id, user_data_128=user_data_128,
                            user_data_64=user_data_64, user_data_32=user_data_32, code=code,
                            timestamp_min=timestamp_min, timestamp_max=timestamp_max,
                            limit=limit, flags=flags)


def query_filter(*, limit: int = QUERY_LIMIT_MAX, flags: int = 0, user_data_128: int = 0,
                 user_data_64: int = 0, user_data_32: int = 0, ledger: int = 0, code: int = 0,
                 timestamp_min: int = 0, timestamp_max: int = 0) -> tb.QueryFilter:
    return tb.QueryFilter(user_data_128=user_data_128, user_data_64=user_data_64,
                          user_data_32=user_data_32, ledger=ledger, code=code,
                          timestamp_min=timestamp_min, timestamp_max=timestamp_max, limit=limit,
                          flags=flags)


def wait_until(predicate: Callable[[], bool], timeout_s: float, what: str,
               interval_s: float = 0.05) -> None:
    """Polls until `predicate()` holds; the deadline is generous, the test never sleeps blindly."""
    deadline = time.monotonic() + timeout_s
    while not predicate():  # bounded by the deadline
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(interval_s)


def server_timestamp(client) -> int:
    """The server's current operation timestamp, observed without creating anything.

    An imported account whose timestamp is TS_MAX fails with
    `imported_event_timestamp_must_not_advance`, and a failed event reports its slot timestamp,
    which for a one-event batch is the operation's timestamp (state-machine spec 4.3, 5.1). Every
    object existing before has a smaller timestamp and every later operation a larger one."""
    probe = account(tb.id(), flags=AF.IMPORTED, timestamp=TS_MAX)
    (result,) = client.create_accounts([probe])
    assert result.status == S.IMPORTED_EVENT_TIMESTAMP_MUST_NOT_ADVANCE
    assert 0 < result.timestamp <= TS_MAX
    return result.timestamp


# ------------------------------------------------------------------------------------------------
# get_change_events (operation 137): in the C client but not in the Python API of 0.17.9, so it
# goes through the client's internal `_submit` with the layouts of wire spec 9.7 / 9.8.
# ------------------------------------------------------------------------------------------------

class ChangeEventType:
    SINGLE_PHASE = 0
    TWO_PHASE_PENDING = 1
    TWO_PHASE_POSTED = 2
    TWO_PHASE_VOIDED = 3
    TWO_PHASE_EXPIRED = 4


@dataclass
class ChangeEvent:
    transfer_id: int
    transfer_amount: int
    transfer_pending_id: int
    transfer_user_data_128: int
    transfer_user_data_64: int
    transfer_user_data_32: int
    transfer_timeout: int
    transfer_code: int
    transfer_flags: int
    ledger: int
    type: int
    debit_account_id: int
    debit_account_debits_pending: int
    debit_account_debits_posted: int
    debit_account_credits_pending: int
    debit_account_credits_posted: int
    debit_account_user_data_128: int
    debit_account_user_data_64: int
    debit_account_user_data_32: int
    debit_account_code: int
    debit_account_flags: int
    credit_account_id: int
    credit_account_debits_pending: int
    credit_account_debits_posted: int
    credit_account_credits_pending: int
    credit_account_credits_posted: int
    credit_account_user_data_128: int
    credit_account_user_data_64: int
    credit_account_user_data_32: int
    credit_account_code: int
    credit_account_flags: int
    timestamp: int
    transfer_timestamp: int
    debit_account_timestamp: int
    credit_account_timestamp: int

    def debit_balances(self):
        return (self.debit_account_debits_pending, self.debit_account_debits_posted,
                self.debit_account_credits_pending, self.debit_account_credits_posted)

    def credit_balances(self):
        return (self.credit_account_debits_pending, self.credit_account_debits_posted,
                self.credit_account_credits_pending, self.credit_account_credits_posted)


class CChangeEventsFilter(ctypes.Structure):
    _fields_ = [("timestamp_min", ctypes.c_uint64), ("timestamp_max", ctypes.c_uint64),
                ("limit", ctypes.c_uint32), ("reserved", ctypes.c_uint8 * 44)]

    @classmethod
    def from_param(cls, obj):
        timestamp_min, timestamp_max, limit = obj
        return cls(timestamp_min=timestamp_min, timestamp_max=timestamp_max, limit=limit)


_ACCOUNT_SIDE = [("id", c_uint128), ("debits_pending", c_uint128),
                 ("debits_posted", c_uint128), ("credits_pending", c_uint128),
                 ("credits_posted", c_uint128), ("user_data_128", c_uint128),
                 ("user_data_64", ctypes.c_uint64), ("user_data_32", ctypes.c_uint32),
                 ("code", ctypes.c_uint16), ("flags", ctypes.c_uint16)]


class CChangeEvent(ctypes.Structure):
    _fields_ = ([("transfer_id", c_uint128), ("transfer_amount", c_uint128),
                 ("transfer_pending_id", c_uint128), ("transfer_user_data_128", c_uint128),
                 ("transfer_user_data_64", ctypes.c_uint64),
                 ("transfer_user_data_32", ctypes.c_uint32),
                 ("transfer_timeout", ctypes.c_uint32), ("transfer_code", ctypes.c_uint16),
                 ("transfer_flags", ctypes.c_uint16), ("ledger", ctypes.c_uint32),
                 ("type", ctypes.c_uint8), ("reserved", ctypes.c_uint8 * 39)]
                + [("debit_account_" + name, kind) for name, kind in _ACCOUNT_SIDE]
                + [("credit_account_" + name, kind) for name, kind in _ACCOUNT_SIDE]
                + [("timestamp", ctypes.c_uint64), ("transfer_timestamp", ctypes.c_uint64),
                   ("debit_account_timestamp", ctypes.c_uint64),
                   ("credit_account_timestamp", ctypes.c_uint64)])

    def to_python(self) -> ChangeEvent:
        values = {}
        for name, kind in self._fields_:
            if name == "reserved":
                continue
            value = getattr(self, name)
            values[name] = value.to_python() if kind is c_uint128 else value
        return ChangeEvent(**values)


def get_change_events(client, timestamp_min: int = 0, timestamp_max: int = 0,
                      limit: int = 2730) -> list[ChangeEvent]:
    return client._submit(bindings.Operation.GET_CHANGE_EVENTS,
                          [(timestamp_min, timestamp_max, limit)], CChangeEventsFilter,
                          CChangeEvent)


# ------------------------------------------------------------------------------------------------
# Frames (wire spec 2.2, 4) and a proxy that can hold back replies
# ------------------------------------------------------------------------------------------------

HEADER_SIZE = 256
MESSAGE_SIZE_MAX = 1 << 20
COMMAND_REQUEST = 5
COMMAND_REPLY = 8
OPERATION_REGISTER = 2


def u(data: bytes, offset: int, size: int) -> int:
    return int.from_bytes(data[offset:offset + size], "little")


@dataclass
class Frame:
    data: bytes

    @property
    def checksum(self) -> int:
        return u(self.data, 0, 16)

    @property
    def size(self) -> int:
        return u(self.data, 96, 4)

    @property
    def view(self) -> int:
        return u(self.data, 104, 4)

    @property
    def release(self) -> int:
        return u(self.data, 108, 4)

    @property
    def command(self) -> int:
        return self.data[114]

    @property
    def body(self) -> bytes:
        return self.data[HEADER_SIZE:]

    # request (wire spec 4.4)
    @property
    def request_number(self) -> int:
        return u(self.data, 192, 4) if self.command == COMMAND_REQUEST else u(self.data, 232, 4)

    @property
    def operation(self) -> int:
        return self.data[196] if self.command == COMMAND_REQUEST else self.data[236]

    # reply (wire spec 4.5)
    @property
    def request_checksum(self) -> int:
        return u(self.data, 128, 16)

    @property
    def context(self) -> int:
        return u(self.data, 160, 16)

    @property
    def client_id(self) -> int:
        return u(self.data, 160, 16) if self.command == COMMAND_REQUEST else u(self.data, 192, 16)

    @property
    def op(self) -> int:
        return u(self.data, 208, 8)

    @property
    def commit(self) -> int:
        return u(self.data, 216, 8)

    @property
    def timestamp(self) -> int:
        return u(self.data, 224, 8)


def create_results_from_body(body: bytes) -> list[tuple[int, int]]:
    """(timestamp, status) pairs of a one-batch create reply body (wire spec 6.1, 9.6)."""
    batch_count = u(body, len(body) - 2, 2)
    assert batch_count == 1, f"expected one batch, got {batch_count}"
    count = u(body, len(body) - 4, 2)
    return [(u(body, 16 * i, 8), u(body, 16 * i + 8, 4)) for i in range(count)]


class FrameProxy:
    """Client ⇄ proxy ⇄ server on loopback, one upstream connection per client connection.

    Frames are forwarded whole. `hold_replies` is a predicate over reply frames: a matching reply
    is not forwarded but kept in `held` (the server has committed the request; the client never
    learns it). When the server dies the proxy closes the client's connection, and the client
    reconnects as it would to a restarted server."""

    def __init__(self, upstream_port: int):
        self.upstream_port = upstream_port
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.listener.settimeout(0.1)
        self.port = self.listener.getsockname()[1]
        self.lock = threading.Lock()
        self.requests: list[Frame] = []
        self.replies: list[Frame] = []
        self.held: list[Frame] = []
        self.hold_replies: Optional[Callable[[Frame], bool]] = None
        self.stopping = threading.Event()
        self.sockets: set[socket.socket] = set()
        self.thread = threading.Thread(target=self._accept_loop, name="frame-proxy", daemon=True)
        self.thread.start()

    def _accept_loop(self) -> None:
        while not self.stopping.is_set():  # runs until close()
            try:
                downstream, _ = self.listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.upstream_port), timeout=1)
                upstream.settimeout(None)
            except OSError:
                downstream.close()  # server down: the client reconnects with backoff
                continue
            downstream.settimeout(None)
            for sock in (downstream, upstream):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self.lock:
                self.sockets.update((downstream, upstream))
            for source, sink, upward in ((downstream, upstream, True),
                                         (upstream, downstream, False)):
                threading.Thread(target=self._pump, args=(source, sink, upward),
                                 name="frame-proxy-pump", daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, upward: bool) -> None:
        pending = bytearray()
        try:
            while True:  # until either side closes
                data = source.recv(1 << 20)
                if not data:
                    break
                pending += data
                while len(pending) >= HEADER_SIZE:  # one iteration per complete frame
                    size = u(pending, 96, 4)
                    if size < HEADER_SIZE or size > MESSAGE_SIZE_MAX:
                        raise ConnectionError(f"bad frame size {size}")
                    if len(pending) < size:
                        break
                    frame = Frame(bytes(pending[:size]))
                    del pending[:size]
                    if self._forward(frame, upward):
                        sink.sendall(frame.data)
        except OSError:
            pass
        finally:
            self._close_pair(source, sink)

    def _forward(self, frame: Frame, upward: bool) -> bool:
        with self.lock:
            if upward:
                if frame.command == COMMAND_REQUEST:
                    self.requests.append(frame)
                return True
            if frame.command == COMMAND_REPLY:
                if self.hold_replies is not None and self.hold_replies(frame):
                    self.held.append(frame)
                    return False
                self.replies.append(frame)
            return True

    def _close_pair(self, *pair: socket.socket) -> None:
        for sock in pair:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()
            with self.lock:
                self.sockets.discard(sock)

    def drop_connections(self) -> None:
        with self.lock:
            sockets = list(self.sockets)
        self._close_pair(*sockets)

    def close(self) -> None:
        self.stopping.set()
        self.listener.close()
        self.drop_connections()
        self.thread.join(timeout=5)


@pytest.fixture
def frame_proxy():
    proxies: list[FrameProxy] = []

    def make(upstream_port: int) -> FrameProxy:
        proxy = FrameProxy(upstream_port)
        proxies.append(proxy)
        return proxy

    yield make
    for proxy in proxies:
        proxy.close()
