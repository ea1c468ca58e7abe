"""The whole system, as real processes on 127.0.0.1: `potluck swarm start`, three `potluck node join`,
one of which has its worker group SIGKILLed mid-training, and a fourth that joins late. One scenario
is run once; each test checks one thing a user would notice."""

from __future__ import annotations

import os
import signal
import statistics
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from proctree import descendant_pids, worker_pids

from potluck.entries import decode_entry
from potluck.errors import TrackerError
from potluck.identity import load_account_key
from potluck.node.outbox import Outbox
from potluck.proto.report_pb2 import ContributionReport
from potluck.signing import PURPOSE_ATTESTATION, PURPOSE_REPORT, open_envelope, parse_envelope
from potluck.tlog import verify_receipt
from potluck.tracker.swarm.local_swarm import LocalSwarm
from potluck.tracker_client import TrackerClient

SCENARIO_TIMEOUT = 900
EPOCHS = 8  # per volunteer: enough epochs after the kill for all three to be in step in one
# The killed volunteer loses about 2 windows (the one it was killed in, and the one its state load discards):
# asked for as many as the others, it trained about 2 minutes alone after they left (CI, 2 cores).
KILLED_EPOCHS = EPOCHS - 2
LATE_EPOCHS = 2
NODES = ("v1", "v2", "v3")
LOSS_FALL = 2.0
LOSS_AGREEMENT = 0.05  # relative gap between two volunteers' mean losses in one epoch, when in step
MIN_STEPS = 50  # micro-batches in each window compared, so that a mean loss is not noise
# Relative spread of the volunteers' starting parameters (see ParameterSpread in tracker.proto) below which
# they agree: after a shared round they are bit-identical or a float rounding apart (measured 1e-13 to 2e-8);
# one that missed a round is an optimizer step away (one Adam step at lr 0.01 moves the model by 7%).
PARAMETER_TOLERANCE = 1e-5

pytestmark = pytest.mark.timeout(SCENARIO_TIMEOUT)


@dataclass
class Scenario:
    workdir: Path
    codes: dict[str, int]
    killed_at_epoch: int
    late_joined_at_epoch: int
    accounts: dict[str, str]  # node name -> account id
    reports: dict[str, list[ContributionReport]] = field(default_factory=dict)
    entries: list = field(default_factory=list)
    balances: dict = field(default_factory=dict)
    audit: object = None
    log_key: str = ""
    spreads: dict[int, tuple[int, float]] = field(default_factory=dict)  # epoch -> (volunteers, relative spread)
    leftovers: list[int] = field(default_factory=list)


def wait_until(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(1.0)


@pytest.fixture(scope="module")
def scenario(tmp_path_factory) -> Scenario:
    workdir = tmp_path_factory.mktemp("e2e")
    swarm = LocalSwarm(workdir, num_nodes=len(NODES))
    spreads, watching = {}, threading.Event()
    watcher = threading.Thread(target=_watch_spread, args=(swarm, spreads, watching), daemon=True)
    try:
        info = swarm.start()
        watcher.start()
        for name in NODES:
            swarm.start_node(name, max_epochs=KILLED_EPOCHS if name == "v1" else EPOCHS)
            time.sleep(1.0)
        wait_until(lambda: swarm.status().epoch >= 2, 300, "epoch 2")
        # SIGKILL one volunteer's worker group: its DHT, p2pd and averagers die at once, mid-training.
        [worker] = worker_pids(swarm.nodes["v1"].popen.pid)
        killed_at_epoch = swarm.status().epoch
        os.killpg(worker, signal.SIGKILL)
        wait_until(lambda: swarm.status().epoch >= killed_at_epoch + 1, 300, "the swarm to move on")
        late_joined_at_epoch = swarm.status().epoch
        swarm.start_node("late", max_epochs=LATE_EPOCHS)
        codes = swarm.wait_nodes(600)
        watching.set()
        watcher.join()
        with TrackerClient(info["tracker"]) as client:
            previous = None
            for _ in range(12):  # let the verifier decide the last checks and the policy vest
                balances = {b.account_id: b for b in client.balances().balances}
                if balances == previous:
                    break
                previous = balances
                time.sleep(5.0)
            entries = [data for chunk in client.entries(0, client.balances().tree_size) for data in chunk]
        audit = swarm.run_cli("audit", "verify", "--tracker", info["tracker"], "--log-key",
                              str(swarm.state_dir / "log.pub"), "--lead-key", info["lead"], "--state-dir",
                              str(workdir / "auditor"), home=workdir / "auditor", timeout=300)
        accounts = {name: load_account_key(workdir / name / "account.key").account_id for name in swarm.nodes}
        result = Scenario(workdir, codes, killed_at_epoch, late_joined_at_epoch, accounts, entries=entries,
                          balances=balances, audit=audit, log_key=info["log_key"], spreads=spreads)
        for name in swarm.nodes:
            outbox = Outbox(workdir / name / "node" / "outbox.sqlite")
            result.reports[name] = [_report(r.envelope) for r in outbox.reports()]
            outbox.close()
    finally:
        watching.set()
        swarm.stop()
    result.leftovers = descendant_pids(os.getpid())
    return result


def _watch_spread(swarm: LocalSwarm, spreads: dict, done: threading.Event) -> None:
    """Record the parameter spread the tracker reports for each epoch: of the measurements over the most
    volunteers, the latest."""
    while not done.wait(1.0):
        try:
            spread = swarm.status().spread
        except TrackerError:
            continue
        if spread.num_peers >= spreads.get(spread.epoch, (0, 0.0))[0]:
            spreads[spread.epoch] = (spread.num_peers, spread.relative)


def _report(envelope: bytes) -> ContributionReport:
    return ContributionReport.FromString(open_envelope(envelope, purpose=PURPOSE_REPORT,
                                                       origin=parse_envelope(envelope).origin).payload)


def test_every_volunteer_finishes_cleanly(scenario):
    assert scenario.codes == {name: 0 for name in (*NODES, "late")}, scenario.workdir


def test_nothing_is_left_running(scenario):
    assert scenario.leftovers == []


def test_averaging_rounds_succeed_and_groupmates_attest(scenario):
    for name in NODES:
        averaged = [r for r in scenario.reports[name] if r.averaging.succeeded]
        assert averaged, f"{name} never averaged with anyone"
        for report in averaged:
            for envelope in report.averaging.attestations:
                data = envelope.SerializeToString(deterministic=True)
                opened = open_envelope(data, purpose=PURPOSE_ATTESTATION, origin=report.origin)
                assert opened.signer.hex() in scenario.accounts.values()
                assert opened.signer.hex() != report.account_id


def test_parameters_agree_across_volunteers(scenario):
    # The tracker's verifier fetches the state each volunteer announces it starts an epoch from and reports
    # how far apart they lie. Asked of all three: two may share a state because one downloaded it from the
    # other. (Rounds that time out on two shared cores leave some epochs apart; that is hivemind's fault
    # tolerance at work, not a failure.)
    spreads = {epoch: value for epoch, value in sorted(scenario.spreads.items()) if epoch > 0}
    agreeing = [epoch for epoch, (volunteers, relative) in spreads.items()
                if volunteers >= len(NODES) and relative <= PARAMETER_TOLERANCE]
    print(f"\nparameter spread by epoch (volunteers, relative): {spreads}; within {PARAMETER_TOLERANCE}: {agreeing}")
    assert agreeing, spreads


def test_loss_falls(scenario):
    by_epoch = defaultdict(list)
    for name in NODES:
        for report in scenario.reports[name]:
            by_epoch[report.epoch].append(statistics.mean(report.losses))
    first, last = statistics.mean(by_epoch[min(by_epoch)]), statistics.mean(by_epoch[max(by_epoch)])
    print(f"\nmean loss: epoch {min(by_epoch)} {first:.4f}, epoch {max(by_epoch)} {last:.4f} ({first / last:.1f}x)")
    assert first / last >= LOSS_FALL


def test_killed_worker_is_restarted_and_catches_up_while_others_go_on(scenario):
    log = (scenario.workdir / "v1.log").read_text()
    assert "restarting in" in log
    epochs = [r.epoch for r in scenario.reports["v1"]]
    assert len(epochs) == KILLED_EPOCHS and max(epochs) > scenario.killed_at_epoch
    for name in ("v2", "v3"):
        assert max(r.epoch for r in scenario.reports[name]) > scenario.killed_at_epoch
    assert "loaded state from peers" in log.split("restarting in", 1)[1]
    # Its parameters match the swarm's within a tolerance, seen through the loss they give: in an epoch
    # after the restart, its mean loss and another volunteer's (different data, same distribution) agree.
    # Measured: 0.02-0.6% apart for volunteers in step (bit-identical states or not), and 32-130% apart for
    # one that missed a round (a worker killed mid-round leaves the swarm out of step for an epoch or two).
    gaps = {}
    for mine in scenario.reports["v1"]:
        for name in ("v2", "v3"):
            for theirs in scenario.reports[name]:
                if mine.epoch == theirs.epoch > scenario.killed_at_epoch and min(len(mine.losses),
                                                                               len(theirs.losses)) >= MIN_STEPS:
                    a, b = statistics.mean(mine.losses), statistics.mean(theirs.losses)
                    gaps[(mine.epoch, name)] = round(abs(a - b) / b, 4)
    print(f"\nrestarted volunteer's relative loss gap to the others, by epoch: {gaps}")
    assert any(gap <= LOSS_AGREEMENT for gap in gaps.values()), gaps


def test_late_volunteer_starts_from_the_swarms_state(scenario):
    late = scenario.reports["late"]
    assert len(late) == LATE_EPOCHS and late[0].epoch >= scenario.late_joined_at_epoch
    first_epoch_loss = statistics.mean(
        statistics.mean(r.losses) for name in NODES for r in scenario.reports[name] if r.epoch == 0)
    # A fresh model would start near the epoch-0 loss; one loaded from peers starts where the swarm is.
    assert statistics.mean(late[0].losses) < first_epoch_loss / LOSS_FALL


def test_credits_are_granted_and_vested_and_the_audit_passes(scenario):
    assert scenario.audit.returncode == 0, scenario.audit.stdout + scenario.audit.stderr
    # The real tracker's decisions follow the lead's signed policy, as the auditor replays it.
    assert "policy checked against the lead's manifest" in scenario.audit.stdout
    for name in NODES:
        balance = scenario.balances[scenario.accounts[name]]
        assert balance.granted_flops > 0 and balance.vested_flops > 0, (name, balance)


def test_no_honest_volunteer_is_penalized(scenario):
    kinds = [decode_entry(data).WhichOneof("kind") for data in scenario.entries]
    assert not {"strike", "forfeit", "ban"} & set(kinds), kinds


def test_every_acknowledged_report_has_a_valid_receipt(scenario):
    for name in scenario.accounts:
        outbox = Outbox(scenario.workdir / name / "node" / "outbox.sqlite")
        acked = outbox.reports("acked")
        assert acked and not outbox.reports("queued")
        for report in acked:
            index, entry, _ = verify_receipt(report.receipt, scenario.log_key)
            assert index == report.entry_index and decode_entry(entry).grant.report == report.envelope
        outbox.close()


def test_the_checkpoint_keeper_saves_the_swarms_model(scenario):
    from potluck.node.checkpoint_file import read_checkpoint
    from potluck.node.tasks import get_task

    saved = sorted((scenario.workdir / "swarm" / "checkpoints").glob("model-epoch-*.safetensors"))
    assert saved, "no checkpoint was saved"
    checkpoint = read_checkpoint(saved[-1])
    model = get_task(checkpoint.task, checkpoint.params).build_model()
    model.load_state_dict(checkpoint.tensors)  # a usable model, not just a file
    assert checkpoint.epoch >= 5  # the first state the keeper was offered at or past epoch 5
    assert saved[-1].name == f"model-epoch-{checkpoint.epoch:06d}.safetensors"
    assert checkpoint.ledger_entries_seen > 0
