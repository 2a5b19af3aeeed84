"""create_transfers on the single-phase/pending path: success, every reachable failure in
precedence order, transient failures burning ids, idempotency (state-machine spec 1.7, 5.3–5.5,
5.7, 5.9, 8.4, 8.5).

Not reachable against a real clock: `overflows_timeout` (it needs a timestamp within ~4.3e18 ns
of TS_MAX; spec 8.4 E55 advances the clock to TS_MAX − 3 s, which a client cannot do)."""

import tigerbeetle as tb

from conftest import (AF, MAX128, T, TF, account, balances, created_accounts, created_transfers,
                      lookup_transfer, statuses, transfer)


def test_single_phase_transfer_moves_posted_balances(client, ids, ledgers):
    ledger = ledgers()
    a, b = ids(), ids()
    created_accounts(client, account(a, ledger), account(b, ledger))
    t = transfer(ids(), a, b, 42, ledger, code=7, user_data_128=2**128 - 2, user_data_64=3,
                 user_data_32=4)
    (timestamp,) = created_transfers(client, t)
    assert balances(client, a) == (0, 42, 0, 0)
    assert balances(client, b) == (0, 0, 0, 42)
    stored = lookup_transfer(client, t.id)
    assert stored == tb.Transfer(id=t.id, debit_account_id=a, credit_account_id=b, amount=42,
                                 pending_id=0, user_data_128=2**128 - 2, user_data_64=3,
                                 user_data_32=4, timeout=0, ledger=ledger, code=7,
                                 flags=TF.NONE, timestamp=timestamp)


def test_zero_amount_and_shared_id_space(client, ids, ledgers):
    ledger = ledgers()
    a, b = ids(), ids()
    created_accounts(client, account(a, ledger), account(b, ledger))
    # A transfer may reuse an account's id: the id spaces are separate (spec 2).
    (timestamp,) = created_transfers(client, transfer(a, a, b, 0, ledger))
    assert lookup_transfer(client, a).amount == 0
    assert lookup_transfer(client, a).timestamp == timestamp
    assert balances(client, a) == (0, 0, 0, 0)


def test_precedence_and_idempotency(client, ids, ledgers):
    """Spec 8.4 (except E55) and 8.5, with the setup balances produced by real transfers."""
    l1, l2 = ledgers(), ledgers()
    a1, a2, a3, a4, a5 = ids(), ids(), ids(), ids(), ids()
    x, y, z, w, v = ids(), ids(), ids(), ids(), ids()  # counterparties that build the balances
    a8, a9 = ids(), ids()  # never created
    t1, t2, t3, t4, t5, t6, t7, t8 = (ids() for _ in range(8))
    dnc, cnd = AF.DEBITS_MUST_NOT_EXCEED_CREDITS, AF.CREDITS_MUST_NOT_EXCEED_DEBITS
    created_accounts(client, account(a1, l1), account(a2, l2), account(a3, l1),
                     account(a4, l1, flags=dnc), account(a5, l1, flags=cnd),
                     *(account(c, l1) for c in (x, y, z, w, v)))
    # A1 (100, 200, 0, 0); A3 (0, 0, 110, 210); A4 (20, MAX−700, 0, MAX−500);
    # A5 (0, MAX−1000, 10, MAX−1100).
    created_transfers(client,
                      transfer(ids(), a1, x, 100, l1, flags=TF.PENDING),
                      transfer(ids(), a1, x, 200, l1),
                      transfer(ids(), x, a3, 110, l1, flags=TF.PENDING),
                      transfer(ids(), x, a3, 210, l1),
                      transfer(ids(), y, a4, MAX128 - 500, l1),
                      transfer(ids(), a4, z, MAX128 - 700, l1),
                      transfer(ids(), a4, z, 20, l1, flags=TF.PENDING),
                      transfer(ids(), a5, w, MAX128 - 1000, l1),
                      transfer(ids(), v, a5, MAX128 - 1100, l1),
                      transfer(ids(), v, a5, 10, l1, flags=TF.PENDING))
    assert balances(client, a1) == (100, 200, 0, 0)
    assert balances(client, a3) == (0, 0, 110, 210)
    assert balances(client, a4) == (20, MAX128 - 700, 0, MAX128 - 500)
    assert balances(client, a5) == (0, MAX128 - 1000, 10, MAX128 - 1100)

    pen = TF.PENDING
    bad = dict(amount=9, pending_id=t1, ledger=0, code=0)
    request_1 = [
        (transfer(0, 0, 0, flags=pen | (1 << 9), timestamp=1, **bad), T.TIMESTAMP_MUST_BE_ZERO),
        (transfer(0, 0, 0, flags=pen | (1 << 9), **bad), T.RESERVED_FLAG),
        (transfer(0, 0, 0, flags=pen, **bad), T.ID_MUST_NOT_BE_ZERO),
        (transfer(MAX128, 0, 0, flags=pen, **bad), T.ID_MUST_NOT_BE_INT_MAX),
        (transfer(t1, 0, 0, flags=pen, **bad), T.DEBIT_ACCOUNT_ID_MUST_NOT_BE_ZERO),
        (transfer(t1, MAX128, 0, flags=pen, **bad), T.DEBIT_ACCOUNT_ID_MUST_NOT_BE_INT_MAX),
        (transfer(t1, a8, 0, flags=pen, **bad), T.CREDIT_ACCOUNT_ID_MUST_NOT_BE_ZERO),
        (transfer(t1, a8, MAX128, flags=pen, **bad), T.CREDIT_ACCOUNT_ID_MUST_NOT_BE_INT_MAX),
        (transfer(t1, a8, a8, flags=pen, **bad), T.ACCOUNTS_MUST_BE_DIFFERENT),
        (transfer(t1, a8, a9, flags=pen, **bad), T.PENDING_ID_MUST_BE_ZERO),
        (transfer(t1, a8, a9, 9, 0, 0, timeout=1), T.TIMEOUT_RESERVED_FOR_PENDING_TRANSFER),
        (transfer(t1, a8, a9, 9, 0, 0, flags=TF.CLOSING_DEBIT),
         T.CLOSING_TRANSFER_MUST_BE_PENDING),
        (transfer(t1, a8, a9, 9, 0, 0, flags=TF.CLOSING_CREDIT),
         T.CLOSING_TRANSFER_MUST_BE_PENDING),
        (transfer(t1, a8, a9, 9, 0, 0, flags=pen), T.LEDGER_MUST_NOT_BE_ZERO),
        (transfer(t1, a8, a9, 9, 9, 0, flags=pen), T.CODE_MUST_NOT_BE_ZERO),
        (transfer(t1, a8, a9, 9, 9, 1, flags=pen), T.DEBIT_ACCOUNT_NOT_FOUND),
        (transfer(t1, a1, a3, 123, l1, 1), T.ID_ALREADY_FAILED),
        (transfer(t2, a1, a9, 9, 9, 1, flags=pen), T.CREDIT_ACCOUNT_NOT_FOUND),
        (transfer(t2, a1, a3, 123, l1, 1), T.ID_ALREADY_FAILED),
    ]
    results = client.create_transfers([event for event, _ in request_1])
    assert statuses(results) == [status for _, status in request_1]
    stamps = [r.timestamp for r in results]
    assert stamps == list(range(stamps[0], stamps[0] + len(stamps)))  # all slot timestamps

    request_2 = [
        (transfer(t3, a1, a2, 1, l2, flags=pen), T.ACCOUNTS_MUST_HAVE_THE_SAME_LEDGER),
        (transfer(t3, a1, a3, 1, l2, flags=pen),
         T.TRANSFER_MUST_HAVE_THE_SAME_LEDGER_AS_ACCOUNTS),
        (transfer(t3, a1, a3, MAX128 - 99, l1, flags=pen), T.OVERFLOWS_DEBITS_PENDING),
        (transfer(t3, a1, a3, MAX128 - 109, l1, flags=pen), T.OVERFLOWS_CREDITS_PENDING),
        (transfer(t3, a1, a3, MAX128 - 199, l1, flags=pen), T.OVERFLOWS_DEBITS_POSTED),
        (transfer(t3, a1, a3, MAX128 - 209, l1, flags=pen), T.OVERFLOWS_CREDITS_POSTED),
        (transfer(t3, a1, a3, MAX128 - 299, l1, flags=pen), T.OVERFLOWS_DEBITS),
        (transfer(t3, a1, a3, MAX128 - 319, l1, flags=pen), T.OVERFLOWS_CREDITS),
        (transfer(t3, a4, a5, 199, l1), T.EXCEEDS_CREDITS),
        (transfer(t3, a1, a3, 123, l1), T.ID_ALREADY_FAILED),
        (transfer(t4, a4, a5, 91, l1), T.EXCEEDS_DEBITS),
        (transfer(t4, a1, a3, 123, l1), T.ID_ALREADY_FAILED),
        # timeout 3600 s instead of the spec's 1 s: T5 must stay pending for the whole test.
        (transfer(t5, a1, a3, 123, l1, flags=pen, timeout=3600), T.CREATED),
    ]
    results = client.create_transfers([event for event, _ in request_2])
    assert statuses(results) == [status for _, status in request_2]
    t5_timestamp = results[-1].timestamp

    ud1 = dict(user_data_128=1, user_data_64=1, user_data_32=1)
    request_3 = [
        (transfer(t5, a1, a3, 123, l2, flags=pen, timeout=3600), T.EXISTS_WITH_DIFFERENT_LEDGER),
        (transfer(t5, a1, a3, MAX128, l1, 2, **ud1), T.EXISTS_WITH_DIFFERENT_FLAGS),
        (transfer(t5, a3, a1, MAX128, l1, 2, flags=pen, timeout=3600, **ud1),
         T.EXISTS_WITH_DIFFERENT_DEBIT_ACCOUNT_ID),
        (transfer(t5, a1, a4, MAX128, l1, 2, flags=pen, timeout=3600, **ud1),
         T.EXISTS_WITH_DIFFERENT_CREDIT_ACCOUNT_ID),
        (transfer(t5, a1, a3, MAX128, l1, 1, flags=pen, timeout=3600, **ud1),
         T.EXISTS_WITH_DIFFERENT_AMOUNT),
        (transfer(t5, a1, a3, 123, l1, 1, flags=pen, timeout=3600, **ud1),
         T.EXISTS_WITH_DIFFERENT_USER_DATA_128),
        (transfer(t5, a1, a3, 123, l1, 1, flags=pen, timeout=3600, user_data_64=1,
                  user_data_32=1), T.EXISTS_WITH_DIFFERENT_USER_DATA_64),
        (transfer(t5, a1, a3, 123, l1, 1, flags=pen, timeout=3600, user_data_32=1),
         T.EXISTS_WITH_DIFFERENT_USER_DATA_32),
        (transfer(t5, a1, a3, 123, l1, 2, flags=pen, timeout=2), T.EXISTS_WITH_DIFFERENT_TIMEOUT),
        (transfer(t5, a1, a3, 123, l1, 2, flags=pen, timeout=3600), T.EXISTS_WITH_DIFFERENT_CODE),
        (transfer(t5, a1, a3, 123, l1, 1, flags=pen, timeout=3600), T.EXISTS),
        (transfer(t6, a3, a1, 7, l1, 2), T.CREATED),
        (transfer(t7, a1, a3, 3, l1), T.CREATED),
        (transfer(t8, a1, a3, 0, l1), T.CREATED),
    ]
    results = client.create_transfers([event for event, _ in request_3])
    assert statuses(results) == [status for _, status in request_3]
    assert results[10].timestamp == t5_timestamp

    assert balances(client, a1) == (223, 203, 0, 7)
    assert balances(client, a3) == (0, 7, 233, 213)
    # Failed ids are not transfers.
    assert client.lookup_transfers([t1, t2, t3, t4]) == []
    assert [t.id for t in client.lookup_transfers([t5, t6, t7, t8])] == [t5, t6, t7, t8]


def test_limits_reject_and_burn_ids(client, ids, ledgers):
    ledger = ledgers()
    dnc, cnd = AF.DEBITS_MUST_NOT_EXCEED_CREDITS, AF.CREDITS_MUST_NOT_EXCEED_DEBITS
    a, b, c = ids(), ids(), ids()
    created_accounts(client, account(a, ledger, flags=dnc), account(b, ledger, flags=cnd),
                     account(c, ledger))
    t1, t2, t3 = ids(), ids(), ids()
    results = client.create_transfers([transfer(t1, a, c, 1, ledger),
                                       transfer(t2, c, b, 1, ledger),
                                       transfer(t3, c, a, 5, ledger)])
    assert statuses(results) == [T.EXCEEDS_CREDITS, T.EXCEEDS_DEBITS, T.CREATED]
    # After a is funded, the same ids stay failed; fresh ids go through.
    results = client.create_transfers([transfer(t1, a, c, 1, ledger),
                                       transfer(t2, c, b, 1, ledger),
                                       transfer(ids(), a, c, 5, ledger)])
    assert statuses(results) == [T.ID_ALREADY_FAILED, T.ID_ALREADY_FAILED, T.CREATED]
    assert results[0].timestamp + 1 == results[1].timestamp  # failures report slot timestamps
    results = client.create_transfers([transfer(ids(), a, c, 1, ledger)])
    assert statuses(results) == [T.EXCEEDS_CREDITS]  # 5 + 1 > 5
    assert balances(client, a) == (0, 5, 0, 5)
    assert balances(client, b) == (0, 0, 0, 0)
    assert balances(client, c) == (0, 5, 0, 5)


def test_empty_transfer_batch(client):
    assert client.create_transfers([]) == []
    assert client.lookup_transfers([]) == []
