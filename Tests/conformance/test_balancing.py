"""Balancing transfers: clamping by either side, with and without limit flags, pending, MAX,
idempotency of clamped amounts, and the limit checks after clamping
(state-machine spec 5.5, 5.7, 8.9, 8.10)."""

from conftest import (AF, MAX128, T, TF, account, balances, created_accounts, created_transfers,
                      statuses, transfer)

BDR, BCR, PEN = TF.BALANCING_DEBIT, TF.BALANCING_CREDIT, TF.PENDING
DNC = AF.DEBITS_MUST_NOT_EXCEED_CREDITS
CND = AF.CREDITS_MUST_NOT_EXCEED_DEBITS


def amounts(client, transfers):
    return [t.amount for t in client.lookup_transfers([t.id for t in transfers])]


def test_balancing_clamps_to_the_limits(client, ids, ledgers):
    """Spec 8.9 (E123–E135)."""
    ledger, other = ledgers(), ledgers()
    a1, a2, a3, x, y = (ids() for _ in range(5))
    created_accounts(client, account(a1, ledger, flags=DNC), account(a2, ledger, flags=CND),
                     account(a3, ledger), account(x, ledger), account(y, ledger))
    # A1 D<C (1, 0, 0, 10); A2 C<D (0, 10, 2, 0).
    created_transfers(client, transfer(ids(), x, a1, 10, ledger),
                      transfer(ids(), a1, y, 1, ledger, flags=PEN),
                      transfer(ids(), a2, y, 10, ledger),
                      transfer(ids(), x, a2, 2, ledger, flags=PEN))
    assert balances(client, a1) == (1, 0, 0, 10)
    assert balances(client, a2) == (0, 10, 2, 0)

    t1, t2, t3, t4, t5, t6, t7 = (ids() for _ in range(7))
    events = [
        (transfer(t1, a1, a3, 3, other, flags=BDR),
         T.TRANSFER_MUST_HAVE_THE_SAME_LEDGER_AS_ACCOUNTS),
        (transfer(t1, a1, a3, 3, ledger, flags=BDR), T.CREATED),
        (transfer(t2, a1, a3, 13, ledger, flags=BDR), T.CREATED),
        (transfer(t3, a3, a2, 3, ledger, flags=BCR), T.CREATED),
        (transfer(t4, a3, a2, 13, ledger, flags=BCR), T.CREATED),
        (transfer(t5, a1, a3, 1, ledger, flags=BDR), T.CREATED),
        (transfer(t6, a1, a3, 1, ledger, flags=BDR | BCR), T.CREATED),
        (transfer(t7, a3, a2, 1, ledger, flags=BCR), T.CREATED),
        (transfer(t1, a1, a3, 2, ledger, flags=BDR), T.EXISTS_WITH_DIFFERENT_AMOUNT),
        (transfer(t1, a1, a3, 0, ledger, flags=BDR), T.EXISTS_WITH_DIFFERENT_AMOUNT),
        (transfer(t1, a1, a3, 3, ledger, flags=BDR), T.EXISTS),
        (transfer(t1, a1, a3, 4, ledger, flags=BDR), T.EXISTS),
        (transfer(t2, a1, a3, 6, ledger, flags=BDR), T.EXISTS),
        (transfer(t4, a3, a2, 5, ledger, flags=BCR), T.EXISTS),
        (transfer(t4, a3, a2, 6, ledger, flags=BCR), T.EXISTS),
        (transfer(t4, a3, a2, 0, ledger, flags=BCR), T.EXISTS_WITH_DIFFERENT_AMOUNT),
    ]
    results = client.create_transfers([event for event, _ in events])
    assert statuses(results) == [status for _, status in events]
    assert amounts(client, [events[i][0] for i in range(1, 8)]) == [3, 6, 3, 5, 0, 0, 0]
    assert balances(client, a1) == (1, 9, 0, 10)
    assert balances(client, a2) == (0, 10, 2, 8)
    assert balances(client, a3) == (0, 8, 0, 9)


def test_balancing_without_limit_flags(client, ids, ledgers):
    ledger = ledgers()
    a1, a2, a3, x, y = (ids() for _ in range(5))
    created_accounts(client, account(a1, ledger), account(a2, ledger), account(a3, ledger),
                     account(x, ledger), account(y, ledger))
    created_transfers(client, transfer(ids(), x, a1, 10, ledger),
                      transfer(ids(), a1, y, 1, ledger, flags=PEN),
                      transfer(ids(), a2, y, 10, ledger),
                      transfer(ids(), x, a2, 2, ledger, flags=PEN))
    moves = [transfer(ids(), a3, a1, 99, ledger, flags=BDR | BCR),
             transfer(ids(), a1, a3, 99, ledger, flags=BDR),
             transfer(ids(), a3, a2, 99, ledger, flags=BCR)]
    created_transfers(client, *moves)
    assert amounts(client, moves) == [0, 9, 8]


def test_balancing_with_both_flags(client, ids, ledgers):
    ledger = ledgers()
    a1, a2, a3, x, y = (ids() for _ in range(5))
    created_accounts(client, account(a1, ledger, flags=DNC), account(a2, ledger, flags=CND),
                     account(a3, ledger), account(x, ledger), account(y, ledger))
    created_transfers(client, transfer(ids(), x, a1, 20, ledger),
                      transfer(ids(), a2, y, 10, ledger), transfer(ids(), a3, y, 99, ledger))
    both = BDR | BCR
    moves = [transfer(ids(), a1, a2, 1, ledger, flags=both),
             transfer(ids(), a1, a2, 12, ledger, flags=both),
             transfer(ids(), a1, a2, 1, ledger, flags=both),
             transfer(ids(), a1, a3, 12, ledger, flags=both),
             transfer(ids(), a1, a3, 1, ledger, flags=both)]
    created_transfers(client, *moves)
    assert amounts(client, moves) == [1, 9, 0, 10, 0]


def test_pending_balancing_then_posts(client, ids, ledgers):
    ledger = ledgers()
    a1, a2, x, y = (ids() for _ in range(4))
    created_accounts(client, account(a1, ledger, flags=DNC), account(a2, ledger, flags=CND),
                     account(x, ledger), account(y, ledger))
    created_transfers(client, transfer(ids(), x, a1, 10, ledger),
                      transfer(ids(), a2, y, 10, ledger))
    t1, t2, t3 = ids(), ids(), ids()
    pending = [transfer(t1, a1, a2, 3, ledger, flags=PEN | BDR),
               transfer(t2, a1, a2, 13, ledger, flags=PEN | BDR),
               transfer(t3, a1, a2, 1, ledger, flags=PEN | BDR)]
    created_transfers(client, *pending)
    assert amounts(client, pending) == [3, 7, 0]
    assert balances(client, a1) == (10, 0, 0, 10)
    posts = [transfer(ids(), 0, 0, 3, 0, 0, flags=TF.POST_PENDING_TRANSFER, pending_id=t1),
             transfer(ids(), 0, 0, 5, 0, 0, flags=TF.POST_PENDING_TRANSFER, pending_id=t2)]
    created_transfers(client, *posts)
    assert amounts(client, posts) == [3, 5]
    assert balances(client, a1) == (0, 8, 0, 10)
    assert balances(client, a2) == (0, 10, 0, 8)


def test_balancing_max_amount_near_max_balances(client, ids, ledgers):
    ledger = ledgers()
    a1, a2, x = ids(), ids(), ids()
    created_accounts(client, account(a1, ledger, flags=DNC), account(a2, ledger),
                     account(x, ledger))
    created_transfers(client, transfer(ids(), x, a1, MAX128 - 1, ledger))
    move = transfer(ids(), a1, a2, MAX128, ledger, flags=BDR)
    created_transfers(client, move)
    assert amounts(client, [move]) == [MAX128 - 1]
    assert balances(client, a1) == (0, MAX128 - 1, 0, MAX128 - 1)


def test_limits_still_apply_after_clamping(client, ids, ledgers):
    """Spec 8.10 (E136–E139)."""
    ledger = ledgers()
    a1, a2, a3, a4, x = (ids() for _ in range(5))
    created_accounts(client, account(a1, ledger, flags=DNC), account(a2, ledger),
                     account(a3, ledger, flags=CND), account(a4, ledger), account(x, ledger))
    created_transfers(client, transfer(ids(), x, a1, 4, ledger), transfer(ids(), a2, x, 5, ledger),
                      transfer(ids(), a3, x, 4, ledger), transfer(ids(), x, a4, 5, ledger))
    t1, t2, t3, t4 = (ids() for _ in range(4))
    results = client.create_transfers([transfer(t1, a1, a2, 10, ledger, flags=BCR),
                                       transfer(t2, a1, a2, 10, ledger, flags=BDR),
                                       transfer(t3, a4, a3, 10, ledger, flags=BDR),
                                       transfer(t4, a4, a3, 10, ledger, flags=BCR)])
    assert statuses(results) == [T.EXCEEDS_CREDITS, T.CREATED, T.EXCEEDS_DEBITS, T.CREATED]
    assert [t.id for t in client.lookup_transfers([t1, t2, t3, t4])] == [t2, t4]
    assert amounts(client, [transfer(t2), transfer(t4)]) == [4, 4]
    assert balances(client, a1) == (0, 4, 0, 4)
    assert balances(client, a2) == (0, 5, 0, 4)
    assert balances(client, a3) == (0, 4, 0, 4)
    assert balances(client, a4) == (0, 4, 0, 5)
