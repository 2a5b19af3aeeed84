"""Closing accounts: closing transfers must be pending, closed accounts refuse movements (ids
burned), posting a closing transfer fails, voiding or expiry reopens, voids work on closed accounts,
accounts created closed (state-machine spec 1.2, 5.4 steps 21–22, 5.6 steps 29–31, 5.8, 8.14)."""

import time

from conftest import (AF, T, TF, account, balances, create_accounts, created_accounts,
                      created_transfers, lookup_account, statuses, transfer, wait_until, S)

PEN, CDR, CCR = TF.PENDING, TF.CLOSING_DEBIT, TF.CLOSING_CREDIT
POS, VOI = TF.POST_PENDING_TRANSFER, TF.VOID_PENDING_TRANSFER
EXPIRY_DEADLINE_S = 15.0


def closed(client, account_id):
    return bool(lookup_account(client, account_id).flags & AF.CLOSED)


def test_closing_and_reopening(client, ids, ledgers):
    """Spec 8.14 (E167–E184), with T10's timeout 3 s so that the state between the two
    expiries can be observed."""
    ledger = ledgers()
    a1, a2, a3 = ids(), ids(), ids()
    created_accounts(client, account(a1, ledger), account(a2, ledger), account(a3, ledger))
    t = {n: ids() for n in range(1, 18)}
    created_transfers(client, transfer(t[1], a1, a2, 15, ledger))
    assert balances(client, a1) == (0, 15, 0, 0)

    results = client.create_transfers([transfer(t[2], a1, a2, 0, ledger, flags=CDR)])
    assert statuses(results) == [T.CLOSING_TRANSFER_MUST_BE_PENDING]
    created_transfers(client, transfer(t[2], a1, a2, 0, ledger, flags=PEN | CDR))
    assert closed(client, a1)
    assert not closed(client, a2)
    results = client.create_transfers([
        transfer(t[2], a1, a2, 0, ledger, flags=PEN | CDR),
        transfer(t[3], a1, a2, 5, ledger),
        transfer(t[4], a2, a1, 5, ledger),
        transfer(t[5], 0, 0, 0, 0, 0, flags=POS, pending_id=t[2]),
    ])
    assert statuses(results) == [T.EXISTS, T.DEBIT_ACCOUNT_ALREADY_CLOSED,
                                 T.CREDIT_ACCOUNT_ALREADY_CLOSED, T.DEBIT_ACCOUNT_ALREADY_CLOSED]
    # Re-creating a closed account's original event: the stored flags now include `closed`.
    (result,) = client.create_accounts([account(a1, ledger)])
    assert result.status == S.EXISTS_WITH_DIFFERENT_FLAGS

    created_transfers(client, transfer(t[6], 0, 0, 0, 0, 0, flags=VOI, pending_id=t[2]))
    assert not closed(client, a1)
    (result,) = client.create_accounts([account(a1, ledger)])
    assert result.status == S.EXISTS
    # Burned while the account was closed: the ids stay failed after it reopens.
    results = client.create_transfers([transfer(t[3], a1, a2, 5, ledger),
                                       transfer(t[4], a2, a1, 5, ledger),
                                       transfer(t[7], a1, a2, 5, ledger)])
    assert statuses(results) == [T.ID_ALREADY_FAILED, T.ID_ALREADY_FAILED, T.CREATED]
    assert balances(client, a1) == (0, 20, 0, 0)
    assert balances(client, a2) == (0, 0, 0, 20)

    created_transfers(client, transfer(t[8], a1, a2, 10, ledger, flags=PEN, timeout=1),
                      transfer(t[9], a1, a2, 10, ledger, flags=PEN),
                      transfer(t[10], a1, a2, 0, ledger, flags=PEN | CCR, timeout=3))
    created_at = time.monotonic()
    assert closed(client, a2)
    assert balances(client, a1) == (20, 20, 0, 0)
    results = client.create_transfers([
        transfer(t[11], 0, 0, 10, 0, 0, flags=POS, pending_id=t[9]),
        transfer(t[12], 0, 0, 10, 0, 0, flags=VOI, pending_id=t[9]),
    ])
    assert statuses(results) == [T.CREDIT_ACCOUNT_ALREADY_CLOSED, T.CREATED]
    assert balances(client, a1) == (10, 20, 0, 0)
    assert balances(client, a2) == (0, 0, 10, 20)
    assert closed(client, a2)

    # T8 expires although A2 is closed.
    wait_until(lambda: balances(client, a1) == (0, 20, 0, 0), EXPIRY_DEADLINE_S,
               "the pulse to expire T8")
    if time.monotonic() - created_at < 2.5:  # T10 (3 s) cannot have expired yet
        assert closed(client, a2)
    # T10's expiry reopens A2.
    wait_until(lambda: not closed(client, a2), EXPIRY_DEADLINE_S, "the pulse to expire T10")
    assert balances(client, a2) == (0, 0, 0, 20)

    created_transfers(client, transfer(t[13], a1, a2, 0, ledger, flags=PEN | CDR | CCR))
    assert closed(client, a1)
    assert closed(client, a2)
    results = client.create_transfers([
        transfer(t[14], a1, a3, 5, ledger),
        transfer(t[15], a3, a2, 5, ledger),
        transfer(t[16], a1, a3, 0, ledger, flags=PEN | CDR),
        transfer(t[17], a3, a2, 0, ledger, flags=PEN | CCR),
    ])
    assert statuses(results) == [T.DEBIT_ACCOUNT_ALREADY_CLOSED, T.CREDIT_ACCOUNT_ALREADY_CLOSED,
                                 T.DEBIT_ACCOUNT_ALREADY_CLOSED, T.CREDIT_ACCOUNT_ALREADY_CLOSED]
    assert not closed(client, a3)
    assert client.lookup_transfers([t[n] for n in (3, 4, 5, 11, 14, 15, 16, 17)]) == []


def test_account_created_closed_refuses_transfers(client, ids, ledgers):
    ledger = ledgers()
    a1, a2 = ids(), ids()
    results = create_accounts(client, [account(a1, ledger, flags=AF.CLOSED),
                                       account(a2, ledger)])
    assert statuses(results) == [S.CREATED, S.CREATED]
    assert lookup_account(client, a1).flags == AF.CLOSED
    results = client.create_transfers([transfer(ids(), a1, a2, 1, ledger),
                                       transfer(ids(), a2, a1, 1, ledger),
                                       transfer(ids(), a2, a1, 0, ledger, flags=PEN | CCR)])
    assert statuses(results) == [T.DEBIT_ACCOUNT_ALREADY_CLOSED, T.CREDIT_ACCOUNT_ALREADY_CLOSED,
                                 T.CREDIT_ACCOUNT_ALREADY_CLOSED]
    assert balances(client, a1) == (0, 0, 0, 0)
