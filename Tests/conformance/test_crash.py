"""SIGKILL in the middle of a load loses no acknowledged transfer and breaks no balance.

A thread submits batches of random transfers through one client; the test SIGKILLs the server
while that thread is busy, restarts it on the same data file and lets the thread's client carry
on (it retransmits the request that was in flight). After a few rounds:
* every acknowledged transfer is found, with identical fields and the timestamp of its result;
* the request that was in flight at each kill is applied entirely or not at all (one op);
* no transfer exists that the load did not submit;
* per ledger, Σ debits_posted == Σ credits_posted and Σ debits_pending == Σ credits_pending;
* every account's balances equal the sums over the transfers found.

Randomized: the seed is printed on failure (LEDGER_CRASH_SEED reruns it)."""

import os
import random
import threading
import time

import pytest
import tigerbeetle as tb

from conftest import (T, TF, account, created_accounts, lookup_accounts, lookup_transfers,
                      query_filter, transfer, wait_until)

ACCOUNTS_PER_LEDGER = 16
BATCH = 200  # fits the --development request size (253)
ROUNDS = int(os.environ.get("LEDGER_CRASH_ROUNDS", "3"))


class Load:
    """Submits batches until told to stop; records what the server acknowledged."""

    def __init__(self, client_factory, client_discard, accounts_by_ledger, rng):
        self.client_factory = client_factory
        self.client_discard = client_discard
        self.client = client_factory()
        self.evictions = 0
        self.accounts_by_ledger = accounts_by_ledger
        self.rng = rng
        self.acknowledged: list[tuple[tb.Transfer, int]] = []  # (transfer, result timestamp)
        self.unacknowledged: list[list[tb.Transfer]] = []  # in flight when the call failed
        self.submitted: list[list[tb.Transfer]] = []
        self.batches_done = 0
        self.stop = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self.run, name="crash-load", daemon=True)

    def make_batch(self):
        batch = []
        for _ in range(BATCH):
            ledger = self.rng.choice(list(self.accounts_by_ledger))
            debit, credit = self.rng.sample(self.accounts_by_ledger[ledger], 2)
            pending = self.rng.random() < 0.2
            batch.append(transfer(tb.id(), debit, credit, self.rng.randrange(1, 1_000), ledger,
                                  code=self.rng.randrange(1, 10),
                                  user_data_64=self.rng.randrange(0, 2**64),
                                  flags=TF.PENDING if pending else TF.NONE))
        return batch

    def run(self):
        try:
            for _ in range(100_000):  # bounded; the test stops it long before
                if self.stop.is_set():
                    return
                batch = self.make_batch()
                self.submitted.append(batch)
                try:
                    results = self.client.create_transfers(batch)
                except (tb.ClientEvictedError, tb.ClientClosedError):
                    # The session did not survive the crash (idempotency tests pin that down):
                    # this batch's outcome is unknown; carry on with a new client.
                    self.unacknowledged.append(batch)
                    self.evictions += 1
                    self.client_discard(self.client)
                    self.client = self.client_factory()
                    continue
                assert [r.status for r in results] == [T.CREATED] * len(batch), \
                    [r.status for r in results if r.status != T.CREATED][:5]
                self.acknowledged += [(t, r.timestamp) for t, r in zip(batch, results)]
                self.batches_done += 1
        except BaseException as error:  # noqa: BLE001 — re-raised in the test thread
            self.error = error


def all_transfers_of_ledger(client, ledger):
    """query_transfers, paged by timestamp."""
    found, timestamp_min = [], 1
    for _ in range(10_000):  # bounded
        page = client.query_transfers(query_filter(ledger=ledger, timestamp_min=timestamp_min))
        found += page
        if len(page) < 8189:
            return found
        timestamp_min = page[-1].timestamp + 1
    raise AssertionError("too many pages")


@pytest.mark.deadline(600)
def test_sigkill_during_load(fresh_server, make_client, ledgers):
    seed = int(os.environ.get("LEDGER_CRASH_SEED", random.randrange(2**32)))
    print(f"crash seed: {seed} (rerun with LEDGER_CRASH_SEED={seed})")
    rng = random.Random(seed)
    server = fresh_server
    client = make_client(server.port)
    accounts_by_ledger = {}
    for _ in range(2):
        ledger = ledgers()
        accounts_by_ledger[ledger] = [tb.id() for _ in range(ACCOUNTS_PER_LEDGER)]
        created_accounts(client, *(account(a, ledger) for a in accounts_by_ledger[ledger]))

    load = Load(lambda: make_client(server.port), make_client.discard, accounts_by_ledger, rng)
    load.thread.start()
    for round_index in range(ROUNDS):
        target = load.batches_done + 5
        wait_until(lambda: load.batches_done >= target or load.error is not None
                   or not load.thread.is_alive(), 120, f"load progress (seed {seed})")
        assert load.error is None, f"seed {seed}: {load.error!r}"
        time.sleep(rng.random() * 0.2)  # land the kill at a random point of a request
        server.kill()
        server.start()
    load.stop.set()
    load.thread.join(180)
    assert not load.thread.is_alive(), f"seed {seed}: load thread did not finish"
    assert load.error is None, f"seed {seed}: {load.error!r}"
    assert load.batches_done >= ROUNDS * 5
    print(f"{load.batches_done} batches acknowledged, {load.evictions} evictions")

    checker = make_client(server.port)
    acknowledged_ids = {t.id for t, _ in load.acknowledged}
    found = {t.id: t for t in lookup_transfers(checker, [t.id for t, _ in load.acknowledged])}
    missing = acknowledged_ids - found.keys()
    assert not missing, f"seed {seed}: {len(missing)} acknowledged transfers lost"
    for sent, timestamp in load.acknowledged:
        got = found[sent.id]
        expected = tb.Transfer(id=sent.id, debit_account_id=sent.debit_account_id,
                               credit_account_id=sent.credit_account_id, amount=sent.amount,
                               pending_id=0, user_data_128=0, user_data_64=sent.user_data_64,
                               user_data_32=0, timeout=0, ledger=sent.ledger, code=sent.code,
                               flags=sent.flags, timestamp=timestamp)
        assert got == expected, f"seed {seed}"

    # Requests in flight at a kill but never acknowledged: all or nothing.
    accepted = list(load.acknowledged)
    for batch in load.unacknowledged:
        present = lookup_transfers(checker, [t.id for t in batch])
        assert len(present) in (0, len(batch)), f"seed {seed}: a request was applied in part"
        accepted += [(t, t.timestamp) for t in present]

    submitted_ids = {t.id for batch in load.submitted for t in batch}
    for ledger, account_ids in accounts_by_ledger.items():
        stored = all_transfers_of_ledger(checker, ledger)
        assert {t.id for t in stored} <= submitted_ids, f"seed {seed}: unknown transfers"
        assert len({t.id for t in stored}) == len(stored)
        in_ledger = [t for t, _ in accepted if t.ledger == ledger]
        assert {t.id for t in stored} == {t.id for t in in_ledger}, f"seed {seed}"

        accounts = {a.id: a for a in lookup_accounts(checker, account_ids)}
        assert sum(a.debits_posted for a in accounts.values()) == \
            sum(a.credits_posted for a in accounts.values())
        assert sum(a.debits_pending for a in accounts.values()) == \
            sum(a.credits_pending for a in accounts.values())
        for account_id, a in accounts.items():
            def total(side, pending):
                return sum(t.amount for t in stored
                           if getattr(t, side) == account_id
                           and bool(t.flags & TF.PENDING) == pending)
            assert (a.debits_pending, a.debits_posted, a.credits_pending, a.credits_posted) == \
                (total("debit_account_id", True), total("debit_account_id", False),
                 total("credit_account_id", True), total("credit_account_id", False)), \
                f"seed {seed}: account {account_id}"
