"""get_change_events (operation 137): one event per successful transfer and per expiry, ascending
by timestamp, with the account snapshots after the event (state-machine spec 5.10, 6.6, 8.16).

The Python API of tigerbeetle 0.17.9 has no get_change_events; the call goes through the client's
internal `_submit` with our own ctypes layouts (conftest.get_change_events). Runs on a server of
its own, so that no other test's expiries interleave."""

from conftest import (AF, MAX128, TF, ChangeEventType as E, account, balances,
                      created_accounts, created_transfers, get_change_events, transfer,
                      wait_until)

PEN, CDR, CCR = TF.PENDING, TF.CLOSING_DEBIT, TF.CLOSING_CREDIT


def test_change_events(fresh_server, make_client, ids):
    client = make_client(fresh_server.port)
    a1, a2, a3, a4 = ids(), ids(), ids(), ids()
    account_stamps = created_accounts(client, account(a1, user_data_128=5, code=3),
                                      account(a2), account(a3), account(a4))
    t = {n: ids() for n in (1, 2, 3, 4, 5, 6, 7, 14, 15, 16, 17)}
    # T4 and T5 time out after 60 s instead of the spec's 2 s: they must still be pending
    # when request 2 posts and voids them, however slowly T3's expiry is observed.
    stamps = created_transfers(
        client,
        transfer(t[1], a1, a2, 10, user_data_64=77),
        transfer(t[2], a1, a2, 11, flags=PEN),
        transfer(t[3], a1, a2, 12, flags=PEN, timeout=1),
        transfer(t[4], a1, a2, 13, flags=PEN, timeout=60),
        transfer(t[5], a1, a2, 14, flags=PEN, timeout=60),
        transfer(t[6], a3, a1, 0, flags=PEN | CDR),
        transfer(t[7], a1, a4, 0, flags=PEN | CCR))
    wait_until(lambda: balances(client, a1)[0] == 38, 15, "the pulse to expire T3")
    later = created_transfers(
        client,
        transfer(t[14], 0, 0, MAX128, 0, 0, flags=TF.POST_PENDING_TRANSFER, pending_id=t[4]),
        transfer(t[15], 0, 0, 0, 0, 0, flags=TF.VOID_PENDING_TRANSFER, pending_id=t[5]),
        transfer(t[16], 0, 0, 0, 0, 0, flags=TF.VOID_PENDING_TRANSFER, pending_id=t[6]),
        transfer(t[17], 0, 0, 0, 0, 0, flags=TF.VOID_PENDING_TRANSFER, pending_id=t[7]))

    events = get_change_events(client, timestamp_min=stamps[5], limit=2730)
    expected = [
        # type, transfer, amount, pending id, debit account + balances + closed, same for credit
        (E.TWO_PHASE_PENDING, t[6], 0, 0, a3, (0, 0, 0, 0), True, a1, (50, 10, 0, 0), False),
        (E.TWO_PHASE_PENDING, t[7], 0, 0, a1, (50, 10, 0, 0), False, a4, (0, 0, 0, 0), True),
        (E.TWO_PHASE_EXPIRED, t[3], 12, 0, a1, (38, 10, 0, 0), False, a2, (0, 0, 38, 10), False),
        (E.TWO_PHASE_POSTED, t[14], 13, t[4], a1, (25, 23, 0, 0), False, a2, (0, 0, 25, 23),
         False),
        (E.TWO_PHASE_VOIDED, t[15], 14, t[5], a1, (11, 23, 0, 0), False, a2, (0, 0, 11, 23),
         False),
        (E.TWO_PHASE_VOIDED, t[16], 0, t[6], a3, (0, 0, 0, 0), False, a1, (11, 23, 0, 0), False),
        (E.TWO_PHASE_VOIDED, t[17], 0, t[7], a1, (11, 23, 0, 0), False, a4, (0, 0, 0, 0), False),
    ]
    observed = [(e.type, e.transfer_id, e.transfer_amount, e.transfer_pending_id,
                 e.debit_account_id, e.debit_balances(),
                 bool(e.debit_account_flags & AF.CLOSED), e.credit_account_id,
                 e.credit_balances(), bool(e.credit_account_flags & AF.CLOSED)) for e in events]
    assert observed == expected

    timestamps = [e.timestamp for e in events]
    assert timestamps == sorted(timestamps)
    assert timestamps[:2] == stamps[5:7]
    assert timestamps[3:] == later
    expiry = events[2]
    assert stamps[6] < expiry.timestamp < later[0]
    # An expiry renders the pending transfer itself: its own timestamp, timeout and flags.
    assert (expiry.transfer_timestamp, expiry.transfer_timeout, expiry.transfer_flags) == \
        (stamps[2], 1, PEN)
    posted = events[3]
    assert (posted.transfer_timestamp, posted.transfer_flags) == \
        (later[0], TF.POST_PENDING_TRANSFER)
    # Account fields that never change come from the account records.
    first = get_change_events(client, timestamp_max=stamps[0], limit=1)[0]
    assert (first.type, first.transfer_id, first.transfer_user_data_64) == \
        (E.SINGLE_PHASE, t[1], 77)
    assert (first.debit_account_user_data_128, first.debit_account_code,
            first.debit_account_timestamp, first.credit_account_timestamp) == \
        (5, 3, account_stamps[0], account_stamps[1])
    assert first.ledger == 1

    events = get_change_events(client, timestamp_max=stamps[5], limit=5)
    assert [(e.type, e.transfer_id) for e in events] == \
        [(E.SINGLE_PHASE, t[1])] + [(E.TWO_PHASE_PENDING, t[n]) for n in (2, 3, 4, 5)]
    assert [e.debit_balances()[0] for e in events] == [0, 11, 23, 36, 50]
    assert [e.debit_balances()[1] for e in events] == [10] * 5

    # Invalid filters return nothing.
    assert get_change_events(client, timestamp_min=2, timestamp_max=1) == []
    assert get_change_events(client, limit=0) == []
