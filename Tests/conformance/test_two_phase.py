"""Two-phase transfers: pending, post (partial, full, zero, MAX pun), void, every failure of the
post/void path, idempotency of posts, and expiry by the server's own pulse
(state-machine spec 5.6, 5.7, 7, 8.6, 8.7).

Expiry waits poll with a generous deadline instead of sleeping a fixed time; timeouts are 1–2 s."""

import tigerbeetle as tb

from conftest import (MAX128, T, TF, account, balances, created_accounts, created_transfers,
                      lookup_transfer, statuses, transfer, wait_until)

PEN, POS, VOI = TF.PENDING, TF.POST_PENDING_TRANSFER, TF.VOID_PENDING_TRANSFER
EXPIRY_DEADLINE_S = 15.0


def post(id, pending_id, amount, **fields):
    return tb.Transfer(id=id, pending_id=pending_id, amount=amount, flags=fields.pop("flags", POS),
                       **fields)


def void(id, pending_id, amount=0, **fields):
    return tb.Transfer(id=id, pending_id=pending_id, amount=amount, flags=fields.pop("flags", VOI),
                       **fields)


def test_post_and_void_paths(client, ids, ledgers):
    """Spec 8.6 requests 1–4 (T4 expires after 1 s by the server's pulse)."""
    ledger = ledgers()
    a1, a2 = ids(), ids()
    a8, a9 = ids(), ids()  # never created
    created_accounts(client, account(a1, ledger), account(a2, ledger))
    t1, t2, t3, t4, t5, t6, t7 = (ids() for _ in range(7))
    ud9 = dict(user_data_128=9, user_data_64=9, user_data_32=9)
    created_transfers(client,
                      transfer(t1, a1, a2, 15, ledger),
                      transfer(t2, a1, a2, 15, ledger, flags=PEN, timeout=1000),
                      transfer(t3, a1, a2, 15, ledger, flags=PEN, timeout=50),
                      transfer(t4, a1, a2, 15, ledger, flags=PEN, timeout=1),
                      transfer(t5, a1, a2, 7, ledger, flags=PEN, timeout=50, **ud9),
                      transfer(t6, a1, a2, 1, ledger, flags=PEN),
                      transfer(t7, a1, a2, 1, ledger, flags=PEN))
    assert balances(client, a1) == (54, 15, 0, 0)
    assert balances(client, a2) == (0, 0, 54, 15)
    wait_until(lambda: balances(client, a1) == (39, 15, 0, 0), EXPIRY_DEADLINE_S,
               "the pulse to expire T4")
    assert balances(client, a2) == (0, 0, 39, 15)

    t101, t102, t103, t104, t105, t106, t107 = (ids() for _ in range(7))
    ud1 = dict(user_data_128=1, user_data_64=1, user_data_32=1)
    all_three = PEN | POS | VOI
    request_2 = [
        (post(t101, t2, 13, ledger=ledger, code=1, **ud1), T.CREATED),
        (transfer(0, a8, a9, 16, 6, 7, flags=all_three, pending_id=0, timeout=50, timestamp=1),
         T.TIMESTAMP_MUST_BE_ZERO),
        (transfer(0, a8, a9, 16, 6, 7, flags=all_three, timeout=50), T.ID_MUST_NOT_BE_ZERO),
        (transfer(MAX128, a8, a9, 16, 6, 7, flags=all_three, timeout=50),
         T.ID_MUST_NOT_BE_INT_MAX),
        (void(t101, t3, 15), T.EXISTS_WITH_DIFFERENT_FLAGS),
        (post(t101, t2, 14), T.EXISTS_WITH_DIFFERENT_AMOUNT),
        (post(t101, t2, 0), T.EXISTS_WITH_DIFFERENT_AMOUNT),
        (post(t101, t3, 13), T.EXISTS_WITH_DIFFERENT_PENDING_ID),
        (post(t101, t2, 13, user_data_128=2, user_data_64=2, user_data_32=2),
         T.EXISTS_WITH_DIFFERENT_USER_DATA_128),
        (post(t101, t2, 13, user_data_128=1, user_data_64=2, user_data_32=2),
         T.EXISTS_WITH_DIFFERENT_USER_DATA_64),
        (post(t101, t2, 13, user_data_128=1, user_data_64=1, user_data_32=2),
         T.EXISTS_WITH_DIFFERENT_USER_DATA_32),
        (post(t101, t2, 13, **ud1), T.EXISTS),
        (transfer(t102, a8, a9, 16, 6, 7, flags=all_three, timeout=50),
         T.FLAGS_ARE_MUTUALLY_EXCLUSIVE),
        (transfer(t102, a8, a9, 16, 6, 7, flags=all_three | TF.BALANCING_DEBIT, timeout=50),
         T.FLAGS_ARE_MUTUALLY_EXCLUSIVE),
        (transfer(t102, a8, a9, 16, 6, 7, flags=PEN | VOI, timeout=50),
         T.FLAGS_ARE_MUTUALLY_EXCLUSIVE),
        (transfer(t102, a8, a9, 16, 6, 7, flags=VOI | TF.BALANCING_DEBIT, timeout=50),
         T.FLAGS_ARE_MUTUALLY_EXCLUSIVE),
        (transfer(t102, a8, a9, 16, 6, 7, flags=VOI | TF.BALANCING_CREDIT, timeout=50),
         T.FLAGS_ARE_MUTUALLY_EXCLUSIVE),
        (transfer(t102, a8, a9, 16, 6, 7, flags=POS | TF.BALANCING_DEBIT, timeout=50),
         T.FLAGS_ARE_MUTUALLY_EXCLUSIVE),
        (transfer(t102, a8, a9, 16, 6, 7, flags=POS | TF.CLOSING_DEBIT, timeout=50),
         T.FLAGS_ARE_MUTUALLY_EXCLUSIVE),
        (transfer(t102, a8, a9, 16, 6, 7, flags=VOI | TF.CLOSING_CREDIT, timeout=50),
         T.FLAGS_ARE_MUTUALLY_EXCLUSIVE),
        (transfer(t102, a8, a9, 16, 6, 7, flags=VOI, pending_id=0, timeout=50),
         T.PENDING_ID_MUST_NOT_BE_ZERO),
        (transfer(t102, a8, a9, 16, 6, 7, flags=VOI, pending_id=MAX128, timeout=50),
         T.PENDING_ID_MUST_NOT_BE_INT_MAX),
        (transfer(t102, a8, a9, 16, 6, 7, flags=VOI, pending_id=t102, timeout=50),
         T.PENDING_ID_MUST_BE_DIFFERENT),
        (transfer(t102, a8, a9, 16, 6, 7, flags=VOI, pending_id=t103, timeout=50),
         T.TIMEOUT_RESERVED_FOR_PENDING_TRANSFER),
    ]
    results = client.create_transfers([event for event, _ in request_2])
    assert statuses(results) == [status for _, status in request_2]
    assert results[11].timestamp == results[0].timestamp  # `exists` reports T101's timestamp
    assert balances(client, a1) == (24, 28, 0, 0)  # T2 posted 13 of 15

    request_3 = [
        (transfer(t102, a8, a9, 16, flags=VOI, pending_id=t103, ledger=0, code=0),
         T.PENDING_TRANSFER_NOT_FOUND),
        (transfer(t102, a1, a2, 13, ledger), T.ID_ALREADY_FAILED),
        (void(t103, t1), T.PENDING_TRANSFER_NOT_PENDING),
        (void(t103, t3, debit_account_id=a8, credit_account_id=a9),
         T.PENDING_TRANSFER_HAS_DIFFERENT_DEBIT_ACCOUNT_ID),
        (void(t103, t3, debit_account_id=a1, credit_account_id=a9),
         T.PENDING_TRANSFER_HAS_DIFFERENT_CREDIT_ACCOUNT_ID),
        (void(t103, t3, debit_account_id=a1, credit_account_id=a2, ledger=ledger + 5),
         T.PENDING_TRANSFER_HAS_DIFFERENT_LEDGER),
        (void(t103, t3, ledger=ledger, code=7), T.PENDING_TRANSFER_HAS_DIFFERENT_CODE),
        (void(t103, t3, 16, debit_account_id=a1, credit_account_id=a2, ledger=ledger, code=1),
         T.EXCEEDS_PENDING_TRANSFER_AMOUNT),
        (void(t103, t3, 14), T.PENDING_TRANSFER_HAS_DIFFERENT_AMOUNT),
        (post(t103, t2, 13), T.PENDING_TRANSFER_ALREADY_POSTED),
        (void(t103, t3, 15, **ud1), T.CREATED),
        (post(t104, t3, 13), T.PENDING_TRANSFER_ALREADY_VOIDED),
        (void(t104, t4, 15), T.PENDING_TRANSFER_EXPIRED),
    ]
    results = client.create_transfers([event for event, _ in request_3])
    assert statuses(results) == [status for _, status in request_3]
    assert balances(client, a1) == (9, 28, 0, 0)

    request_4 = [
        (post(t101, t2, 14), T.EXISTS_WITH_DIFFERENT_AMOUNT),
        (post(t101, t2, 12), T.EXISTS_WITH_DIFFERENT_AMOUNT),
        (post(t105, t5, 8), T.EXCEEDS_PENDING_TRANSFER_AMOUNT),
        (post(t105, t5, MAX128), T.CREATED),
        (post(t105, t5, 7, ledger=ledger, code=1), T.EXISTS),
        (post(t105, t5, 7), T.EXISTS),
        (post(t105, t5, MAX128), T.EXISTS),
        (post(t105, t5, 8), T.EXISTS_WITH_DIFFERENT_AMOUNT),
        (post(t105, t5, 6), T.EXISTS_WITH_DIFFERENT_AMOUNT),
        (post(t105, t5, 0), T.EXISTS_WITH_DIFFERENT_AMOUNT),
        (post(t106, t6, MAX128 - 1), T.EXCEEDS_PENDING_TRANSFER_AMOUNT),
        (post(t106, t6, MAX128), T.CREATED),
        (post(t106, t6, MAX128), T.EXISTS),
        (post(t106, t6, 1), T.EXISTS),
        (post(t106, t6, 2), T.EXISTS_WITH_DIFFERENT_AMOUNT),
        (post(t106, t6, 0), T.EXISTS_WITH_DIFFERENT_AMOUNT),
        (post(t107, t7, 0), T.CREATED),
        (post(t107, t7, 0), T.EXISTS),
        (post(t107, t7, 1), T.EXISTS_WITH_DIFFERENT_AMOUNT),
    ]
    results = client.create_transfers([event for event, _ in request_4])
    assert statuses(results) == [status for _, status in request_4]

    assert balances(client, a1) == (0, 36, 0, 0)
    assert balances(client, a2) == (0, 0, 0, 36)
    stored = {t.id: t for t in client.lookup_transfers([t101, t103, t105, t106, t107])}
    assert [stored[i].amount for i in (t101, t103, t105, t106, t107)] == [13, 15, 7, 1, 0]
    # A post/void inherits accounts, ledger and code, and each user_data field it leaves zero.
    p = stored[t105]
    assert (p.debit_account_id, p.credit_account_id, p.ledger, p.code, p.timeout) == \
        (a1, a2, ledger, 1, 0)
    assert (p.user_data_128, p.user_data_64, p.user_data_32) == (9, 9, 9)
    assert (p.pending_id, p.flags) == (t5, POS)
    v = stored[t103]
    assert (v.user_data_128, v.user_data_64, v.user_data_32, v.flags) == (1, 1, 1, VOI)
    # The pending transfers themselves never change.
    assert lookup_transfer(client, t4).flags == PEN
    assert lookup_transfer(client, t4).amount == 15
    assert client.lookup_transfers([t102, t104]) == []


def test_post_full_amount_of_max(client, ids, ledgers):
    ledger = ledgers()
    a1, a2, t1, t2 = ids(), ids(), ids(), ids()
    created_accounts(client, account(a1, ledger), account(a2, ledger))
    created_transfers(client, transfer(t1, a1, a2, MAX128, ledger, flags=PEN))
    assert balances(client, a1) == (MAX128, 0, 0, 0)
    created_transfers(client, post(t2, t1, MAX128))
    assert statuses(client.create_transfers([post(t2, t1, MAX128)])) == [T.EXISTS]
    assert balances(client, a1) == (0, MAX128, 0, 0)
    assert balances(client, a2) == (0, 0, 0, MAX128)


def test_expiry_timeline(client, ids, ledgers):
    """Spec 8.7 with 1 s and 2 s timeouts: expiries release pending balances in order; posting an
    expired transfer fails, posting one without a timeout succeeds."""
    ledger = ledgers()
    a1, a2 = ids(), ids()
    created_accounts(client, account(a1, ledger), account(a2, ledger))
    t1, t2, t3 = ids(), ids(), ids()
    created_transfers(client, transfer(t1, a1, a2, 10, ledger, flags=PEN),
                      transfer(t2, a1, a2, 11, ledger, flags=PEN, timeout=1),
                      transfer(t3, a1, a2, 12, ledger, flags=PEN, timeout=2))
    seen = [balances(client, a1)]
    assert seen[0] == (33, 0, 0, 0)

    def settled():
        seen.append(balances(client, a1))
        return seen[-1] == (10, 0, 0, 0)

    wait_until(settled, EXPIRY_DEADLINE_S, "the pulses to expire T2 and T3")
    # Only these states can ever be observed, in this order.
    allowed = [(33, 0, 0, 0), (22, 0, 0, 0), (10, 0, 0, 0)]
    positions = [allowed.index(state) for state in seen]
    assert positions == sorted(positions)
    assert balances(client, a2) == (0, 0, 10, 0)

    results = client.create_transfers([post(ids(), t1, 10), post(ids(), t2, 11),
                                       void(ids(), t3)])
    assert statuses(results) == [T.CREATED, T.PENDING_TRANSFER_EXPIRED,
                                 T.PENDING_TRANSFER_EXPIRED]
    assert balances(client, a1) == (0, 10, 0, 0)
    assert balances(client, a2) == (0, 0, 0, 10)


def test_post_before_timeout_cancels_the_expiry(client, ids, ledgers):
    ledger = ledgers()
    a1, a2 = ids(), ids()
    created_accounts(client, account(a1, ledger), account(a2, ledger))
    t1, t2, marker = ids(), ids(), ids()
    created_transfers(client, transfer(t1, a1, a2, 5, ledger, flags=PEN, timeout=1),
                      transfer(marker, a2, a1, 3, ledger, flags=PEN, timeout=1))
    created_transfers(client, post(t2, t1, 4))
    # The marker expiring shows that the pulses ran past T1's deadline too.
    wait_until(lambda: balances(client, a2)[0] == 0, EXPIRY_DEADLINE_S, "the marker to expire")
    assert balances(client, a1) == (0, 4, 0, 0)
    assert balances(client, a2) == (0, 0, 0, 4)
    # Voiding or re-posting the already posted transfer fails with the posted status.
    results = client.create_transfers([void(ids(), t1), post(ids(), t1, 1)])
    assert statuses(results) == [T.PENDING_TRANSFER_ALREADY_POSTED,
                                 T.PENDING_TRANSFER_ALREADY_POSTED]


def test_void_releases_and_zero_means_full(client, ids, ledgers):
    ledger = ledgers()
    a1, a2, t1, t2 = ids(), ids(), ids(), ids()
    created_accounts(client, account(a1, ledger), account(a2, ledger))
    created_transfers(client, transfer(t1, a1, a2, 8, ledger, flags=PEN, timeout=3600))
    assert balances(client, a1) == (8, 0, 0, 0)
    created_transfers(client, void(t2, t1, 0))
    assert lookup_transfer(client, t2).amount == 8
    assert balances(client, a1) == (0, 0, 0, 0)
    assert balances(client, a2) == (0, 0, 0, 0)
    assert statuses(client.create_transfers([void(t2, t1, 8), void(t2, t1, 0),
                                             void(t2, t1, 7)])) == \
        [T.EXISTS, T.EXISTS, T.EXISTS_WITH_DIFFERENT_AMOUNT]
