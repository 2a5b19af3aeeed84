"""Multi-batch requests: calls queued while a request is in flight are packed by the client into
one request of several batches (wire spec 6); the reply must carry exactly as many batches, each
delivered to its own call. A wrong batch count makes the official client abort the process
(wire spec 11), so this runs on a server of its own, behind a proxy that holds the first reply
back until the other calls are queued."""

import threading
import time

from conftest import (COMMAND_REPLY, T, account, balances, created_accounts, statuses, transfer,
                      u, wait_until)

OPERATION_CREATE_TRANSFERS = 147
OPERATION_LOOKUP_ACCOUNTS = 140


def test_packed_calls_get_their_own_results(fresh_server, make_client, frame_proxy, ids):
    proxy = frame_proxy(fresh_server.port)
    client = make_client(proxy.port)
    a1, a2 = ids(), ids()
    created_accounts(client, account(a1), account(a2))

    held_once = threading.Event()

    def hold_first(frame):
        if frame.command == COMMAND_REPLY and frame.operation == OPERATION_CREATE_TRANSFERS \
                and not held_once.is_set():
            held_once.set()
            return True
        return False

    proxy.hold_replies = hold_first
    sizes = [3, 1, 2, 0, 1, 2]  # the first call is in flight, the others queue behind it
    calls = [[transfer(ids(), a1, a2, 1 + n, code=1 + index) for n in range(size)]
             for index, size in enumerate(sizes)]
    outcomes = [None] * len(calls)

    def run(index):
        try:
            outcomes[index] = client.create_transfers(calls[index])
        except BaseException as error:  # noqa: BLE001 — checked below
            outcomes[index] = error

    threads = [threading.Thread(target=run, args=(0,), daemon=True)]
    threads[0].start()
    wait_until(held_once.is_set, 30, "the first reply")
    for index in range(1, len(calls)):
        threads.append(threading.Thread(target=run, args=(index,), daemon=True))
        threads[-1].start()
    time.sleep(0.3)  # let every queued call reach the client before the retransmission
    for thread in threads:
        thread.join(60)
        assert not thread.is_alive(), "a call never completed"

    for index, outcome in enumerate(outcomes):
        assert not isinstance(outcome, BaseException), outcome
        assert statuses(outcome) == [T.CREATED] * sizes[index], f"call {index}"
    found = {t.id: t for t in client.lookup_transfers([t.id for c in calls for t in c])}
    for index, call in enumerate(calls):
        assert [found[t.id].code for t in call] == [1 + index] * len(call)
    assert balances(client, a1)[1] == sum(t.amount for c in calls for t in c)

    batch_counts = [u(f.body, len(f.body) - 2, 2) for f in proxy.requests
                    if f.operation == OPERATION_CREATE_TRANSFERS]
    print(f"batches per create_transfers request: {batch_counts}")
    assert max(batch_counts) >= 2, "the client never packed calls; nothing was tested"


def test_packed_lookups(fresh_server, make_client, frame_proxy, ids):
    proxy = frame_proxy(fresh_server.port)
    client = make_client(proxy.port)
    accounts = [ids() for _ in range(5)]
    created_accounts(client, *(account(a, user_data_32=i) for i, a in enumerate(accounts)))
    held_once = threading.Event()

    def hold_first(frame):
        if frame.command == COMMAND_REPLY and frame.operation == OPERATION_LOOKUP_ACCOUNTS \
                and not held_once.is_set():
            held_once.set()
            return True
        return False

    proxy.hold_replies = hold_first
    wanted = [[accounts[0]], [accounts[1], ids(), accounts[2]], [], [accounts[4], accounts[4]]]
    outcomes = [None] * len(wanted)

    def run(index):
        outcomes[index] = client.lookup_accounts(wanted[index])

    threads = [threading.Thread(target=run, args=(0,), daemon=True)]
    threads[0].start()
    wait_until(held_once.is_set, 30, "the first reply")
    for index in range(1, len(wanted)):
        threads.append(threading.Thread(target=run, args=(index,), daemon=True))
        threads[-1].start()
    time.sleep(0.3)
    for thread in threads:
        thread.join(60)
        assert not thread.is_alive(), "a call never completed"
    assert [[a.user_data_32 for a in outcome] for outcome in outcomes] == \
        [[0], [1, 2], [], [4, 4]]
    batch_counts = [u(f.body, len(f.body) - 2, 2) for f in proxy.requests
                    if f.operation == OPERATION_LOOKUP_ACCOUNTS]
    print(f"batches per lookup_accounts request: {batch_counts}")
    assert max(batch_counts) >= 2, "the client never packed calls; nothing was tested"
