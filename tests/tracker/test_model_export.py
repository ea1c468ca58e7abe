"""`potluck model export`: a checkpoint of task lm becomes a Hugging Face directory that transformers
loads offline and generates from, with the community's own tokenizer and a model card naming the
data's licence and owner, every contributor in the log, and the log's verified checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from swarmkit import Volunteer, make_manifest, submit_reports
from trackerkit import RunningTracker
from typer.testing import CliRunner

from potluck.cli import app
from potluck.node.checkpoint_file import checkpoint_bytes
from potluck.node.tasks import get_task
from potluck.proto import tracker_pb2 as pb
from potluck.tracker.data import PrepareConfig, prepare_dataset

pytestmark = pytest.mark.timeout(180)
CORPUS = Path(__file__).parent / "corpus_es"
PARAMS = {"vocab_size": 300, "hidden_size": 64, "num_layers": 2, "num_heads": 4, "seq_len": 32}
OWNER, LICENSE = "Biblioteca de ejemplo", "LicenseRef-public-domain"


def lm_swarm(text: str, datasets: str) -> str:
    params = "\n".join(f"{k} = {v}" for k, v in PARAMS.items())
    text = text.replace('name = "synthetic"', 'name = "lm"', 1)
    text = text.replace("[task.params]\n", f"[task.params]\n{params}\n", 1)
    return text + "\n" + datasets


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    work = tmp_path_factory.mktemp("export")
    data = work / "data"
    prepare_dataset([CORPUS], data, PrepareConfig(name="q", license=LICENSE, owner=OWNER, vocab_size=300))
    manifest = make_manifest(work, edit=lambda text: lm_swarm(text, (data / "datasets.toml").read_text()))
    tracker = RunningTracker(work, manifest)
    try:
        volunteers = [Volunteer.create(work) for _ in range(2)]
        for volunteer in volunteers:
            tracker.stub.Register(pb.RegisterRequest(binding=volunteer.binding(manifest)), timeout=10)
            acks = submit_reports(tracker.stub, [volunteer.report(manifest, 1, epoch=0, num_tokens=2 * 8 * 32)])
            assert acks[0].verdict == pb.ReportAck.ACCEPTED, acks
        # The lead's state dir as `swarm start` leaves it, with a checkpoint of a model trained a little.
        state = work / "swarm"
        state.mkdir()
        (state / "swarm.manifest").write_bytes(manifest.envelope)
        (state / "swarm.json").write_text(json.dumps({"tracker": tracker.address, "log_key": tracker.tracker.log_key}))
        shards = [(d.sha256, (data / d.name).read_bytes()) for d in manifest.manifest.datasets if d.kind == "train"]
        task = get_task("lm", PARAMS, shards=shards)
        model = task.build_model()
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
        for step in range(60):
            optimizer.zero_grad()
            task.loss(model, task.make_batch(b"seed", "ab" * 32, 0, step, 16)).backward()
            optimizer.step()
        (state / "checkpoints").mkdir()
        (state / "checkpoints" / "model-epoch-000005.safetensors").write_bytes(checkpoint_bytes(
            model, epoch=5, task="lm", params=dict(task.params), origin=manifest.origin, ledger_entries_seen=4))
        done = CliRunner().invoke(app, ["model", "export", "--state-dir", str(state), "-o", str(work / "out"),
                                        "--data-dir", str(data)])
        assert done.exit_code == 0, (done.stdout, done.stderr)
        status = tracker.stub.GetStatus(pb.StatusRequest(), timeout=10)
    finally:
        tracker.stop()
    return work / "out", volunteers, status, model


def test_transformers_loads_the_export_offline_and_generates(exported):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out, _, _, trained = exported
    model = AutoModelForCausalLM.from_pretrained(out, local_files_only=True)
    tokenizer = AutoTokenizer.from_pretrained(out, local_files_only=True)
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), trained.parameters(), strict=True))
    prompt = tokenizer("En un lugar de la Mancha", return_tensors="pt")
    generated = model.generate(**prompt, max_new_tokens=12, do_sample=False)
    text = tokenizer.decode(generated[0], skip_special_tokens=True)
    print(f"\ngenerated: {text!r}")
    assert text.startswith("En un lugar de la Mancha") and len(generated[0]) > prompt["input_ids"].shape[1]
    assert sorted(p.name for p in out.iterdir()) >= ["README.md", "config.json", "generation_config.json",
                                                     "model.safetensors", "tokenizer.json", "tokenizer_config.json"]


def test_the_card_names_the_data_the_contributors_and_the_log(exported):
    out, volunteers, status, _ = exported
    card = (out / "README.md").read_text()
    assert LICENSE in card and OWNER in card and "q-train-000.tokens" in card
    for volunteer in volunteers:
        assert volunteer.account.account_id[:16] in card
    assert f"size: {status.tree_size} entries" in card and "root hash: `" in card
    assert "trained 5 epochs" in card


def test_a_bad_state_dir_or_checkpoint_is_one_line(tmp_path):
    done = CliRunner().invoke(app, ["model", "export", "--state-dir", str(tmp_path), "-o", str(tmp_path / "o")])
    assert done.exit_code == 1 and "no swarm.json and swarm.manifest there" in done.stderr
