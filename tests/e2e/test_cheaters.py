"""Cheaters are caught, as real processes in a real swarm: one honest volunteer and three cheaters
(tests/e2e/cheater.py), then forged, replayed and foreign reports sent straight to the tracker.

Detection arithmetic, with this swarm's policy (new_account_checks = 2, sampling_rate = 1.0: every
report is recomputed, tracker/swarm/local_swarm.py):

* `fake` (made-up losses and sketches) and `freerider` (never computes a gradient) cheat from their
  first report. Its recomputation (4 drawn segments of 8 micro-batches each; every one of them is
  fake) fails: the first report is a strike, which forfeits the escrow (detection within 1 report);
  a second strike before clean checks forgive the first bans the account.
* `triple` is honest for 3 reports, then claims three times its work. Each tripled report is
  recomputed, on all 8 drawn segments if its own hivemind progress record shows a third of the claim
  (suspicion), each one padded (fake micro-batches) with probability about 2/3, so a padded window
  escapes with probability under (1/3)^4 = 1.2e-2, and (1/3)^8 < 2e-4 when suspicious. Expected: a
  strike on each cheating report it gets logged, forfeit on the first, ban on the second.

No cheating report's grant may ever vest.
"""

from __future__ import annotations

import os
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from grpckit import tracker_channel
from proctree import descendant_pids
from swarmkit import Volunteer, make_manifest, submit_reports

from potluck.binding import load_or_create_peer_identity
from potluck.entries import decode_entry
from potluck.identity import load_account_key
from potluck.manifest import verify_manifest
from potluck.node.outbox import Outbox
from potluck.proto import tracker_pb2 as pb
from potluck.proto.tracker_pb2_grpc import TrackerStub
from potluck.tracker.swarm.local_swarm import LocalSwarm, local_swarm_config
from potluck.tracker_client import TrackerClient

CHEATER = str(Path(__file__).with_name("cheater.py"))
EPOCHS = 6
TRIPLE_HONEST_REPORTS = 3
PLAYERS = {"honest": None, "fake": 0, "freerider": 0, "triple": TRIPLE_HONEST_REPORTS}

pytestmark = pytest.mark.timeout(900)


@dataclass
class Outcome:
    accounts: dict[str, str]
    grants: dict[str, dict[int, int]] = field(default_factory=dict)  # name -> {sequence: ledger index}
    rejected: dict[str, list[str]] = field(default_factory=dict)  # name -> reasons its reports were refused
    entries: list = field(default_factory=list)
    direct: dict[str, pb.ReportAck] = field(default_factory=dict)
    size_before_direct: int = 0
    size_after_direct: int = 0
    leftovers: list[int] = field(default_factory=list)
    codes: dict[str, int] = field(default_factory=dict)
    workdir: Path | None = None
    audit: object = None


@pytest.fixture(scope="module")
def outcome(tmp_path_factory) -> Outcome:
    workdir = tmp_path_factory.mktemp("cheaters")
    swarm = LocalSwarm(workdir, config_text=local_swarm_config("cheaters", num_nodes=len(PLAYERS)),
                       num_nodes=len(PLAYERS))
    try:
        info = swarm.start()
        for name, cheat_after in PLAYERS.items():
            if cheat_after is None:
                swarm.start_node(name, max_epochs=EPOCHS)
            else:  # the same `node join` arguments, given to tests/e2e/cheater.py
                swarm.spawn_node(name, [sys.executable, CHEATER, name, str(cheat_after),
                                        *swarm.node_args(name, max_epochs=EPOCHS)])
            time.sleep(1.0)
        codes = swarm.wait_nodes(700)
        time.sleep(15.0)  # the verifier's last verdicts
        result = Outcome(accounts={n: load_account_key(workdir / n / "account.key").account_id for n in PLAYERS},
                         codes=codes, workdir=workdir)
        with tracker_channel(info["tracker"]) as channel:
            stub = TrackerStub(channel)
            result.size_before_direct = stub.GetStatus(pb.StatusRequest(), timeout=10).tree_size
            result.direct = _direct_cheats(stub, workdir, tmp_path_factory.mktemp("elsewhere"))
            result.size_after_direct = stub.GetStatus(pb.StatusRequest(), timeout=10).tree_size
        for name in PLAYERS:
            outbox = Outbox(workdir / name / "node" / "outbox.sqlite")
            result.grants[name] = {r.sequence: r.entry_index for r in outbox.reports("acked")}
            result.rejected[name] = [r.reason for r in outbox.reports("rejected")]
            outbox.close()
        with TrackerClient(info["tracker"]) as client:
            result.entries = [decode_entry(d) for chunk in client.entries(0, result.size_after_direct) for d in chunk]
        result.audit = swarm.run_cli("audit", "verify", "--tracker", info["tracker"], "--log-key",
                                     str(swarm.state_dir / "log.pub"), "--lead-key", info["lead"], "--state-dir",
                                     str(workdir / "auditor"), home=workdir / "auditor", timeout=300)
    finally:
        swarm.stop()
    result.leftovers = descendant_pids(os.getpid())
    return result


def _direct_cheats(stub: TrackerStub, workdir: Path, elsewhere: Path) -> dict[str, pb.ReportAck]:
    """Reports a cheater sends itself: a replay, one signed by another key, one for another swarm."""
    manifest = verify_manifest(stub.GetManifest(pb.GetManifestRequest(), timeout=10).signed_manifest)
    honest = Volunteer(load_account_key(workdir / "honest" / "account.key"),
                       load_or_create_peer_identity(workdir / "honest" / "node" / "peer.key"))
    mallory = load_account_key(workdir / "fake" / "account.key")
    outbox = Outbox(workdir / "honest" / "node" / "outbox.sqlite")
    last = max(report.sequence for report in outbox.reports())
    outbox.close()
    other_swarm = make_manifest(elsewhere)
    reports = {
        "replay": honest.report(manifest, last, epoch=0),  # a different report reusing a logged sequence
        "another key": honest.report(manifest, last + 1, signer=mallory),
        "another swarm": honest.report(other_swarm, last + 1),
    }
    return {name: ack for name, ack in zip(reports, submit_reports(stub, list(reports.values())), strict=True)}


def _kinds_by_account(outcome: Outcome) -> dict[str, list]:
    found = defaultdict(list)
    for entry in outcome.entries:
        kind = entry.WhichOneof("kind")
        if kind in ("strike", "forfeit", "ban", "vest"):
            found[getattr(entry, kind).account_id].append(entry)
    return found


def vested_indices(outcome: Outcome, name: str) -> set[int]:
    return {i for e in _kinds_by_account(outcome)[outcome.accounts[name]] if e.WhichOneof("kind") == "vest"
            for i in e.vest.grant_indices}


def test_everyone_ran_and_nothing_is_left(outcome):
    assert set(outcome.codes) == set(PLAYERS) and outcome.leftovers == []


def test_the_honest_volunteer_is_not_penalized_and_vests(outcome):
    entries = _kinds_by_account(outcome)[outcome.accounts["honest"]]
    assert [e.WhichOneof("kind") for e in entries if e.WhichOneof("kind") != "vest"] == []
    assert vested_indices(outcome, "honest")


@pytest.mark.parametrize("name", ["fake", "freerider"])
def test_cheating_from_the_start_is_struck_forfeited_and_never_vests(outcome, name):
    entries = _kinds_by_account(outcome)[outcome.accounts[name]]
    kinds = [e.WhichOneof("kind") for e in entries]
    strikes = [e.strike for e in entries if e.WhichOneof("kind") == "strike"]
    # fake: "micro-batch N: claimed loss ..." (or, when its window had one micro-batch and the made-up
    # loss in the honest range is the honest loss, its made-up sketch); freerider (honest losses):
    # "segment N (...): gradient sketch differs"
    expected = ("claimed loss", "gradient sketch differs") if name == "fake" else ("gradient sketch differs",)
    assert strikes and strikes[0].check == "recompute", (kinds, strikes)
    assert any(reason in strikes[0].reason for reason in expected), strikes[0].reason
    first = sorted(outcome.grants[name].values())
    assert strikes[0].report_index == first[0]  # caught on its very first report
    assert kinds[kinds.index("strike") + 1] == "forfeit"  # which forfeits its escrow at once
    if len(strikes) >= 2:
        assert "ban" in kinds
    assert vested_indices(outcome, name) == set()


def test_tripled_claims_after_the_default_rate_are_caught_and_never_vest(outcome):
    entries = _kinds_by_account(outcome)[outcome.accounts["triple"]]
    struck = {e.strike.report_index: e.strike.reason for e in entries if e.WhichOneof("kind") == "strike"}
    cheating = {index for seq, index in outcome.grants["triple"].items() if seq > TRIPLE_HONEST_REPORTS}
    # A tripled epoch can also exceed the per-epoch limit and be refused on arrival: never logged at all.
    refused = [r for r in outcome.rejected["triple"] if "target batch" in r]
    assert cheating or refused
    # Every logged cheating report is struck, and nothing else; the verdict on the very last one may
    # still be waiting for a model state when the swarm shuts down (it stays in escrow, unvested).
    assert set(struck) <= cheating and cheating - set(struck) <= {max(cheating, default=-1)}, (struck, cheating)
    # Recomputation found the padded micro-batches (the reason adds what the progress record showed, when
    # stage b saw it: the DHT is polled, so a record can be missed).
    why = ("claimed loss", "gradient sketch", "progress record")
    assert all(any(w in reason for w in why) for reason in struck.values()), struck
    print(f"\ntripled reports struck: {len(struck)} of {len(cheating)}; raised by stage b: "
          f"{sum('progress record' in reason for reason in struck.values())}")
    if struck:
        assert "forfeit" in [e.WhichOneof("kind") for e in entries]
    assert vested_indices(outcome, "triple") & cheating == set()


def test_every_strike_forfeit_and_ban_passes_the_auditors_policy_replay(outcome):
    # The penalties above, as an auditor holding only the log key and the lead's key sees them.
    assert outcome.audit.returncode == 0, outcome.audit.stdout + outcome.audit.stderr
    assert "policy checked against the lead's manifest" in outcome.audit.stdout


@pytest.mark.parametrize(("name", "code"), [("replay", "ALREADY_EXISTS"), ("another key", "UNAUTHENTICATED"),
                                            ("another swarm", "FAILED_PRECONDITION")])
def test_forged_and_replayed_reports_are_rejected_and_logged_nowhere(outcome, name, code):
    ack = outcome.direct[name]
    assert (ack.verdict, ack.code) == (pb.ReportAck.REJECTED, code), ack
    assert outcome.size_after_direct == outcome.size_before_direct
