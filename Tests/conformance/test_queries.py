"""get_account_transfers, get_account_balances (history flag), query_accounts, query_transfers:
debit/credit selection, field filters, timestamp ranges, reversed, limit, invalid filters
(state-machine spec 6.2–6.5, 8.15).

The server is shared with the other tests of this module, so every query is confined to this
test's objects by its account, by unique user_data/ledger values or by a timestamp range that
covers exactly one batch (a batch's objects have consecutive timestamps)."""

import pytest
import tigerbeetle as tb

from conftest import (AF, MAX128, TF, TS_MAX, account, account_filter, created_accounts,
                      created_transfers, query_filter, transfer)

DEBITS = tb.AccountFilterFlags.DEBITS
CREDITS = tb.AccountFilterFlags.CREDITS
REVERSED = tb.AccountFilterFlags.REVERSED


@pytest.fixture
def history(client, ids, ledgers):
    """Spec 8.15 set-up: A1, A2 with history, four transfers between them."""
    ledger = ledgers()
    a1, a2 = ids(), ids()
    created_accounts(client, account(a1, ledger, flags=AF.HISTORY),
                     account(a2, ledger, flags=AF.HISTORY))
    t = [ids() for _ in range(4)]
    stamps = created_transfers(
        client,
        transfer(t[0], a1, a2, 10, ledger, 1, user_data_128=1000, user_data_64=10, user_data_32=1),
        transfer(t[1], a2, a1, 11, ledger, 2, user_data_128=1001, user_data_64=10, user_data_32=2),
        transfer(t[2], a1, a2, 12, ledger, 1, user_data_128=1000, user_data_64=20, user_data_32=2),
        transfer(t[3], a2, a1, 13, ledger, 2, user_data_128=1001, user_data_64=20, user_data_32=1))
    return dict(a1=a1, a2=a2, t=t, ts=stamps, ledger=ledger)


def transfer_ids(client, **kwargs):
    return [x.id for x in client.get_account_transfers(account_filter(**kwargs))]


def test_get_account_transfers(client, history):
    a1, a2, t, ts = history["a1"], history["a2"], history["t"], history["ts"]
    assert transfer_ids(client, account_id=a1, limit=10) == t
    assert transfer_ids(client, account_id=a1, limit=2) == t[:2]
    assert transfer_ids(client, account_id=a1, flags=DEBITS | CREDITS | REVERSED) == t[::-1]
    assert transfer_ids(client, account_id=a1, flags=DEBITS | CREDITS | REVERSED, limit=1) == \
        [t[3]]
    assert transfer_ids(client, account_id=a1, flags=DEBITS) == [t[0], t[2]]
    assert transfer_ids(client, account_id=a1, flags=CREDITS) == [t[1], t[3]]
    assert transfer_ids(client, account_id=a1, user_data_128=1001) == [t[1], t[3]]
    assert transfer_ids(client, account_id=a1, user_data_64=10) == [t[0], t[1]]
    assert transfer_ids(client, account_id=a1, user_data_32=1) == [t[0], t[3]]
    assert transfer_ids(client, account_id=a1, code=1) == [t[0], t[2]]
    assert transfer_ids(client, account_id=a1, timestamp_min=ts[1], timestamp_max=ts[2]) == \
        [t[1], t[2]]
    assert transfer_ids(client, account_id=a1, timestamp_min=ts[3]) == [t[3]]
    assert transfer_ids(client, account_id=a1, timestamp_max=ts[0]) == [t[0]]
    everything = dict(user_data_128=1000, user_data_64=10, user_data_32=1, code=1,
                      timestamp_min=ts[0], timestamp_max=ts[2])
    assert transfer_ids(client, account_id=a1, flags=DEBITS, **everything) == [t[0]]
    assert transfer_ids(client, account_id=a2, flags=CREDITS, **everything) == [t[0]]
    assert transfer_ids(client, account_id=a2, flags=DEBITS, **everything) == []
    full = client.get_account_transfers(account_filter(a1, limit=1))[0]
    assert (full.amount, full.user_data_128, full.code, full.timestamp) == (10, 1000, 1, ts[0])


@pytest.mark.parametrize("bad", [
    dict(account_id=None),  # nonexistent account
    dict(flags=0),  # neither debits nor credits
    dict(flags=REVERSED),
    dict(flags=DEBITS | CREDITS | (1 << 3)),  # padding bit
    dict(timestamp_min=2, timestamp_max=1),  # min > max
    dict(timestamp_min=TS_MAX + 1),
    dict(timestamp_max=TS_MAX + 1),
    dict(limit=0),
    dict(account_id=0),
    dict(account_id=MAX128),
])
def test_invalid_account_filters_return_nothing(client, history, ids, bad):
    kwargs = dict(account_id=history["a1"])
    kwargs.update(bad)
    if kwargs["account_id"] is None:
        kwargs["account_id"] = ids()
    assert client.get_account_transfers(account_filter(**kwargs)) == []
    assert client.get_account_balances(account_filter(**kwargs)) == []


def balance_rows(client, **kwargs):
    return [(b.debits_pending, b.debits_posted, b.credits_pending, b.credits_posted, b.timestamp)
            for b in client.get_account_balances(account_filter(**kwargs))]


def test_get_account_balances(client, history):
    a1, a2, ts = history["a1"], history["a2"], history["ts"]
    assert balance_rows(client, account_id=a1) == [(0, 10, 0, 0, ts[0]), (0, 10, 0, 11, ts[1]),
                                                   (0, 22, 0, 11, ts[2]), (0, 22, 0, 24, ts[3])]
    assert balance_rows(client, account_id=a1, flags=DEBITS | CREDITS | REVERSED, limit=2) == \
        [(0, 22, 0, 24, ts[3]), (0, 22, 0, 11, ts[2])]
    everything = dict(user_data_128=1000, user_data_64=10, user_data_32=1, code=1,
                      timestamp_min=ts[0], timestamp_max=ts[2])
    assert balance_rows(client, account_id=a2, flags=CREDITS, **everything) == \
        [(0, 0, 0, 10, ts[0])]


def test_balances_need_the_history_flag(client, ids, ledgers):
    ledger = ledgers()
    a1, a2 = ids(), ids()
    created_accounts(client, account(a1, ledger), account(a2, ledger, flags=AF.HISTORY))
    created_transfers(client, transfer(ids(), a1, a2, 5, ledger))
    assert client.get_account_balances(account_filter(a1)) == []
    assert [b.credits_posted for b in client.get_account_balances(account_filter(a2))] == [5]
    # get_account_transfers does not need the flag.
    assert len(client.get_account_transfers(account_filter(a1))) == 1


def test_balances_of_two_phase_transfers(client, ids, ledgers):
    ledger = ledgers()
    a1, a2, t1, t2 = ids(), ids(), ids(), ids()
    created_accounts(client, account(a1, ledger, flags=AF.HISTORY), account(a2, ledger))
    stamps = created_transfers(client, transfer(t1, a1, a2, 1, ledger, flags=TF.PENDING))
    stamps += created_transfers(client, tb.Transfer(id=t2, pending_id=t1, amount=1,
                                                    flags=TF.POST_PENDING_TRANSFER))
    assert balance_rows(client, account_id=a1) == [(1, 0, 0, 0, stamps[0]),
                                                   (0, 1, 0, 0, stamps[1])]
    # The post matches a1 through the accounts it inherited.
    assert [x.id for x in client.get_account_transfers(account_filter(a1))] == [t1, t2]


QUERY_ROWS = [  # (user_data_128 offset, user_data_64, user_data_32, ledger index, code)
    (0, 10, 1, 0, 1), (0, 11, 2, 1, 2), (0, 10, 3, 2, 3), (0, 11, 4, 3, 4),
    (1, 10, 1, 2, 5), (1, 11, 2, 1, 6), (1, 10, 3, 0, 7), (0, 10, 1, 0, 1),
]


def run_query_examples(query, objects, stamps, base, ledgers_used):
    """The spec's query_accounts example (A1..A8), for accounts or transfers alike."""
    ids_ = [o.id for o in objects]
    lo, hi = stamps[0], stamps[-1]

    def ids_of(**kwargs):
        kwargs.setdefault("timestamp_min", lo)
        kwargs.setdefault("timestamp_max", hi)
        return [x.id for x in query(query_filter(**kwargs))]

    pick = lambda *numbers: [ids_[n - 1] for n in numbers]  # noqa: E731
    assert ids_of(user_data_128=base) == pick(1, 2, 3, 4, 8)
    assert ids_of(user_data_128=base, flags=tb.QueryFilterFlags.REVERSED) == pick(8, 4, 3, 2, 1)
    assert ids_of(user_data_64=10, user_data_32=3) == pick(3, 7)
    assert ids_of(user_data_64=11, user_data_32=2, ledger=ledgers_used[1]) == pick(2, 6)
    assert ids_of(user_data_128=base, timestamp_min=stamps[1], timestamp_max=stamps[3]) == \
        pick(2, 3, 4)
    assert ids_of(limit=3, timestamp_min=stamps[1], timestamp_max=0) == pick(2, 3, 4)
    assert ids_of(limit=1, flags=tb.QueryFilterFlags.REVERSED) == pick(8)
    assert ids_of() == pick(1, 2, 3, 4, 5, 6, 7, 8)
    assert ids_of(ledger=ledgers_used[0], code=1) == pick(1, 8)
    assert ids_of(limit=0) == []
    assert ids_of(user_data_128=base, code=5) == []
    assert ids_of(flags=1 << 1) == []  # padding bit
    assert ids_of(timestamp_min=hi, timestamp_max=lo) == []  # min > max
    full = query(query_filter(user_data_128=base + 1, timestamp_min=lo, timestamp_max=hi))
    assert [(x.user_data_64, x.user_data_32, x.code) for x in full] == \
        [(10, 1, 5), (11, 2, 6), (10, 3, 7)]


def test_query_accounts(client, ids, ledgers):
    base = ids()  # a user_data_128 no other test uses
    used = [ledgers() for _ in range(4)]
    accounts = [account(ids(), used[lx], code, user_data_128=base + u, user_data_64=u64,
                        user_data_32=u32) for u, u64, u32, lx, code in QUERY_ROWS]
    stamps = created_accounts(client, *accounts)
    run_query_examples(client.query_accounts, accounts, stamps, base, used)


def test_query_transfers(client, ids, ledgers):
    base = ids()
    used = [ledgers() for _ in range(4)]
    pairs = []
    for ledger in used:
        pair = (ids(), ids())
        created_accounts(client, account(pair[0], ledger), account(pair[1], ledger))
        pairs.append(pair)
    transfers = [transfer(ids(), *pairs[lx], 1, used[lx], code, user_data_128=base + u,
                          user_data_64=u64, user_data_32=u32)
                 for u, u64, u32, lx, code in QUERY_ROWS]
    stamps = created_transfers(client, *transfers)
    run_query_examples(client.query_transfers, transfers, stamps, base, used)
