"""Tasks: parameters are checked, models start identical, and data is derived, not chosen."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import textwrap

import pytest
import torch

from potluck.errors import ConfigError, VerificationError
from potluck.node.tasks import TASKS, get_task, load_shards
from potluck.node.tasks.base import derive_sample_seed

SEED = b"swarm seed for task tests"
ACCOUNT_A = "aa" * 32
ACCOUNT_B = "bb" * 32
CORPUS = [(hashlib.sha256(text).hexdigest(), text) for text in (b"the quick brown fox " * 20, b"jumps over " * 30)]
TINY_LM = {"d_model": 32, "n_layers": 1, "n_heads": 2, "seq_len": 16}


def batch_digest(batch) -> str:
    tensors = batch if isinstance(batch, tuple) else (batch,)
    return hashlib.sha256(b"".join(t.contiguous().numpy().tobytes() for t in tensors)).hexdigest()


def test_registry_names_the_tasks_and_rejects_unknown_ones():
    assert set(TASKS) == {"synthetic", "charlm", "lm"}
    with pytest.raises(ConfigError, match=r"task.name: unknown task 'nope' \(known: charlm, lm, synthetic\)"):
        get_task("nope")


@pytest.mark.parametrize(
    ("name", "params", "message"),
    [
        ("charlm", {"d_model": -3}, r"^task.params.d_model: must be a positive integer \(got -3\)$"),
        ("charlm", {"d_model": 64, "n_heads": 3}, r"^task.params.n_heads: must divide d_model"),
        ("charlm", {"seq_len": "long"}, r"^task.params.seq_len: must be an integer \(got 'long'\)$"),
        ("charlm", {"n_layers": True}, r"^task.params.n_layers: must be an integer \(got True\)$"),
        ("synthetic", {"widht": 3}, r"^task.params.widht: unknown parameter for task synthetic \(known: "),
        ("synthetic", {"init_seed": -1}, r"^task.params.init_seed: must be a non-negative integer"),
    ],
)
def test_bad_parameters_are_reported_by_key(name, params, message):
    with pytest.raises(ConfigError, match=message):
        TASKS[name].validate_params(params)


def test_parameters_default_and_override():
    assert TASKS["charlm"].validate_params({"d_model": 64}) == dict(TASKS["charlm"].param_defaults, d_model=64)
    assert get_task("synthetic", {"hidden": 8}).params["hidden"] == 8


def test_every_peer_builds_the_same_starting_model_and_init_seed_changes_it():
    for name, params in (("synthetic", {}), ("charlm", TINY_LM)):
        first, second = get_task(name, params).build_model(), get_task(name, params).build_model()
        other = get_task(name, dict(params, init_seed=1)).build_model()
        for a, b in zip(first.parameters(), second.parameters(), strict=True):
            assert torch.equal(a, b)
        assert not all(torch.equal(a, c) for a, c in zip(first.parameters(), other.parameters(), strict=True))


def test_synthetic_model_is_small_and_counts_six_flops_per_parameter():
    task = get_task("synthetic")
    assert 10_000 <= task.num_parameters() <= 50_000
    assert task.tokens_per_sample() == 1
    assert task.flops_per_sample() == 6 * task.num_parameters()


def test_charlm_counts_six_flops_per_parameter_and_token():
    task = get_task("charlm", TINY_LM, shards=CORPUS)
    assert task.tokens_per_sample() == 16
    assert task.flops_per_sample() == 6 * task.num_parameters() * 16


def test_data_depends_on_account_epoch_step_and_swarm_seed():
    for task in (get_task("synthetic"), get_task("charlm", TINY_LM, shards=CORPUS)):
        reference = batch_digest(task.make_batch(SEED, ACCOUNT_A, 3, 5, 8))
        assert batch_digest(task.make_batch(SEED, ACCOUNT_A, 3, 5, 8)) == reference
        variants = [
            task.make_batch(SEED, ACCOUNT_B, 3, 5, 8),
            task.make_batch(SEED, ACCOUNT_A, 4, 5, 8),
            task.make_batch(SEED, ACCOUNT_A, 3, 6, 8),
            task.make_batch(b"another swarm", ACCOUNT_A, 3, 5, 8),
        ]
        assert len({reference, *map(batch_digest, variants)}) == 5


def test_sample_seed_cannot_be_forged_by_moving_bytes_between_fields():
    assert derive_sample_seed(SEED, "ab", 1, 2) != derive_sample_seed(SEED, "a", 1, 2)
    assert derive_sample_seed(SEED, "a", 1, 2) != derive_sample_seed(SEED, "a", 2, 1)
    with pytest.raises(ValueError):
        derive_sample_seed(b"", "a", 0, 0)


def test_another_process_rebuilds_exactly_the_same_batches():
    """A fresh interpreter (as the verifier would be) derives bit-identical batches."""
    code = textwrap.dedent(
        f"""
        import hashlib, json
        from potluck.node.tasks import get_task
        corpus = [(hashlib.sha256(t).hexdigest(), t) for t in {[text for _, text in CORPUS]!r}]
        out = {{}}
        for name, params, shards in (("synthetic", {{}}, None), ("charlm", {TINY_LM!r}, corpus)):
            batch = get_task(name, params, shards=shards).make_batch({SEED!r}, {ACCOUNT_A!r}, 7, 2, 16)
            tensors = batch if isinstance(batch, tuple) else (batch,)
            out[name] = hashlib.sha256(b"".join(t.contiguous().numpy().tobytes() for t in tensors)).hexdigest()
        print(json.dumps(out))
        """
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=90, check=True)
    theirs = json.loads(result.stdout.strip().splitlines()[-1])
    assert theirs["synthetic"] == batch_digest(get_task("synthetic").make_batch(SEED, ACCOUNT_A, 7, 2, 16))
    charlm = get_task("charlm", TINY_LM, shards=CORPUS)
    assert theirs["charlm"] == batch_digest(charlm.make_batch(SEED, ACCOUNT_A, 7, 2, 16))


def test_charlm_windows_lie_inside_one_shard():
    shards = [(hashlib.sha256(c * 40).hexdigest(), c * 40) for c in (b"a", b"b", b"c")]
    task = get_task("charlm", TINY_LM, shards=shards)
    batch = task.make_batch(SEED, ACCOUNT_A, 0, 0, 64)
    assert batch.shape == (64, 17)
    for row in batch.tolist():
        assert len(set(row)) == 1  # a window crossing a boundary would mix letters
    assert {row[0] for row in batch.tolist()} == {ord("a"), ord("b"), ord("c")}


def test_charlm_without_a_long_enough_shard_says_so():
    short = [(hashlib.sha256(b"tiny").hexdigest(), b"tiny")]
    with pytest.raises(ConfigError, match=r"no shard holds a full window of seq_len \+ 1 = 17 bytes"):
        get_task("charlm", TINY_LM, shards=short).make_batch(SEED, ACCOUNT_A, 0, 0, 1)


def test_synthetic_takes_no_shards():
    with pytest.raises(ConfigError, match="takes no shards"):
        get_task("synthetic", shards=CORPUS)


def test_load_shards_checks_every_hash(tmp_path):
    paths = {}
    for digest, text in CORPUS:
        path = tmp_path / f"{digest[:8]}.txt"
        path.write_bytes(text)
        paths[digest] = path
    assert load_shards(paths) == sorted(CORPUS)

    wrong = "0" * 64
    tampered = dict(paths)
    tampered[wrong] = tampered.pop(CORPUS[0][0])
    expected = rf"^shard {tampered[wrong]}: expected sha256 {wrong}, got {CORPUS[0][0]}$"
    with pytest.raises(VerificationError, match=expected):
        load_shards(tampered)


def test_synthetic_loss_falls_threefold_within_a_few_hundred_steps():
    task = get_task("synthetic")
    model = task.build_model()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for step in range(300):
        loss = task.loss(model, task.make_batch(SEED, ACCOUNT_A, 0, step, 32))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    first, last = sum(losses[:10]) / 10, sum(losses[-10:]) / 10
    assert first / last >= 3, (first, last)


def test_charlm_is_causal_and_learns():
    task = get_task("charlm", TINY_LM, shards=CORPUS)
    model = task.build_model()
    tokens = task.make_batch(SEED, ACCOUNT_A, 0, 0, 2)[:, :-1]
    changed = tokens.clone()
    changed[:, -1] = (changed[:, -1] + 1) % 256
    with torch.no_grad():
        assert torch.allclose(model(tokens)[:, :-1], model(changed)[:, :-1])

    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for step in range(40):
        loss = task.loss(model, task.make_batch(SEED, ACCOUNT_A, 0, step, 16))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert abs(losses[0] - torch.log(torch.tensor(256.0)).item()) < 0.5  # starts near uniform over bytes
    assert losses[-1] < losses[0] - 1.0


def test_a_resumed_swarm_starts_from_its_checkpoint_and_a_foreign_one_is_refused():
    from safetensors.torch import save

    trained = get_task("synthetic", {"hidden": 32}).build_model()
    with torch.no_grad():
        for param in trained.parameters():
            param.mul_(0.5)
    state = save({k: v.contiguous() for k, v in trained.state_dict().items()})
    resumed = get_task("synthetic", {"hidden": 32}, initial_state=state).build_model()
    assert all(torch.equal(a, b) for a, b in zip(resumed.parameters(), trained.parameters(), strict=True))
    with pytest.raises(ConfigError, match="the swarm's initial state does not fit task synthetic"):
        get_task("synthetic", {"hidden": 64}, initial_state=state)
    with pytest.raises(ConfigError, match="the swarm's initial state does not fit task synthetic"):
        get_task("synthetic", {"hidden": 32}, initial_state=b"not safetensors")
