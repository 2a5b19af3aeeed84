"""create_accounts: success, every reachable failure code in precedence order, linked chains,
slot timestamps (state-machine spec 1.6, 4.3, 4.4, 5.2, 8.1–8.3).

Not reachable through the Python client: `reserved_field` (its Account has no `reserved` field)."""

import pytest
import tigerbeetle as tb

from conftest import (AF, MAX128, S, account, create_accounts, created_accounts, lookup_account,
                      statuses)


def test_create_then_lookup_returns_the_stored_account(client, ids):
    a = account(ids(), ledger=3, code=4, user_data_128=2**127 + 5, user_data_64=2**64 - 2,
                user_data_32=7, flags=AF.HISTORY)
    (result,) = client.create_accounts([a])
    assert result.status == S.CREATED
    assert result.timestamp > 0
    found = lookup_account(client, a.id)
    assert found == tb.Account(id=a.id, user_data_128=2**127 + 5, user_data_64=2**64 - 2,
                               user_data_32=7, ledger=3, code=4, flags=AF.HISTORY,
                               timestamp=result.timestamp)


def test_precedence_of_account_checks(client, ids):
    """Spec 8.1 (E1, E2, E4–E21) in one batch; failures report their slot timestamps."""
    a1, a2 = ids(), ids()
    both_limits = AF.DEBITS_MUST_NOT_EXCEED_CREDITS | AF.CREDITS_MUST_NOT_EXCEED_DEBITS
    dnc, cnd = AF.DEBITS_MUST_NOT_EXCEED_CREDITS, AF.CREDITS_MUST_NOT_EXCEED_DEBITS
    bad = dict(debits_pending=1, debits_posted=1, credits_pending=1, credits_posted=1)
    events = [
        (account(a1, user_data_128=2, user_data_64=2, user_data_32=2, ledger=3, code=4),
         S.CREATED),
        (account(0, ledger=0, code=0, flags=both_limits | (1 << 6), timestamp=1, **bad),
         S.TIMESTAMP_MUST_BE_ZERO),
        (account(0, ledger=0, code=0, flags=both_limits | (1 << 6), **bad), S.RESERVED_FLAG),
        (account(0, ledger=0, code=0, flags=both_limits, **bad), S.ID_MUST_NOT_BE_ZERO),
        (account(MAX128, ledger=0, code=0, flags=both_limits, **bad), S.ID_MUST_NOT_BE_INT_MAX),
        (account(a1, flags=dnc, user_data_128=1, user_data_64=1, user_data_32=1, ledger=9,
                 code=9), S.EXISTS_WITH_DIFFERENT_FLAGS),
        (account(a1, flags=cnd, user_data_128=1, user_data_64=1, user_data_32=1, ledger=9,
                 code=9), S.EXISTS_WITH_DIFFERENT_FLAGS),
        (account(a1, user_data_128=1, user_data_64=1, user_data_32=1, ledger=9, code=9),
         S.EXISTS_WITH_DIFFERENT_USER_DATA_128),
        (account(a1, user_data_128=2, user_data_64=1, user_data_32=1, ledger=9, code=9),
         S.EXISTS_WITH_DIFFERENT_USER_DATA_64),
        (account(a1, user_data_128=2, user_data_64=2, user_data_32=1, ledger=9, code=9),
         S.EXISTS_WITH_DIFFERENT_USER_DATA_32),
        (account(a1, user_data_128=2, user_data_64=2, user_data_32=2, ledger=9, code=9),
         S.EXISTS_WITH_DIFFERENT_LEDGER),
        (account(a1, user_data_128=2, user_data_64=2, user_data_32=2, ledger=3, code=9),
         S.EXISTS_WITH_DIFFERENT_CODE),
        (account(a1, user_data_128=2, user_data_64=2, user_data_32=2, ledger=3, code=4,
                 **bad), S.EXISTS),  # balances are not compared
        (account(a2, ledger=0, code=0, flags=both_limits, **bad),
         S.FLAGS_ARE_MUTUALLY_EXCLUSIVE),
        (account(a2, ledger=9, code=9, flags=dnc, **bad), S.DEBITS_PENDING_MUST_BE_ZERO),
        (account(a2, ledger=9, code=9, flags=dnc, debits_posted=1, credits_pending=1,
                 credits_posted=1), S.DEBITS_POSTED_MUST_BE_ZERO),
        (account(a2, ledger=9, code=9, flags=dnc, credits_pending=1, credits_posted=1),
         S.CREDITS_PENDING_MUST_BE_ZERO),
        (account(a2, ledger=9, code=9, flags=dnc, credits_posted=1),
         S.CREDITS_POSTED_MUST_BE_ZERO),
        (account(a2, ledger=0, code=0, flags=dnc), S.LEDGER_MUST_NOT_BE_ZERO),
        (account(a2, ledger=9, code=0, flags=dnc), S.CODE_MUST_NOT_BE_ZERO),
    ]
    results = client.create_accounts([event for event, _ in events])
    assert statuses(results) == [status for _, status in events]

    # Slot timestamps: event i of an n-event batch gets T_b - n + i + 1; `exists` reports the
    # existing account's timestamp instead.
    first = results[0].timestamp
    for index, result in enumerate(results):
        if result.status == S.EXISTS:
            assert result.timestamp == first
        else:
            assert result.timestamp == first + index, f"event {index}"

    found = client.lookup_accounts([MAX128, 0, a1, a2])
    assert [a.id for a in found] == [a1]
    assert (found[0].debits_pending, found[0].debits_posted, found[0].credits_pending,
            found[0].credits_posted) == (0, 0, 0, 0)
    assert found[0].timestamp == first


def test_flags_combine_and_are_stored_as_submitted(client, ids):
    flags = AF.HISTORY | AF.CLOSED | AF.DEBITS_MUST_NOT_EXCEED_CREDITS
    a = account(ids(), flags=flags)
    (timestamp,) = created_accounts(client, a)
    found = lookup_account(client, a.id)
    assert found.flags == flags
    assert found.timestamp == timestamp
    # Idempotency compares the whole flags word.
    (result,) = client.create_accounts([account(a.id, flags=AF.HISTORY | AF.CLOSED)])
    assert result.status == S.EXISTS_WITH_DIFFERENT_FLAGS
    (result,) = client.create_accounts([a])
    assert (result.status, result.timestamp) == (S.EXISTS, timestamp)


def test_linked_chains_of_accounts(client, ids):
    """Spec 8.2: rollback, `exists` breaking a chain, failures at either end of a chain."""
    a1, a2, a3, a4, a7 = ids(), ids(), ids(), ids(), ids()
    lnk = AF.LINKED
    events = [
        (account(a7), S.CREATED),
        (account(a1, flags=lnk), S.LINKED_EVENT_FAILED),
        (account(a2, flags=lnk), S.LINKED_EVENT_FAILED),
        (account(a1, flags=lnk), S.EXISTS),
        (account(a3), S.LINKED_EVENT_FAILED),
        (account(a1), S.CREATED),
        (account(a1, flags=lnk, code=2), S.EXISTS_WITH_DIFFERENT_FLAGS),
        (account(a2), S.LINKED_EVENT_FAILED),
        (account(a2), S.CREATED),
        (account(a3, flags=lnk), S.LINKED_EVENT_FAILED),
        (account(a1, ledger=2), S.EXISTS_WITH_DIFFERENT_LEDGER),
        (account(a3, flags=lnk), S.CREATED),
        (account(a4), S.CREATED),
    ]
    results = client.create_accounts([event for event, _ in events])
    assert statuses(results) == [status for _, status in events]
    first = results[0].timestamp
    # Rolled-back members keep the timestamp they were applied with (their slot); `exists`
    # reports the rolled-back a1's timestamp; everything else its slot.
    for index, result in enumerate(results):
        expected = first + (1 if index == 3 else index)
        assert result.timestamp == expected, f"event {index}"

    found = client.lookup_accounts([a7, a1, a2, a3, a4])
    assert [a.id for a in found] == [a7, a1, a2, a3, a4]
    assert [a.timestamp for a in found] == [first, first + 5, first + 8, first + 11,
                                           first + 12]
    assert found[3].flags == AF.LINKED  # the stored flags keep `linked`
    for a in found:
        assert (a.debits_pending, a.debits_posted, a.credits_pending, a.credits_posted) == \
            (0, 0, 0, 0)


def test_linked_event_chain_open(client, ids):
    """Spec 8.3 (E23–E25)."""
    a1, a2, a3, a4, a5 = (ids() for _ in range(5))
    lnk = AF.LINKED
    results = client.create_accounts([account(a1, flags=lnk), account(a2, flags=lnk),
                                      account(a3), account(a4, flags=lnk),
                                      account(a5, flags=lnk)])
    assert statuses(results) == [S.CREATED, S.CREATED, S.CREATED, S.LINKED_EVENT_FAILED,
                                 S.LINKED_EVENT_CHAIN_OPEN]
    assert [a.id for a in client.lookup_accounts([a1, a2, a3, a4, a5])] == [a1, a2, a3]

    b1, b2, b3 = ids(), ids(), ids()
    created_accounts(client, account(b1))
    results = client.create_accounts([account(b2, flags=lnk), account(b1, flags=lnk),
                                      account(b3, flags=lnk)])
    assert statuses(results) == [S.LINKED_EVENT_FAILED, S.EXISTS_WITH_DIFFERENT_FLAGS,
                                 S.LINKED_EVENT_CHAIN_OPEN]
    assert client.lookup_accounts([b2, b3]) == []

    c1 = ids()
    assert statuses(client.create_accounts([account(c1, flags=lnk)])) == \
        [S.LINKED_EVENT_CHAIN_OPEN]
    assert client.lookup_accounts([c1]) == []


def test_resubmitting_a_successful_chain_breaks_at_the_first_exists(client, ids):
    chain = [account(ids(), flags=AF.LINKED), account(ids(), flags=AF.LINKED), account(ids())]
    first = client.create_accounts(chain)
    assert statuses(first) == [S.CREATED] * 3
    again = client.create_accounts(chain)
    assert statuses(again) == [S.EXISTS, S.LINKED_EVENT_FAILED, S.LINKED_EVENT_FAILED]
    assert again[0].timestamp == first[0].timestamp


def test_empty_batch_yields_empty_results(client):
    assert client.create_accounts([]) == []
    assert client.lookup_accounts([]) == []


def test_full_development_batch_gets_consecutive_timestamps(client, ids):
    accounts = [account(ids(), user_data_32=i) for i in range(253)]
    results = client.create_accounts(accounts)
    assert statuses(results) == [S.CREATED] * 253
    timestamps = [r.timestamp for r in results]
    assert timestamps == list(range(timestamps[0], timestamps[0] + 253))
    found = client.lookup_accounts([a.id for a in accounts])
    assert [a.user_data_32 for a in found] == list(range(253))
    assert [a.timestamp for a in found] == timestamps


def test_timestamps_increase_across_requests(client, ids):
    stamps = [created_accounts(client, account(ids()))[0] for _ in range(5)]
    assert stamps == sorted(stamps)
    assert len(set(stamps)) == 5


def test_oversized_batch_is_refused_by_the_client(client, ids):
    """More events than any batch_size_limit allows (8190 > 8189) never reach the server."""
    with pytest.raises(tb.TooMuchDataError):
        client.create_accounts([account(ids()) for _ in range(8190)])
    # The client is still usable afterwards.
    assert statuses(create_accounts(client, [account(ids())])) == [S.CREATED]
