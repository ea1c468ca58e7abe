"""Attacks on honest volunteers' credit, as real processes in a real swarm: two honest volunteers,
a griefer and a volunteer that lies about when its windows ran (tests/e2e/cheater.py).

* `griefer` gathers an attestation signed by a throwaway key into every averaging round, so its
  honest groupmates carry it. Measured before the fix: after 3 reports each, both honest volunteers
  had 3 strikes, their escrow forfeited, and were banned. Now nobody is charged for what the
  throwaway key signed; the tracker logs it against the account of the peer it names.
* `past` is honest for 2 reports, then claims each window started an hour earlier and lasted an
  hour longer. Those reports are refused on arrival (the window started before its peer was
  registered, or overlaps the account's previous window) and never logged, so never vest.
* `pad_unseen` pads every second report (sequences 2, 4, …) by 1.8x with made-up micro-batches and
  names a starting state nobody had. Measured before the fix (sampling 0.5): 5 padded reports
  logged, 0 struck, 2 vested, the verifier calling them "unverifiable". Now the verifier asks the
  reporting peer for that state; it cannot serve it, and that is a failed check. A new account's
  first 2 reports are all checked (this swarm's new_account_checks), so its first padded report is
  certainly struck; no padded report may vest.
* `future` is honest for 2 reports, then reports each window 10^6 epochs ahead: refused on arrival
  (the epoch is bounded by the newest epoch the tracker has logged), never logged.
* `poison` trains honestly but keeps a hivemind progress record at epoch 10^6 in the DHT (validly
  signed by a key of its own) and writes the same, unsigned, over every other peer's record. Measured
  before the fix (the node's bound switched off): every node still training once the record was up
  (4 of 7) reloaded the swarm's state about 2,000 times and closed no window again. Now the overwrites
  are refused by every DHT node (a record is its signer's), every node ignores records beyond the
  tracker's epoch bound (node/progress_bound.py) and so does the verifier: the honest volunteers train
  at the swarm's epochs and their reports are checked.
"""

from __future__ import annotations

import os
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from proctree import descendant_pids

from potluck.attestations import open_attestation
from potluck.binding import load_or_create_peer_identity
from potluck.entries import decode_entry
from potluck.identity import load_account_key
from potluck.node.outbox import Outbox
from potluck.proto.report_pb2 import ContributionReport
from potluck.signing import parse_envelope
from potluck.tracker.swarm.local_swarm import LocalSwarm, local_swarm_config
from potluck.tracker_client import TrackerClient

CHEATER = str(Path(__file__).with_name("cheater.py"))
EPOCHS = 5
PAST_HONEST_REPORTS = FUTURE_HONEST_REPORTS = 2
# The poisoner starts first, so that its record is in the DHT while everyone else trains.
PLAYERS = {"poison": 0, "honest-1": None, "honest-2": None, "griefer": 0, "past": PAST_HONEST_REPORTS, "pad_unseen": 0,
           "future": FUTURE_HONEST_REPORTS}
# The last to start (40 s after the first, on 2 loaded cores) asks for one window fewer, so that it does not
# train its last epoch alone: alone, it must gather the whole swarm's target batch (7 volunteers' worth).
WINDOWS = {name: EPOCHS for name in PLAYERS} | {"future": EPOCHS - 1}

ANSWER_TIMEOUT = 120.0  # a state no peer serves fails after 3 tries, each within 20 s, 5 s apart

pytestmark = pytest.mark.timeout(900)


@dataclass
class Outcome:
    accounts: dict[str, str]
    peers: dict[str, str]
    codes: dict[str, int]
    grants: dict[str, dict[int, int]] = field(default_factory=dict)  # name -> {sequence: ledger index}
    rejected: dict[str, list[tuple[int, str]]] = field(default_factory=dict)  # name -> (sequence, reason)
    entries: list = field(default_factory=list)
    swarm_log: str = ""
    node_logs: dict[str, str] = field(default_factory=dict)
    verifier: object = None  # the tracker's VerifierHealth at the end
    leftovers: list[int] = field(default_factory=list)


@pytest.fixture(scope="module")
def outcome(tmp_path_factory) -> Outcome:
    workdir = tmp_path_factory.mktemp("attacks")
    swarm = LocalSwarm(workdir, config_text=local_swarm_config("attacks", num_nodes=len(PLAYERS)),
                       num_nodes=len(PLAYERS))
    try:
        info = swarm.start()
        for name, cheat_after in PLAYERS.items():
            if cheat_after is None:
                swarm.start_node(name, max_epochs=WINDOWS[name])
            else:
                mode = name
                swarm.spawn_node(name, [sys.executable, CHEATER, mode, str(cheat_after),
                                        *swarm.node_args(name, max_epochs=WINDOWS[name])])
            time.sleep(1.0)
        codes = swarm.wait_nodes(700)
        with TrackerClient(info["tracker"], rpc_timeout=10) as client:  # the verifier's last verdicts
            deadline = time.monotonic() + ANSWER_TIMEOUT
            while client.status().verifier.outstanding_jobs and time.monotonic() < deadline:
                time.sleep(0.5)
            verifier = client.status().verifier
        result = Outcome(
            accounts={n: load_account_key(workdir / n / "account.key").account_id for n in PLAYERS},
            peers={n: load_or_create_peer_identity(workdir / n / "node" / "peer.key").peer_id for n in PLAYERS},
            codes=codes, verifier=verifier)
        for name in PLAYERS:
            outbox = Outbox(workdir / name / "node" / "outbox.sqlite")
            result.grants[name] = {r.sequence: r.entry_index for r in outbox.reports("acked")}
            result.rejected[name] = [(r.sequence, r.reason) for r in outbox.reports("rejected")]
            outbox.close()
        with TrackerClient(info["tracker"]) as client:
            size = client.status().tree_size
            result.entries = [decode_entry(d) for chunk in client.entries(0, size) for d in chunk]
    finally:
        swarm.stop()
    result.swarm_log = (workdir / "swarm.log").read_text(errors="replace")
    result.node_logs = {n: (workdir / f"{n}.log").read_text(errors="replace") for n in PLAYERS}
    result.leftovers = descendant_pids(os.getpid())
    return result


def penalties(outcome: Outcome) -> dict[str, list[str]]:
    found = defaultdict(list)
    for entry in outcome.entries:
        kind = entry.WhichOneof("kind")
        if kind in ("strike", "forfeit", "ban"):
            found[getattr(entry, kind).account_id].append(kind)
    return found


def vested(outcome: Outcome, name: str) -> set[int]:
    return {i for e in outcome.entries if e.WhichOneof("kind") == "vest"
            and e.vest.account_id == outcome.accounts[name] for i in e.vest.grant_indices}


def carried_forgeries(outcome: Outcome, name: str) -> int:
    """Attestations naming the griefer's peer, not signed by the griefer's account, in `name`'s grants."""
    count = 0
    for entry in outcome.entries:
        if entry.WhichOneof("kind") != "grant" or entry.grant.account_id != outcome.accounts[name]:
            continue
        report = ContributionReport.FromString(parse_envelope(entry.grant.report).payload)
        for envelope in report.averaging.attestations:
            claim = open_attestation(envelope.SerializeToString(deterministic=True), report.origin)
            if claim.peer_id == outcome.peers["griefer"] and claim.signer != outcome.accounts["griefer"]:
                count += 1
    return count


def test_everyone_ran_and_nothing_is_left(outcome):
    assert set(outcome.codes) == set(PLAYERS) and outcome.leftovers == []


def test_honest_volunteers_carrying_forged_attestations_are_never_penalized_and_vest(outcome):
    carried = {name: carried_forgeries(outcome, name) for name in ("honest-1", "honest-2")}
    print(f"\nforged attestations carried by honest volunteers: {carried}")
    assert sum(carried.values()) > 0  # the attack happened: honest reports carried the griefer's forgeries
    found = penalties(outcome)
    for name in ("honest-1", "honest-2"):
        assert found[outcome.accounts[name]] == [], (name, found[outcome.accounts[name]])
        assert vested(outcome, name), name


def test_the_forgeries_are_logged_and_nobody_is_charged_for_the_throwaway_key(outcome):
    assert "carries a false attestation" in outcome.swarm_log
    charged = set(penalties(outcome)) - {outcome.accounts["past"], outcome.accounts["pad_unseen"]}
    assert charged == set(), charged


def test_windows_claimed_an_hour_early_are_refused_and_never_logged(outcome):
    grants, rejected = outcome.grants["past"], outcome.rejected["past"]
    assert rejected, "the cheating reports were not refused"
    assert all(seq > PAST_HONEST_REPORTS for seq, _ in rejected)
    assert all("before peer" in reason or "overlaps account" in reason for _, reason in rejected), rejected
    assert all(seq <= PAST_HONEST_REPORTS for seq in grants), grants  # nothing of the lie was logged


def reports_of(outcome: Outcome, name: str) -> dict[int, ContributionReport]:
    """Ledger index -> report, of the grants logged for `name`."""
    return {i: ContributionReport.FromString(parse_envelope(e.grant.report).payload)
            for i, e in enumerate(outcome.entries)
            if e.WhichOneof("kind") == "grant" and e.grant.account_id == outcome.accounts[name]}


def test_padding_that_names_a_state_nobody_can_serve_is_struck_and_never_vests(outcome):
    reports = reports_of(outcome, "pad_unseen")
    padded = {i for i, r in reports.items() if r.sequence % 2 == 0}
    assert padded and reports.keys() - padded, reports  # both kinds were logged
    struck = {e.strike.report_index: e.strike.reason for e in outcome.entries
              if e.WhichOneof("kind") == "strike" and e.strike.account_id == outcome.accounts["pad_unseen"]}
    print(f"\npad_unseen: {len(padded)} padded reports logged, struck: {struck}")
    assert struck and set(struck) <= padded, struck  # only padded reports were struck, and at least one
    assert all("did not serve the start state" in reason for reason in struck.values()), struck
    first_padded = min(padded, key=lambda i: reports[i].sequence)
    assert reports[first_padded].sequence == 2 and first_padded in struck  # fully checked as a new account
    assert vested(outcome, "pad_unseen").isdisjoint(padded)


def test_reports_at_made_up_epochs_are_refused_and_never_logged(outcome):
    grants, rejected = outcome.grants["future"], outcome.rejected["future"]
    assert rejected and all(seq > FUTURE_HONEST_REPORTS for seq, _ in rejected), rejected
    assert all("ahead of the swarm's epoch" in reason for _, reason in rejected), rejected
    assert all(seq <= FUTURE_HONEST_REPORTS for seq in grants), grants
    assert max(r.epoch for r in reports_of(outcome, "future").values()) < 10**6


def test_a_record_at_a_made_up_epoch_moves_no_honest_peer_and_the_verifier_keeps_checking(outcome):
    poison_log = outcome.node_logs["poison"]
    tried = [int(line.split("; ")[1].split()[0]) for line in poison_log.splitlines() if "overwrites tried" in line]
    print(f"\npoison: {len(tried)} rounds of its record stored, {max(tried, default=0)} overwrites of others' tried; "
          f"verifier: {outcome.verifier}")
    assert tried and max(tried) > 0  # the attack ran: its record was kept up and others' were written over
    for name in ("honest-1", "honest-2"):
        # Every honest node read the made-up record and left it out of hivemind's epoch.
        assert "ignoring a progress record at epoch 1000000" in outcome.node_logs[name], name
        epochs = [r.epoch for r in reports_of(outcome, name).values()]
        assert len(epochs) == EPOCHS and max(epochs) < 10 * EPOCHS, (name, epochs)  # it trained the swarm's epochs
        assert outcome.rejected[name] == [], (name, outcome.rejected[name])
        # This swarm draws every report, and a drawn report vests only once its recomputation passed.
        assert vested(outcome, name), name
    assert outcome.verifier.recomputed > 0 and outcome.verifier.running
