"""Volunteers behind NAT: the lead on a public host, three volunteers each behind a NAT router of its
own (network namespaces, iptables masquerade: tests/netkit.py), joined with the line the lead's
`swarm start --listen 0.0.0.0:50051` printed, verbatim: each finds out that it cannot be dialled
(node/reachability.py) and joins averaging in client mode.

Measured before (issue 12, and again here): 0 of 10 averaging rounds succeeded ("could not find a
group": hivemind's client-mode peers reduce no part of the average, and nobody else was there).
Now the lead's host runs hivemind's auxiliary peer (tracker/swarm/aux_peer.py), which reduces for them.
"""

from __future__ import annotations

import pytest
from hostswarm import run_across_hosts

pytestmark = pytest.mark.timeout(900)
EPOCHS = 5
VOLUNTEERS = ("v1", "v2", "v3")


@pytest.fixture(scope="module")
def swarm(tmp_path_factory):
    return run_across_hosts(tmp_path_factory.mktemp("nat"), "pn", dict.fromkeys(VOLUNTEERS, "nat"), epochs=EPOCHS,
                            timeout=700)


def test_volunteers_each_behind_its_own_nat_average_through_the_leads_helper(swarm):
    print(f"\nrounds: {[(r.name, r.epoch, r.succeeded, round(r.mean_loss, 3)) for r in swarm.found]}")
    assert swarm.codes == dict.fromkeys(VOLUNTEERS, 0), swarm.codes
    averaged = [r for r in swarm.found if r.succeeded]
    assert len(averaged) > 0.5 * len(swarm.found), swarm.found
    assert {r.name for r in averaged} == set(VOLUNTEERS)


def test_each_volunteer_finds_out_that_it_is_behind_nat(swarm):
    for name in VOLUNTEERS:
        log = swarm.processes[name].log.read_text()
        assert "behind NAT or a firewall, so averaging in client mode" in log, (name, log[-3000:])


def test_swarm_status_shows_how_averaging_went_per_epoch(swarm):
    shown = swarm.final_status["averaging"]
    print(f"\naveraging: {shown}")
    assert [a["epoch"] for a in shown] == sorted({r.epoch for r in swarm.found})
    for a in shown:
        logged = [r for r in swarm.found if r.epoch == a["epoch"]]
        assert a["volunteers"] == len({r.name for r in logged})
        assert a["averaged"] == len({r.name for r in logged if r.succeeded})
        assert sum(a["failures"].values()) == a["volunteers"] - a["averaged"]
    assert sum(a["averaged"] for a in shown) > 0.5 * sum(a["volunteers"] for a in shown)


def test_the_loss_falls_as_on_open_hosts(swarm):
    first = [r.mean_loss for r in swarm.found if r.epoch == 0]
    last_epoch = max(r.epoch for r in swarm.found)
    last = [r.mean_loss for r in swarm.found if r.epoch == last_epoch]
    # Open hosts (tests/e2e/test_mixed_hosts.py) reach about a fifth of the first epoch's loss; volunteers
    # training alone stayed near their first epoch's (issue 12: 0.70-1.04 where open hosts reach 0.15).
    assert max(last) < 0.5 * min(first), (first, last)


def test_nobody_is_struck_for_being_behind_nat_and_everyone_vests(swarm):
    # The verifier downloads drawn reports' start states through the lead's bootstrap peer, which every
    # volunteer keeps a connection to. Dialling the volunteers instead failed every check ("all dials
    # failed") and struck, then banned, all three.
    print(f"\nverdicts: {swarm.verdicts}")
    for name in VOLUNTEERS:
        assert [v for v in swarm.verdicts[name] if v != "vest"] == [], (name, swarm.verdicts[name])
        assert "vest" in swarm.verdicts[name], (name, swarm.verdicts[name])


def test_nothing_is_left_running(swarm):
    assert swarm.leftovers == []
