"""Self-tests of the harness; they need no ledger binary (fake `ledger` / `ledger-format`
scripts stand in), so they also run before the server exists."""

import ctypes
import os
import socket
import sys
import textwrap
import threading

import pytest

import conftest
from conftest import (CChangeEvent, CChangeEventsFilter, Frame, FrameProxy, LedgerBinaryMissing,
                      LedgerServer, ServerError, create_results_from_body, find_binaries,
                      new_server, wait_until)

FAKE_FORMAT = """\
import sys
args = sys.argv[1:]
assert args[:3] == ["--cluster=0", "--replica=0", "--replica-count=1"], args
if MODE == "fail":
    sys.stderr.write("ledger-format: error: disk on fire\\n")
    sys.exit(1)
open(args[-1], "x").close()
"""

FAKE_SERVER = """\
import signal, socket, sys, time
args = sys.argv[1:]
assert args[0] == "start", args
if MODE == "crash":
    sys.stderr.write("ledger: error: cannot open data file: boom\\n")
    sys.exit(3)
port = int([a for a in args if a.startswith("--addresses=")][0].split(":")[-1])
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
listener = socket.socket()
listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
listener.bind(("127.0.0.1", port))
listener.listen(8)
sys.stderr.write("ledger: listening\\n")
sys.stderr.flush()
while True:
    connection, _ = listener.accept()
    connection.close()
"""


def fake_bin(tmp_path, *, server_mode="ok", format_mode="ok"):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "ledger-format").write_text(f"#!{sys.executable}\nMODE = {format_mode!r}\n"
                                           + FAKE_FORMAT)
    (bin_dir / "ledger").write_text(f"#!{sys.executable}\nMODE = {server_mode!r}\n"
                                    + FAKE_SERVER)
    for name in ("ledger", "ledger-format"):
        os.chmod(bin_dir / name, 0o755)
    return bin_dir


def test_missing_binary_is_reported_clearly(tmp_path, monkeypatch):
    with pytest.raises(LedgerBinaryMissing) as error:
        find_binaries(tmp_path)
    message = str(error.value)
    assert str(tmp_path) in message
    assert "LEDGER_BIN" in message
    assert "ledger and ledger-format" in message
    monkeypatch.setenv("LEDGER_BIN", str(tmp_path))
    monkeypatch.setenv("LEDGER_TEST_DIR", str(tmp_path))
    problems = set()
    monkeypatch.setattr(conftest, "_binary_problems", problems)  # not this run's problem
    with pytest.raises(LedgerBinaryMissing):
        new_server()
    assert [p.name for p in tmp_path.iterdir()] == []  # no data directory left behind
    assert problems == {message}  # repeated in the run's summary


def test_server_lifecycle_with_a_fake_server(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    server = LedgerServer(fake_bin(tmp_path), data)
    try:
        server.format()
        assert server.path.exists()
        server.start()
        assert server.running
        assert set(server.memory_kib()) == {"VmRSS", "VmHWM"}
        assert server.stop() == 0
        assert not server.running
        server.start()
        first_pid = server.pid
        server.restart(kill=True)
        assert server.pid != first_pid
        assert server.running
        assert "listening" in server.stderr_tail()
        assert server.stderr_tail().count("==== start #") == 3
    finally:
        server.close()
    assert not data.exists()
    assert server not in LedgerServer.live


def test_server_that_exits_early_reports_its_stderr(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    server = LedgerServer(fake_bin(tmp_path, server_mode="crash"), data)
    try:
        server.format()
        with pytest.raises(ServerError) as error:
            server.start()
        assert "status 3" in str(error.value)
        assert "cannot open data file: boom" in str(error.value)
    finally:
        server.close()


def test_format_failure_is_reported(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    server = LedgerServer(fake_bin(tmp_path, format_mode="fail"), data)
    try:
        with pytest.raises(ServerError) as error:
            server.format()
        assert "disk on fire" in str(error.value)
        assert "status 1" in str(error.value)
    finally:
        server.close()


def golden(rows):
    return bytes.fromhex("".join(row.split(":")[1].strip() for row in rows))


REPLY_13_4 = textwrap.dedent("""\
      0: 966b6b5fa1dfdae43396a399f892e59700000000000000000000000000000000
     32: df06757df2cd7313ab4dd8e3c2b22ad700000000000000000000000000000000
     64: 0000000000000000000000000000000000000000000000000000000000000000
     96: 2001000000000000000000000911000000000800000000000000000000000000
    128: 1de2f9db32ad11debee4c30a380b8f0b00000000000000000000000000000000
    160: c7c0b50072f31c152e80bed3c14a281c00000000000000000000000000000000
    192: 1032547698badcfeefcdab896745230102000000000000000200000000000000
    224: 65002a36fe9c9717010000009200000000000000000000000000000000000000
    """).splitlines()


def test_frame_fields_match_the_golden_reply():
    """Wire spec 13.4: the offsets the proxy reads."""
    body = bytes.fromhex("65002a36fe9c9717" "ffffffff" "00000000"
                         "ffffffffffffffffffffffff" "0100" "0100")
    frame = Frame(golden(REPLY_13_4) + body)
    assert frame.command == conftest.COMMAND_REPLY
    assert frame.size == 288 == len(frame.data)
    assert frame.checksum == 0x97e592f899a39633e4dadfa15f6b6b96
    assert frame.request_checksum == 0x0b8f0b380ac3e4bede11ad32dbf9e21d
    assert frame.context == 0x1c284ac1d3be802e151cf37200b5c0c7
    assert frame.client_id == 0x0123456789abcdeffedcba9876543210
    assert (frame.op, frame.commit, frame.request_number, frame.operation) == (2, 2, 1, 146)
    assert frame.timestamp == 1_700_000_000_000_000_101
    assert frame.release == 0x1109
    assert create_results_from_body(frame.body) == [(1_700_000_000_000_000_101, 0xFFFFFFFF)]


def test_change_event_layouts():
    assert ctypes.sizeof(CChangeEventsFilter) == 64
    assert ctypes.sizeof(CChangeEvent) == 384
    offsets = {name: getattr(CChangeEvent, name).offset for name, _ in CChangeEvent._fields_}
    assert offsets["ledger"] == 84
    assert offsets["type"] == 88
    assert offsets["debit_account_id"] == 128
    assert offsets["debit_account_flags"] == 238
    assert offsets["credit_account_id"] == 240
    assert offsets["credit_account_flags"] == 350
    assert offsets["timestamp"] == 352
    assert offsets["credit_account_timestamp"] == 376


def synthetic(command, request_number, operation, payload=b""):
    header = bytearray(256)
    header[96:100] = (256 + len(payload)).to_bytes(4, "little")
    header[114] = command
    if command == conftest.COMMAND_REQUEST:
        header[192:196] = request_number.to_bytes(4, "little")
        header[196] = operation
    else:
        header[232:236] = request_number.to_bytes(4, "little")
        header[236] = operation
    return bytes(header) + payload


def test_frame_proxy_forwards_and_holds_replies():
    """A toy upstream answers every request frame with a reply frame; the proxy holds the first."""
    upstream = socket.socket()
    upstream.bind(("127.0.0.1", 0))
    upstream.listen(4)
    upstream_port = upstream.getsockname()[1]

    def serve():
        connection, _ = upstream.accept()
        buffer = b""
        while True:
            data = connection.recv(65536)
            if not data:
                return
            buffer += data
            while len(buffer) >= 256 and len(buffer) >= int.from_bytes(buffer[96:100], "little"):
                size = int.from_bytes(buffer[96:100], "little")
                frame, buffer = Frame(buffer[:size]), buffer[size:]
                connection.sendall(synthetic(conftest.COMMAND_REPLY, frame.request_number,
                                             frame.operation, b"x" * 16))

    threading.Thread(target=serve, daemon=True).start()
    proxy = FrameProxy(upstream_port)
    try:
        proxy.hold_replies = lambda frame: frame.request_number == 1
        client = socket.create_connection(("127.0.0.1", proxy.port))
        # Two frames in one write, the second split over two writes.
        second = synthetic(conftest.COMMAND_REQUEST, 2, 147, b"y" * 32)
        client.sendall(synthetic(conftest.COMMAND_REQUEST, 1, 147) + second[:100])
        client.sendall(second[100:])
        received = b""
        while len(received) < 256 + 16:
            received += client.recv(65536)
        reply = Frame(received)
        assert (reply.request_number, reply.operation, reply.body) == (2, 147, b"x" * 16)
        wait_until(lambda: len(proxy.held) == 1, 5, "the held reply")
        assert proxy.held[0].request_number == 1
        assert [f.request_number for f in proxy.requests] == [1, 2]
        assert proxy.requests[1].body == b"y" * 32
        client.close()
    finally:
        proxy.close()
        upstream.close()
