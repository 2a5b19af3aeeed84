"""Imported events: user-supplied timestamps for accounts and transfers, their range, regress,
advance and postdate checks, mixing imported and non-imported events, imported pending transfers
and chains (state-machine spec 4.4, 5.1, 5.2 step 13, 5.4 step 20, 5.6 step 28, 8.13).

The spec's examples use a clock at 18..40; a real server's clock is the wall clock, so every
imported timestamp here is P + k, where P is the server's current operation timestamp probed with
`server_timestamp` (nothing exists with a timestamp above P, and the next batch's timestamp
exceeds P by more than its event count). Each test runs on a server of its own: imported
timestamps must be newer than every account and transfer."""

import pytest
import tigerbeetle as tb

from conftest import (AF, MAX64, T, TF, S, TS_MAX, account, created_accounts, lookup_account,
                      lookup_transfer, server_timestamp, statuses, transfer)

IMP_A = AF.IMPORTED
IMP_T = TF.IMPORTED


@pytest.fixture
def solo(fresh_server, make_client):
    return make_client(fresh_server.port)


def test_imported_accounts_and_transfers(solo, ids):
    """Spec 8.13 E148–E166."""
    client = solo
    p = server_timestamp(client)
    a1, a2, a3, a4 = ids(), ids(), ids(), ids()
    events = [
        (account(a1, flags=IMP_A, timestamp=0), S.IMPORTED_EVENT_TIMESTAMP_OUT_OF_RANGE),
        (account(a1, flags=IMP_A, timestamp=MAX64 - 1), S.IMPORTED_EVENT_TIMESTAMP_OUT_OF_RANGE),
        (account(a1, flags=IMP_A, timestamp=TS_MAX), S.IMPORTED_EVENT_TIMESTAMP_MUST_NOT_ADVANCE),
        (account(a1, flags=IMP_A, timestamp=p + 2), S.CREATED),
        (account(a2, flags=IMP_A, timestamp=p + 1), S.IMPORTED_EVENT_TIMESTAMP_MUST_NOT_REGRESS),
        (account(a2, flags=IMP_A, timestamp=p + 3), S.CREATED),
        (account(a3, flags=IMP_A, timestamp=p + 6), S.CREATED),
    ]
    results = client.create_accounts([event for event, _ in events])
    assert statuses(results) == [status for _, status in events]
    assert [results[i].timestamp for i in (3, 5, 6)] == [p + 2, p + 3, p + 6]
    stored = lookup_account(client, a1)
    assert (stored.timestamp, stored.flags) == (p + 2, IMP_A)

    events = [
        (account(a2, flags=IMP_A, timestamp=TS_MAX), S.IMPORTED_EVENT_TIMESTAMP_MUST_NOT_ADVANCE),
        (account(a2, flags=IMP_A, timestamp=p + 1), S.EXISTS),
        (account(a2, flags=IMP_A, timestamp=p + 3), S.EXISTS),
        (account(a2, flags=IMP_A, timestamp=p + 4), S.EXISTS),
    ]
    results = client.create_accounts([event for event, _ in events])
    assert statuses(results) == [status for _, status in events]
    assert [r.timestamp for r in results[1:]] == [p + 3] * 3

    t1, t2, t3 = ids(), ids(), ids()
    events = [
        (transfer(t1, a1, a2, 3, flags=IMP_T, timestamp=0),
         T.IMPORTED_EVENT_TIMESTAMP_OUT_OF_RANGE),
        (transfer(t1, a1, a2, 3, flags=IMP_T, timestamp=MAX64 - 1),
         T.IMPORTED_EVENT_TIMESTAMP_OUT_OF_RANGE),
        (transfer(t1, a1, a2, 3, flags=IMP_T, timestamp=TS_MAX),
         T.IMPORTED_EVENT_TIMESTAMP_MUST_NOT_ADVANCE),
        (transfer(t1, a1, a2, 3, flags=IMP_T, timestamp=p + 2),
         T.IMPORTED_EVENT_TIMESTAMP_MUST_NOT_REGRESS),  # = A1's timestamp
        (transfer(t1, a1, a2, 3, flags=IMP_T, timestamp=p + 3),
         T.IMPORTED_EVENT_TIMESTAMP_MUST_NOT_REGRESS),  # = A2's timestamp
        (transfer(t1, a3, a2, 3, flags=IMP_T, timestamp=p + 4),
         T.IMPORTED_EVENT_TIMESTAMP_MUST_POSTDATE_DEBIT_ACCOUNT),
        (transfer(t1, a1, a3, 3, flags=IMP_T, timestamp=p + 4),
         T.IMPORTED_EVENT_TIMESTAMP_MUST_POSTDATE_CREDIT_ACCOUNT),
        (transfer(t1, a1, a2, 3, flags=IMP_T, timestamp=p + 4), T.CREATED),
        (transfer(t2, a1, a2, 3, flags=IMP_T, timestamp=p + 3),
         T.IMPORTED_EVENT_TIMESTAMP_MUST_NOT_REGRESS),
        (transfer(t2, a1, a2, 3, flags=IMP_T, timestamp=p + 5), T.CREATED),
    ]
    results = client.create_transfers([event for event, _ in events])
    assert statuses(results) == [status for _, status in events]
    assert lookup_transfer(client, t1).timestamp == p + 4

    events = [
        (transfer(t2, a1, a2, 3, flags=IMP_T, timestamp=TS_MAX),
         T.IMPORTED_EVENT_TIMESTAMP_MUST_NOT_ADVANCE),
        (transfer(t2, a1, a2, 3, flags=IMP_T, timestamp=p + 4), T.EXISTS),
        (transfer(t2, a1, a2, 3, flags=IMP_T, timestamp=p + 5), T.EXISTS),
        (transfer(t2, a1, a2, 3, flags=IMP_T, timestamp=p + 6), T.EXISTS),
        (transfer(t3, a1, a2, 3, flags=IMP_T, timestamp=p + 10), T.CREATED),
    ]
    results = client.create_transfers([event for event, _ in events])
    assert statuses(results) == [status for _, status in events]
    assert [r.timestamp for r in results[1:]] == [p + 5] * 3 + [p + 10]

    (result,) = client.create_accounts([account(a4, flags=IMP_A, timestamp=p + 10)])
    assert result.status == S.IMPORTED_EVENT_TIMESTAMP_MUST_NOT_REGRESS  # T3 has p + 10
    # Non-imported events keep getting the server's own (larger) timestamps.
    (timestamp,) = created_accounts(client, account(a4))
    assert timestamp > p + 10


def test_mixing_imported_and_not(solo, ids):
    client = solo
    p = server_timestamp(client)
    a1, a2, a3, a4 = ids(), ids(), ids(), ids()
    results = client.create_accounts([account(a1, flags=IMP_A, timestamp=p + 1),
                                      account(a2),
                                      account(a2, flags=IMP_A, timestamp=p + 2)])
    assert statuses(results) == [S.CREATED, S.IMPORTED_EVENT_EXPECTED, S.CREATED]
    results = client.create_accounts([account(a3), account(a4, flags=IMP_A, timestamp=p + 3)])
    assert statuses(results) == [S.CREATED, S.IMPORTED_EVENT_NOT_EXPECTED]

    q = server_timestamp(client)
    t1, t2, t3, t4 = ids(), ids(), ids(), ids()
    results = client.create_transfers([transfer(t1, a1, a2, 1, flags=IMP_T, timestamp=q + 1),
                                       transfer(t2, a1, a2, 1),
                                       transfer(t2, a1, a2, 1, flags=IMP_T, timestamp=q + 2)])
    assert statuses(results) == [T.CREATED, T.IMPORTED_EVENT_EXPECTED, T.CREATED]
    results = client.create_transfers([transfer(t3, a1, a2, 1),
                                       transfer(t4, a1, a2, 1, flags=IMP_T, timestamp=q + 3)])
    assert statuses(results) == [T.CREATED, T.IMPORTED_EVENT_NOT_EXPECTED]
    # A non-imported event may not carry a timestamp.
    results = client.create_transfers([transfer(t4, a1, a2, 1, timestamp=q + 3)])
    assert statuses(results) == [T.TIMESTAMP_MUST_BE_ZERO]


def test_imported_pending_and_post(solo, ids):
    client = solo
    p = server_timestamp(client)
    a1, a2 = ids(), ids()
    results = client.create_accounts([account(a1, flags=IMP_A, timestamp=p + 1),
                                      account(a2, flags=IMP_A, timestamp=p + 2)])
    assert statuses(results) == [S.CREATED, S.CREATED]
    t2, t3 = ids(), ids()
    results = client.create_transfers([
        transfer(t2, a1, a2, 4, flags=IMP_T | TF.PENDING, timeout=1, timestamp=p + 3),
        transfer(t2, a1, a2, 4, flags=IMP_T | TF.PENDING, timestamp=p + 4),
        tb.Transfer(id=t3, pending_id=t2, amount=4,
                    flags=IMP_T | TF.POST_PENDING_TRANSFER, timestamp=p + 5)])
    assert statuses(results) == [T.IMPORTED_EVENT_TIMEOUT_MUST_BE_ZERO, T.CREATED, T.CREATED]
    posted = lookup_transfer(client, t3)
    assert (posted.timestamp, posted.amount, posted.debit_account_id) == (p + 5, 4, a1)
    a = lookup_account(client, a1)
    assert (a.debits_pending, a.debits_posted) == (0, 4)


def test_imported_chain_rolls_back(solo, ids):
    client = solo
    p = server_timestamp(client)
    a1, a2, a3 = ids(), ids(), ids()
    lnk = AF.LINKED | IMP_A
    results = client.create_accounts([account(a1, flags=lnk, timestamp=p + 1),
                                      account(a2, flags=lnk, timestamp=p + 2),
                                      account(a3, flags=IMP_A, timestamp=0)])
    assert statuses(results) == [S.LINKED_EVENT_FAILED, S.LINKED_EVENT_FAILED,
                                 S.IMPORTED_EVENT_TIMESTAMP_OUT_OF_RANGE]
    # Rolled-back members report the imported timestamps they had been applied with.
    assert [results[0].timestamp, results[1].timestamp] == [p + 1, p + 2]
    assert client.lookup_accounts([a1, a2, a3]) == []
    results = client.create_accounts([account(a1, flags=lnk, timestamp=p + 1),
                                      account(a2, flags=lnk, timestamp=p + 2),
                                      account(a3, flags=IMP_A, timestamp=p + 3)])
    assert statuses(results) == [S.CREATED] * 3
    assert [a.timestamp for a in client.lookup_accounts([a1, a2, a3])] == [p + 1, p + 2, p + 3]
