"""Idempotent retries and restarts.

* Between requests: after a SIGTERM (exit status 0) or a SIGKILL and a restart on the same data
  file, objects read back identical, re-created accounts/transfers come back `exists` with their
  original timestamps, ids that failed with a transient code come back `id_already_failed`,
  balances are unchanged and new timestamps stay above the old ones.
* Within one client: a request whose reply was lost is retransmitted by the client (same bytes);
  the server answers from its stored reply — also after a SIGKILL and restart — so the call
  returns `created` exactly once, and the reply is the one the server sent the first time.
  A `FrameProxy` between client and server holds the first reply back to make this happen.
* A request submitted while the server is down completes once the server is back."""

import threading
import time

import pytest

from conftest import (AF, COMMAND_REPLY, T, TF, S, Frame, account, account_filter, balances,
                      create_results_from_body, created_accounts, created_transfers, statuses,
                      transfer, wait_until)

OPERATION_CREATE_TRANSFERS = 147
REPLY_DEADLINE_S = 60.0


def call_in_thread(function, *args):
    """Runs a blocking client call in a thread; returns a handle with .result() (bounded)."""
    box = {}

    def run():
        try:
            box["value"] = function(*args)
        except BaseException as error:  # noqa: BLE001 — reported to the test thread
            box["error"] = error

    thread = threading.Thread(target=run, name="client-call", daemon=True)
    thread.start()

    class Handle:
        @staticmethod
        def result(timeout_s=REPLY_DEADLINE_S):
            thread.join(timeout_s)
            assert not thread.is_alive(), f"client call still blocked after {timeout_s} s"
            if "error" in box:
                raise box["error"]
            return box["value"]

        @staticmethod
        def done():
            return not thread.is_alive()

    return Handle


@pytest.mark.parametrize("how", ["sigterm", "sigkill"])
def test_state_and_idempotency_survive_restart(fresh_server, make_client, ids, how):
    server = fresh_server
    client = make_client(server.port)
    a1, a2, a3 = ids(), ids(), ids()
    accounts = [account(a1, user_data_128=11), account(a2, flags=AF.HISTORY),
                account(a3, flags=AF.DEBITS_MUST_NOT_EXCEED_CREDITS)]
    account_stamps = created_accounts(client, *accounts)
    good = [transfer(ids(), a1, a2, 10, user_data_64=5),
            transfer(ids(), a1, a2, 5, flags=TF.PENDING)]  # no timeout: stays pending
    failed = [transfer(ids(), a3, a1, 1),  # exceeds_credits
              transfer(ids(), 0, 0, 0, 0, 0, flags=TF.VOID_PENDING_TRANSFER,
                       pending_id=ids()),  # pending_transfer_not_found
              transfer(ids(), a1, ids(), 1)]  # credit_account_not_found
    results = client.create_transfers(good + failed)
    assert statuses(results) == [T.CREATED, T.CREATED, T.EXCEEDS_CREDITS,
                                 T.PENDING_TRANSFER_NOT_FOUND, T.CREDIT_ACCOUNT_NOT_FOUND]
    transfer_stamps = [r.timestamp for r in results[:2]]
    before_accounts = client.lookup_accounts([a1, a2, a3])
    before_transfers = client.lookup_transfers([t.id for t in good])
    before_history = client.get_account_balances(account_filter(a2))

    if how == "sigterm":
        assert server.stop() == 0, server.stderr_tail()
    else:
        server.kill()
    server.start()

    # The same client keeps its session across the restart ...
    assert client.lookup_accounts([a1, a2, a3]) == before_accounts
    # ... and a new client sees the same state.
    other = make_client(server.port)
    assert other.lookup_accounts([a1, a2, a3]) == before_accounts
    assert other.lookup_transfers([t.id for t in good]) == before_transfers
    assert other.lookup_transfers([t.id for t in failed]) == []
    assert other.get_account_balances(account_filter(a2)) == before_history

    results = other.create_accounts(accounts)
    assert statuses(results) == [S.EXISTS] * 3
    assert [r.timestamp for r in results] == account_stamps
    results = other.create_transfers(good + failed)
    assert statuses(results) == [T.EXISTS, T.EXISTS] + [T.ID_ALREADY_FAILED] * 3
    assert [r.timestamp for r in results[:2]] == transfer_stamps
    assert balances(other, a1) == (5, 10, 0, 0)
    assert balances(other, a2) == (0, 0, 5, 10)

    # Time never goes backwards across a restart (timestamps stay unique and increasing).
    (new_stamp,) = created_transfers(other, transfer(ids(), a1, a2, 1))
    assert new_stamp > max(transfer_stamps + [r.timestamp for r in results])
    assert balances(client, a1) == (5, 11, 0, 0)


def hold_create_transfer_replies(frame: Frame) -> bool:
    return frame.command == COMMAND_REPLY and frame.operation == OPERATION_CREATE_TRANSFERS


@pytest.mark.parametrize("restart", ["none", "sigkill"])
def test_lost_reply_is_resent_not_reexecuted(fresh_server, make_client, frame_proxy, ids,
                                             restart):
    server = fresh_server
    proxy = frame_proxy(server.port)
    client = make_client(proxy.port)
    a1, a2 = ids(), ids()
    created_accounts(client, account(a1), account(a2))
    t1, t2 = transfer(ids(), a1, a2, 7), transfer(ids(), a1, a2, 8, flags=TF.PENDING)

    proxy.hold_replies = hold_create_transfer_replies
    call = call_in_thread(client.create_transfers, [t1, t2])
    wait_until(lambda: len(proxy.held) >= 1, REPLY_DEADLINE_S, "the server's first reply")
    original = proxy.held[0]
    if restart == "sigkill":
        proxy.hold_replies = None
        server.kill()
        proxy.drop_connections()
        server.start()
    else:
        # Let the client's retransmission (after ≈0.6 s) through; its reply is forwarded.
        proxy.hold_replies = None
    results = call.result()

    assert statuses(results) == [T.CREATED, T.CREATED]
    assert [(r.timestamp, int(r.status)) for r in results] == \
        create_results_from_body(original.body)
    # The client sent the same request again (same number, same checksum) ...
    attempts = [f for f in proxy.requests if f.operation == OPERATION_CREATE_TRANSFERS]
    assert len(attempts) >= 2
    assert len({f.checksum for f in attempts}) == 1
    assert len({f.request_number for f in attempts}) == 1
    # ... and got the stored reply: same op, commit, timestamp, context and body.
    forwarded = [f for f in proxy.replies if f.operation == OPERATION_CREATE_TRANSFERS]
    assert forwarded, "no create_transfers reply reached the client through the proxy"
    delivered = forwarded[0]
    assert all(f.body == delivered.body for f in forwarded)
    assert delivered.request_checksum == original.request_checksum == attempts[0].checksum
    assert (delivered.op, delivered.commit, delivered.timestamp, delivered.context,
            delivered.body) == (original.op, original.commit, original.timestamp,
                                original.context, original.body)
    if restart == "none":
        assert delivered.data == original.data  # byte-identical when nothing changed

    # Executed once.
    assert balances(client, a1) == (8, 7, 0, 0)
    assert statuses(client.create_transfers([t1, t2])) == [T.EXISTS, T.EXISTS]
    assert balances(client, a2) == (0, 0, 8, 7)


def test_request_sent_while_server_is_down_completes_once(fresh_server, make_client, ids):
    server = fresh_server
    client = make_client(server.port)
    a1, a2 = ids(), ids()
    created_accounts(client, account(a1), account(a2))
    t1 = transfer(ids(), a1, a2, 3)
    assert server.stop() == 0, server.stderr_tail()
    call = call_in_thread(client.create_transfers, [t1])
    time.sleep(1.0)  # the client retries into the void meanwhile
    assert not call.done()
    server.start()
    results = call.result()
    assert statuses(results) == [T.CREATED]
    assert balances(client, a1) == (0, 3, 0, 0)
    assert statuses(client.create_transfers([t1])) == [T.EXISTS]
