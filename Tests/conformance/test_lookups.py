"""lookup_accounts / lookup_transfers: found objects only, in request order, duplicates repeated,
0 / MAX / failed ids absent, current balances (state-machine spec 6.1)."""

from conftest import (MAX128, T, account, created_accounts, created_transfers, lookup_accounts,
                      lookup_transfers, statuses, transfer)


def test_lookup_accounts_order_duplicates_and_missing(client, ids, ledgers):
    ledger = ledgers()
    a, b, c = ids(), ids(), ids()
    missing = ids()
    stamps = created_accounts(client, account(a, ledger, user_data_32=1),
                              account(b, ledger, user_data_32=2),
                              account(c, ledger, user_data_32=3))
    found = client.lookup_accounts([c, missing, a, 0, a, MAX128, b])
    assert [x.id for x in found] == [c, a, a, b]
    assert [x.user_data_32 for x in found] == [3, 1, 1, 2]
    assert [x.timestamp for x in found] == [stamps[2], stamps[0], stamps[0], stamps[1]]
    assert client.lookup_accounts([missing]) == []


def test_lookup_transfers_skips_failed_ids(client, ids, ledgers):
    ledger = ledgers()
    a, b = ids(), ids()
    created_accounts(client, account(a, ledger), account(b, ledger))
    good, failed = ids(), ids()
    results = client.create_transfers([transfer(good, a, b, 5, ledger),
                                       transfer(failed, a, ids(), 5, ledger)])
    assert statuses(results) == [T.CREATED, T.CREDIT_ACCOUNT_NOT_FOUND]
    found = client.lookup_transfers([failed, good, 0, good, MAX128])
    assert [x.id for x in found] == [good, good]
    assert found[0].timestamp == results[0].timestamp


def test_lookup_shows_current_balances(client, ids, ledgers):
    ledger = ledgers()
    a, b = ids(), ids()
    created_accounts(client, account(a, ledger), account(b, ledger))
    for amount in (1, 2, 3):
        created_transfers(client, transfer(ids(), a, b, amount, ledger))
    (x,) = client.lookup_accounts([a])
    assert (x.debits_pending, x.debits_posted, x.credits_pending, x.credits_posted) == \
        (0, 6, 0, 0)


def test_large_lookups(client, ids, ledgers):
    """A few thousand ids (several development-size requests): every one comes back in order."""
    ledger = ledgers()
    accounts = [account(ids(), ledger, user_data_64=i) for i in range(3000)]
    created_accounts(client, *accounts)
    wanted = [a.id for a in accounts]
    found = lookup_accounts(client, wanted)
    assert [a.id for a in found] == wanted
    assert [a.user_data_64 for a in found] == list(range(3000))
    transfers = [transfer(ids(), accounts[i].id, accounts[i + 1].id, i + 1, ledger)
                 for i in range(0, 3000, 2)]
    created_transfers(client, *transfers)
    found = lookup_transfers(client, [t.id for t in transfers])
    assert [t.amount for t in found] == [i + 1 for i in range(0, 3000, 2)]
