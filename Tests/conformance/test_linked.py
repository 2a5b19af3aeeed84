"""Linked chains of transfers: rollback, chain_open, `exists` breaking a chain, transient failures
inside chains (burned despite the rollback), multi-debit chains with balancing
(state-machine spec 4.4, 8.8, 8.11, 8.12)."""

from conftest import (AF, MAX128, T, TF, account, balances, created_accounts, created_transfers,
                      lookup_transfer, statuses, transfer)

LNK = TF.LINKED
DNC = AF.DEBITS_MUST_NOT_EXCEED_CREDITS
CND = AF.CREDITS_MUST_NOT_EXCEED_DEBITS


def test_failed_chain_rolls_back_and_ids_stay_usable(client, ids, ledgers):
    """Spec 8.8."""
    ledger = ledgers()
    a1, a2 = ids(), ids()
    created_accounts(client, account(a1, ledger), account(a2, ledger))
    t1, t2, t3, t4, t9 = (ids() for _ in range(5))
    results = client.create_transfers([transfer(t1, a1, a2, 15, ledger, flags=LNK),
                                       transfer(t2, a1, a2, 15, 0)])
    assert statuses(results) == [T.LINKED_EVENT_FAILED, T.LEDGER_MUST_NOT_BE_ZERO]
    assert results[1].timestamp == results[0].timestamp + 1
    results = client.create_transfers([
        transfer(t3, a1, a2, 15, ledger, flags=LNK | TF.PENDING, timeout=1),
        transfer(t4, a1, a2, 15, 0)])
    assert statuses(results) == [T.LINKED_EVENT_FAILED, T.LEDGER_MUST_NOT_BE_ZERO]
    assert balances(client, a1) == (0, 0, 0, 0)
    assert balances(client, a2) == (0, 0, 0, 0)
    assert client.lookup_transfers([t1, t2, t3, t4]) == []

    results = client.create_transfers([transfer(t9, a1, a2, 1, ledger, flags=LNK)])
    assert statuses(results) == [T.LINKED_EVENT_CHAIN_OPEN]
    assert client.lookup_transfers([t9]) == []

    # Not burned: linked_event_failed and validation failures are not transient.
    created_transfers(client, transfer(t1, a1, a2, 1, ledger), transfer(t2, a1, a2, 1, ledger),
                      transfer(t9, a1, a2, 1, ledger))
    assert balances(client, a1) == (0, 3, 0, 0)


def test_later_events_see_the_rolled_back_state(client, ids, ledgers):
    """Spec 8.8, second part: A1 D<C with credits 20."""
    ledger = ledgers()
    a1, a2, x = ids(), ids(), ids()
    created_accounts(client, account(a1, ledger, flags=DNC), account(a2, ledger),
                     account(x, ledger))
    created_transfers(client, transfer(ids(), x, a1, 20, ledger))
    results = client.create_transfers([transfer(ids(), a1, a2, 15, ledger, flags=LNK),
                                       transfer(ids(), a1, a2, 5, 0),
                                       transfer(ids(), a1, a2, 15, ledger)])
    assert statuses(results) == [T.LINKED_EVENT_FAILED, T.LEDGER_MUST_NOT_BE_ZERO, T.CREATED]
    assert balances(client, a1) == (0, 15, 0, 20)


def test_resubmitted_chain_breaks_at_exists(client, ids, ledgers):
    ledger = ledgers()
    a1, a2 = ids(), ids()
    created_accounts(client, account(a1, ledger), account(a2, ledger))
    chain = [transfer(ids(), a1, a2, 1, ledger, flags=LNK),
             transfer(ids(), a1, a2, 2, ledger, flags=LNK),
             transfer(ids(), a1, a2, 3, ledger)]
    first = client.create_transfers(chain)
    assert statuses(first) == [T.CREATED] * 3
    again = client.create_transfers(chain)
    assert statuses(again) == [T.EXISTS, T.LINKED_EVENT_FAILED, T.LINKED_EVENT_FAILED]
    assert again[0].timestamp == first[0].timestamp
    # A chain whose first member exists does not apply its new members either.
    fresh = transfer(ids(), a1, a2, 100, ledger)
    results = client.create_transfers([chain[0], fresh])
    assert statuses(results) == [T.EXISTS, T.LINKED_EVENT_FAILED]
    assert client.lookup_transfers([fresh.id]) == []
    assert balances(client, a1) == (0, 6, 0, 0)


def test_multi_debit_chain_with_balancing(client, ids, ledgers):
    """Spec 8.11: gather up to 100 from three limited accounts through a control account."""
    ledger = ledgers()
    a1, a2, a3, a4, a5, a6, x = (ids() for _ in range(7))
    created_accounts(client, account(a1, ledger, flags=DNC), account(a2, ledger, flags=DNC),
                     account(a3, ledger, flags=DNC), account(a4, ledger),
                     account(a5, ledger, flags=DNC), account(a6, ledger), account(x, ledger))
    created_transfers(client, transfer(ids(), x, a1, 40, ledger),
                      transfer(ids(), x, a2, 40, ledger), transfer(ids(), x, a3, 21, ledger))
    both = TF.BALANCING_DEBIT | TF.BALANCING_CREDIT
    chain = [transfer(ids(), a4, a5, 100, ledger, flags=LNK),
             transfer(ids(), a1, a4, 100, ledger, flags=LNK | both),
             transfer(ids(), a2, a4, 100, ledger, flags=LNK | both),
             transfer(ids(), a3, a4, 100, ledger, flags=LNK | both),
             transfer(ids(), a4, a6, 100, ledger, flags=LNK),
             transfer(ids(), a5, a4, MAX128, ledger, flags=TF.BALANCING_CREDIT)]
    assert statuses(client.create_transfers(chain)) == [T.CREATED] * 6
    amounts = [t.amount for t in client.lookup_transfers([t.id for t in chain])]
    assert amounts == [100, 40, 40, 20, 100, 100]
    assert balances(client, a1) == (0, 40, 0, 40)
    assert balances(client, a2) == (0, 40, 0, 40)
    assert balances(client, a3) == (0, 20, 0, 21)
    assert balances(client, a4) == (0, 200, 0, 200)
    assert balances(client, a5) == (0, 100, 0, 100)
    assert balances(client, a6) == (0, 0, 0, 100)


def test_multi_debit_chain_short_of_funds_fails_whole(client, ids, ledgers):
    """Spec 8.11 E140: with 19 instead of 21 the last event's clamp yields 101 > 100."""
    ledger = ledgers()
    a1, a2, a3, a4, a5, a6, x = (ids() for _ in range(7))
    created_accounts(client, account(a1, ledger, flags=DNC), account(a2, ledger, flags=DNC),
                     account(a3, ledger, flags=DNC), account(a4, ledger),
                     account(a5, ledger, flags=DNC), account(a6, ledger), account(x, ledger))
    created_transfers(client, transfer(ids(), x, a1, 40, ledger),
                      transfer(ids(), x, a2, 40, ledger), transfer(ids(), x, a3, 19, ledger))
    both = TF.BALANCING_DEBIT | TF.BALANCING_CREDIT
    chain = [transfer(ids(), a4, a5, 100, ledger, flags=LNK),
             transfer(ids(), a1, a4, 100, ledger, flags=LNK | both),
             transfer(ids(), a2, a4, 100, ledger, flags=LNK | both),
             transfer(ids(), a3, a4, 100, ledger, flags=LNK | both),
             transfer(ids(), a4, a6, 100, ledger, flags=LNK),
             transfer(ids(), a5, a4, MAX128, ledger, flags=TF.BALANCING_CREDIT)]
    assert statuses(client.create_transfers(chain)) == [T.LINKED_EVENT_FAILED] * 5 + \
        [T.EXCEEDS_CREDITS]
    assert client.lookup_transfers([t.id for t in chain]) == []
    for a, credits in ((a1, 40), (a2, 40), (a3, 19)):
        assert balances(client, a) == (0, 0, 0, credits)
    for a in (a4, a5, a6):
        assert balances(client, a) == (0, 0, 0, 0)
    # The event that failed with a transient code is burned; the rolled-back ones are not.
    results = client.create_transfers([chain[5], transfer(chain[0].id, a4, a5, 1, ledger)])
    assert statuses(results) == [T.ID_ALREADY_FAILED, T.CREATED]


def test_transient_failure_inside_chain_burns_the_id(client, ids, ledgers):
    """Spec 8.12 (E141–E147)."""
    ledger = ledgers()
    a1, a2, a3, x = ids(), ids(), ids(), ids()
    created_accounts(client, account(a1, ledger), account(a2, ledger),
                     account(a3, ledger, flags=CND), account(x, ledger))
    created_transfers(client, transfer(ids(), a2, x, 40, ledger))  # A2 (0, 40, 0, 0)
    t1, t2, t3, t4, t5, t6 = (ids() for _ in range(6))
    results = client.create_transfers([
        transfer(t1, a1, a2, 41, ledger, flags=LNK),
        transfer(t2, a2, a3, 1, ledger, flags=TF.PENDING | TF.BALANCING_DEBIT | LNK),
        transfer(t3, 0, 0, 0, 0, 0, flags=TF.VOID_PENDING_TRANSFER, pending_id=t2)])
    assert statuses(results) == [T.LINKED_EVENT_FAILED, T.EXCEEDS_DEBITS,
                                 T.LINKED_EVENT_FAILED]
    results = client.create_transfers([transfer(t1, a1, a2, 0, ledger),
                                       transfer(t2, a2, a3, 0, ledger),
                                       transfer(t3, a2, a3, 0, ledger)])
    assert statuses(results) == [T.CREATED, T.ID_ALREADY_FAILED, T.CREATED]
    results = client.create_transfers([
        transfer(t4, a1, a2, 40, ledger, flags=LNK),
        transfer(t5, a2, a3, 1, ledger, flags=TF.PENDING | TF.BALANCING_DEBIT | LNK),
        transfer(t6, 0, 0, 0, 0, 0, flags=TF.VOID_PENDING_TRANSFER, pending_id=t5)])
    assert statuses(results) == [T.CREATED] * 3
    assert lookup_transfer(client, t5).amount == 0
    assert balances(client, a1) == (0, 40, 0, 0)
    assert balances(client, a2) == (0, 40, 0, 40)
    assert balances(client, a3) == (0, 0, 0, 0)
