"""Public volunteers and volunteers behind NAT in one swarm, on hosts of their own (tests/netkit.py),
started as the README says: `swarm start … --listen 0.0.0.0:50051` on the lead's host and, on each
volunteer's, the join line it printed, verbatim (tests/hostswarm.py). Measured before: that line named
`--tracker 0.0.0.0:50051`, which failed on every other host ("tracker 0.0.0.0:50051 unreachable").

Each volunteer finds out by itself whether other hosts can reach it (node/reachability.py). And one
NAT'd volunteer's link is cut for 30 s mid-run (its router unplugged) and restored: it must rejoin
averaging, and the reports it queued meanwhile must all be delivered and credited."""

from __future__ import annotations

import shlex
import time

import pytest
from hostswarm import run_across_hosts

pytestmark = pytest.mark.timeout(900)
EPOCHS = 7
VOLUNTEERS = {"p1": "public", "p2": "public", "n1": "nat", "n2": "nat"}
CUT = "n2"
CUT_SECONDS = 30.0


def cut_a_link(swarm, net) -> None:
    deadline = time.monotonic() + 300
    while not any(r.name == CUT for r in swarm.rounds()):  # it has trained a window, and been credited
        assert time.monotonic() < deadline, "the volunteer to cut never reported"
        time.sleep(2)
    net.cut(net.hosts[CUT])
    swarm.cut_at = len([r for r in swarm.rounds() if r.name == CUT])
    time.sleep(CUT_SECONDS)
    net.restore(net.hosts[CUT])


@pytest.fixture(scope="module")
def swarm(tmp_path_factory):
    return run_across_hosts(tmp_path_factory.mktemp("mixed"), "pm", VOLUNTEERS, epochs=EPOCHS, timeout=700,
                            during=cut_a_link)


def test_the_printed_join_line_names_the_leads_address(swarm):
    argv = shlex.split(swarm.join_line)
    assert argv[:3] == ["potluck", "node", "join"]
    assert argv[argv.index("--tracker") + 1] == f"{swarm.lead.address}:50051"


def test_each_volunteer_finds_out_whether_it_can_be_reached(swarm):
    for name, where in VOLUNTEERS.items():
        log = swarm.processes[name].log.read_text()
        said = "behind NAT or a firewall" if where == "nat" else "averaging with other volunteers directly"
        assert said in log, (name, log[-3000:])


def test_every_window_is_credited_and_nobody_is_struck(swarm):
    print(f"\nrounds: {[(r.name, r.epoch, r.succeeded, round(r.mean_loss, 3)) for r in swarm.found]}")
    print(f"verdicts: {swarm.verdicts}")
    assert swarm.codes == dict.fromkeys(VOLUNTEERS, 0), swarm.codes
    for name in VOLUNTEERS:
        assert len([r for r in swarm.found if r.name == name]) == EPOCHS, name  # the cut one's queued reports too
        assert [v for v in swarm.verdicts[name] if v != "vest"] == [], (name, swarm.verdicts[name])


def test_most_rounds_average_and_the_cut_volunteer_rejoins(swarm):
    averaged = [r for r in swarm.found if r.succeeded]
    assert len(averaged) >= 0.6 * len(swarm.found), swarm.found
    assert {r.name for r in averaged} == set(VOLUNTEERS)
    cut = [r for r in swarm.found if r.name == CUT]
    assert any(r.succeeded for r in cut[swarm.cut_at + 1:]), cut  # averaged again after the link came back


def test_the_loss_falls(swarm):
    first = [r.mean_loss for r in swarm.found if r.epoch == 0]
    last = [r.mean_loss for r in swarm.found if r.epoch >= EPOCHS - 2]
    assert max(last) < 0.5 * min(first), (first, last)


def test_nothing_is_left_running(swarm):
    assert swarm.leftovers == []
