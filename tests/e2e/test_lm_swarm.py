"""A community's model, end to end, on real Spanish text (tests/tracker/corpus_es, public domain):
`data prepare`, a swarm of two volunteers on task `lm`, the tracker's held-out loss, a safetensors
checkpoint, `model export`, transformers loading the export and generating from it, and the same
swarm resumed from the checkpoint. The text is in two halves of two owners, each credited for it."""

from __future__ import annotations

import hashlib
import json
import math
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from proctree import descendant_pids

from potluck.entries import decode_entry
from potluck.manifest import initial_state_shard, verify_manifest
from potluck.proto.report_pb2 import ContributionReport
from potluck.signing import parse_envelope
from potluck.tracker.swarm.local_swarm import TASK_PARAMS, LocalSwarm, local_swarm_config
from potluck.tracker_client import TrackerClient

pytestmark = pytest.mark.timeout(600)
CORPUS = Path(__file__).parents[1] / "tracker" / "corpus_es"
VOCAB = 300
PARAMS = f"vocab_size = {VOCAB}\nhidden_size = 64\nnum_layers = 2\nnum_heads = 4\nseq_len = 32"
EPOCHS, BATCH = 6, 16
OWNERS = ("Archivo de Ana", "Biblioteca de Bea")


def grants(swarm) -> list[tuple[int, ContributionReport]]:
    """(ledger index, report) of every grant in the swarm's log."""
    with TrackerClient(swarm.info["tracker"], rpc_timeout=20) as client:
        entries = [decode_entry(d) for chunk in client.entries(0, client.status().tree_size) for d in chunk]
    return [(index, ContributionReport.FromString(parse_envelope(e.grant.report).payload))
            for index, e in enumerate(entries) if e.WhichOneof("kind") == "grant"]


def mean_loss_by_epoch(logged: list[tuple[int, ContributionReport]]) -> dict[int, float]:
    by_epoch: dict[int, list[float]] = {}
    for _, report in logged:
        by_epoch.setdefault(report.epoch, []).extend(report.losses)
    return {epoch: sum(losses) / len(losses) for epoch, losses in sorted(by_epoch.items())}


def split_corpus(work: Path) -> tuple[Path, Path]:
    """The text in two halves, as if two owners had given one each (paragraphs, in order)."""
    paragraphs = (CORPUS / "quijote-1.txt").read_text().split("\n\n")
    halves = (work / "ana", work / "bea")
    for half, part in zip(halves, (paragraphs[:len(paragraphs) // 2], paragraphs[len(paragraphs) // 2:]), strict=True):
        half.mkdir()
        (half / "quijote.txt").write_text("\n\n".join(part))
    return halves


@pytest.fixture(scope="module")
def swarm(tmp_path_factory):
    work = tmp_path_factory.mktemp("lm")
    runner = LocalSwarm(work, num_nodes=2)  # for its CLI runner only
    ana, bea = split_corpus(work)
    # Ana's half trains the community's tokenizer; Bea's is encoded with it: one vocabulary, two owners.
    tokenizer = ("--tokenizer", str(work / "data-ana" / "ana-tokenizer.json"))
    for half, name, owner, extra in ((ana, "ana", OWNERS[0], ()), (bea, "bea", OWNERS[1], tokenizer)):
        done = runner.run_cli("data", "prepare", str(half), "-o", str(work / f"data-{name}"), "--name", name,
                              "--license", "LicenseRef-public-domain", "--owner", owner, "--vocab-size", str(VOCAB),
                              "--eval-share", "0.15", *extra, home=work / "lead", timeout=120)
        assert done.returncode == 0, done.stderr
    config = local_swarm_config("lm", num_nodes=2, batch_size=BATCH).replace('name = "synthetic"', 'name = "lm"', 1)
    config = config.replace(TASK_PARAMS, PARAMS) + "".join(
        "\n" + (work / f"data-{name}" / "datasets.toml").read_text() for name in ("ana", "bea"))
    running = LocalSwarm(work, config_text=config, num_nodes=2,
                         swarm_args=("--data-dir", str(work / "data-ana"), "--data-dir", str(work / "data-bea"),
                                     "--checkpoint-every", "2"))
    lead = work / "lead"
    try:
        running.start()
        for name in ("v1", "v2"):
            running.start_node(name, max_epochs=EPOCHS, extra=("--batch-size", str(BATCH)))
        running.codes = running.wait_nodes(420)
        running.final = json.loads(running.run_cli("swarm", "status", "--state-dir", str(running.state_dir),
                                                   "--json", home=lead).stdout)
        running.credits = json.loads(running.run_cli("credits", "show", "--state-dir", str(running.state_dir),
                                                     "--json", home=lead).stdout)
        running.audit = running.run_cli("audit", "verify", "--tracker", running.info["tracker"], "--log-key",
                                        str(running.state_dir / "log.pub"), "--lead-key", running.info["lead"],
                                        "--state-dir", str(work / "audit"), "--json", home=lead, timeout=120)
        logged = grants(running)
        running.losses = mean_loss_by_epoch(logged)
        running.receipt = running.run_cli("credits", "receipt", "--tracker", running.info["tracker"], "--index",
                                          str(logged[0][0]), "-o", str(work / "grant.receipt"), home=lead)
        running.export = running.run_cli("model", "export", "--state-dir", str(running.state_dir), "-o",
                                          str(work / "out"), "--data-dir", str(work / "data-ana"), home=lead,
                                          timeout=120)
    finally:
        running.stop()
    # The same swarm.toml again, from the newest checkpoint (as after losing the lead's state dir).
    saved = sorted((running.state_dir / "checkpoints").glob("model-epoch-*.safetensors"),
                   key=lambda path: int(path.stem.rsplit("-", 1)[1]))
    running.checkpoint = saved[-1] if saved else None
    if saved:
        resumed = LocalSwarm(work / "resumed", config_text=config, num_nodes=1,
                             swarm_args=("--data-dir", str(work / "data-ana"), "--data-dir", str(work / "data-bea"),
                                         "--resume", str(saved[-1])))
        try:
            resumed.start()
            resumed.start_node("v1", max_epochs=1, extra=("--batch-size", str(BATCH)))
            running.resumed_codes = resumed.wait_nodes(300)
            running.resumed_losses = mean_loss_by_epoch(grants(resumed))
            running.resumed_manifest = verify_manifest((resumed.state_dir / "swarm.manifest").read_bytes()).manifest
        finally:
            resumed.stop()
    running.leftovers = descendant_pids(os.getpid())
    return running


def test_two_volunteers_train_the_community_model_and_the_held_out_loss_falls(swarm):
    assert swarm.codes == {"v1": 0, "v2": 0}, swarm.codes
    held_out = swarm.final["held_out_loss"]
    print(f"\nheld-out loss: {held_out} (chance: ln {VOCAB} = {math.log(VOCAB):.3f}); status: {swarm.final}")
    # Perplexity well below chance (a uniform guess over the vocabulary): measured 78 of 300 at epoch 4.
    assert held_out is not None and math.exp(held_out["loss"]) < VOCAB / 2
    assert sum(a["averaged"] for a in swarm.final["averaging"]) > 0


def test_the_export_loads_in_transformers_and_its_card_names_the_volunteers(swarm):
    assert swarm.export.returncode == 0, swarm.export.stderr
    out = swarm.workdir / "out"
    # Sampled (greedy decoding from a model this young repeats its commonest token, a space).
    script = ("import torch\nfrom transformers import AutoModelForCausalLM, AutoTokenizer\ntorch.manual_seed(0)\n"
              f"m = AutoModelForCausalLM.from_pretrained({str(out)!r}, local_files_only=True)\n"
              f"t = AutoTokenizer.from_pretrained({str(out)!r}, local_files_only=True)\n"
              "ids = t('En un lugar de la Mancha', return_tensors='pt')\n"
              "out = m.generate(**ids, min_new_tokens=8, max_new_tokens=16, do_sample=True, top_k=20)[0]\n"
              "print(out.shape[0] - ids['input_ids'].shape[1], t.decode(out, skip_special_tokens=True))\n")
    generated = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                               timeout=120, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert generated.returncode == 0, generated.stderr
    print(f"\ngenerated: {generated.stdout.strip()!r}")
    new_tokens, text = generated.stdout.strip().split(" ", 1)
    assert int(new_tokens) >= 8 and text.startswith("En un lugar de la Mancha")
    assert len(text.split()) > 6  # words after the prompt's six, not only spaces
    card = (out / "README.md").read_text()
    accounts = [json.loads(swarm.run_cli("identity", "show", "--json", home=swarm.workdir / n).stdout)["account_id"]
                for n in ("v1", "v2")]
    assert all(a[:16] in card for a in accounts), card
    assert "LicenseRef-public-domain" in card and all(owner in card for owner in OWNERS) and "held-out loss: " in card


def test_each_owner_of_the_text_earns_the_data_credit_the_audit_recomputes(swarm):
    """Two shards of two owners: the tracker's data credit for each is what `audit verify --lead-key`
    recomputes from the grants (their reports' draw, the signed manifest's share), apart from compute."""
    assert swarm.audit.returncode == 0, swarm.audit.stdout + swarm.audit.stderr
    audited = json.loads(swarm.audit.stdout)
    assert audited["policy_checked"] and audited["balances_compared"], audited
    rows = {row["account_id"]: row for row in swarm.credits}
    volunteers = [a for a in rows if a not in OWNERS]
    assert len(volunteers) == 2 and (swarm.final["accounts"], swarm.final["data_owners"]) == (2, 2)
    for owner in OWNERS:
        row, replayed = rows[owner], audited["accounts"][owner]
        print(f"\n{owner}: data credit {row['data_granted']} granted, {row['data_vested']} vested")
        assert Decimal(row["data_granted"]) > 0 and row["granted"] == "0"  # data credit only: no compute
        for column in ("granted", "escrow", "vested", "forfeited"):
            assert row[f"data_{column}"] == replayed[f"data_{column}_credits"], (owner, column, row, replayed)
    # The share: a tenth of the compute (rounded down per owner and grant), split by each owner's windows; the
    # volunteers earn no data credit.
    compute = sum(audited["accounts"][a]["granted_flops"] for a in volunteers)
    data = sum(audited["accounts"][o]["data_granted_flops"] for o in OWNERS)
    assert compute // 10 - swarm.final["reports"] * 2 <= data <= compute // 10
    assert all(audited["accounts"][a]["data_granted_flops"] == 0 for a in volunteers)
    # A receipt of one grant proves the owners' data credit in it, offline, as it proves the compute.
    assert swarm.receipt.returncode == 0, swarm.receipt.stderr
    checked = swarm.run_cli("audit", "receipt", str(swarm.workdir / "grant.receipt"), "--log-key",
                            str(swarm.state_dir / "log.pub"), "--json", home=swarm.workdir / "lead")
    assert checked.returncode == 0, checked.stderr
    proven = json.loads(checked.stdout)
    assert proven["kind"] == "grant" and {d["owner"] for d in proven["data"]} <= set(OWNERS) and proven["data"]


def test_a_swarm_resumed_from_the_checkpoint_starts_where_it_left_off(swarm):
    assert swarm.checkpoint is not None, "the swarm saved no checkpoint"
    assert swarm.resumed_codes == {"v1": 0}, swarm.resumed_codes
    epoch = int(swarm.checkpoint.stem.rsplit("-", 1)[1])
    fresh, at_checkpoint = swarm.losses[min(swarm.losses)], swarm.losses[epoch]
    resumed = swarm.resumed_losses[min(swarm.resumed_losses)]
    print(f"\nfirst epoch's training loss: {fresh:.3f} fresh, {at_checkpoint:.3f} at the checkpoint's epoch "
          f"{epoch}, {resumed:.3f} resumed from it")
    assert fresh - at_checkpoint > 0.5  # it learned something worth resuming
    assert abs(resumed - at_checkpoint) < 0.3 * (fresh - at_checkpoint)  # where the checkpoint left it
    # Its volunteers got that state from the signed manifest: a dataset of kind "init", the checkpoint's bytes.
    init = initial_state_shard(swarm.resumed_manifest)
    assert init == hashlib.sha256(swarm.checkpoint.read_bytes()).hexdigest()


def test_nothing_is_left_running(swarm):
    assert swarm.leftovers == []
