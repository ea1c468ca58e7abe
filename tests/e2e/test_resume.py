"""`swarm start --resume CHECKPOINT`: the same swarm.toml started again (a new state dir, as after
losing the old one, or on another host) with its model where a checkpoint left it. Its volunteers
get that state from the signed manifest (a dataset of kind "init", served by the tracker like any
shard), so the resumed swarm's first losses are the checkpoint's, not a fresh model's."""

from __future__ import annotations

import os

import pytest
from proctree import descendant_pids

from potluck.entries import decode_entry
from potluck.proto.report_pb2 import ContributionReport
from potluck.signing import parse_envelope
from potluck.tracker.swarm.local_swarm import LocalSwarm, local_swarm_config
from potluck.tracker_client import TrackerClient

pytestmark = pytest.mark.timeout(600)


def first_epoch_loss(swarm: LocalSwarm) -> float:
    with TrackerClient(swarm.info["tracker"], rpc_timeout=20) as client:
        entries = [decode_entry(d) for chunk in client.entries(0, client.status().tree_size) for d in chunk]
    reports = [ContributionReport.FromString(parse_envelope(e.grant.report).payload) for e in entries
               if e.WhichOneof("kind") == "grant"]
    first = [sum(r.losses) / len(r.losses) for r in reports if r.epoch == min(r.epoch for r in reports)]
    return sum(first) / len(first)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    work = tmp_path_factory.mktemp("resume")
    config = local_swarm_config("resume", num_nodes=1)  # one swarm.toml: the same task, data seed and origin
    found = {}
    for name, epochs, extra in (("first", 4, ("--checkpoint-every", "2")), ("resumed", 2, None)):
        if extra is None:
            saved = sorted((work / "first" / "swarm" / "checkpoints").glob("model-epoch-*.safetensors"))
            assert saved, "the first swarm saved no checkpoint"
            extra = ("--resume", str(saved[-1]))
            found["checkpoint"] = saved[-1]
        swarm = LocalSwarm(work / name, config_text=config, num_nodes=1, swarm_args=extra)
        try:
            swarm.start()
            swarm.start_node("v1", max_epochs=epochs)
            found[f"{name}_codes"] = swarm.wait_nodes(300)
            found[name] = first_epoch_loss(swarm)
            found[f"{name}_manifest"] = (work / name / "swarm" / "swarm.manifest").read_bytes()
        finally:
            swarm.stop()
    found["leftovers"] = descendant_pids(os.getpid())
    return found


def test_the_resumed_swarm_starts_where_the_checkpoint_left_off(runs):
    print(f"\nfirst epoch's mean loss: {runs['first']:.4f} fresh, {runs['resumed']:.4f} resumed from "
          f"{runs['checkpoint'].name}")
    assert runs["first_codes"] == {"v1": 0} and runs["resumed_codes"] == {"v1": 0}
    assert runs["resumed"] < 0.5 * runs["first"]


def test_the_starting_state_is_signed_into_the_manifest(runs):
    from potluck.manifest import initial_state_shard, verify_manifest

    manifest = verify_manifest(runs["resumed_manifest"]).manifest
    assert initial_state_shard(manifest) is not None
    assert initial_state_shard(verify_manifest(runs["first_manifest"]).manifest) is None


def test_nothing_is_left_running(runs):
    assert runs["leftovers"] == []
