"""Gradient sketches and state digests: deterministic, portable, and sensitive to what they summarise."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import textwrap

import torch

from potluck.node.sketch import SketchProjector, gradient_sketch, sketch_seed, state_digest
from potluck.node.tasks import get_task
from potluck.proto.wire import SKETCH_DIM

SEED = b"sketch seed"


def gradient(size: int = 20_000, seed: int = 0) -> torch.Tensor:
    return torch.randn(size, generator=torch.Generator().manual_seed(seed))


def distance(a: list[float], b: list[float]) -> float:
    return math.sqrt(sum((x - y) ** 2 for x, y in zip(a, b, strict=True)))


def test_sketch_is_deterministic_and_depends_on_the_seed():
    g = gradient()
    assert gradient_sketch(g, SEED) == gradient_sketch(g.clone(), SEED)
    assert gradient_sketch(g, SEED) != gradient_sketch(g, b"another seed")
    assert len(gradient_sketch(g, SEED, dim=16)) == 16


def test_sketch_notices_a_small_change_and_roughly_preserves_distances():
    g = gradient()
    nudged = g.clone()
    nudged[12_345] += 1e-3
    assert gradient_sketch(g, SEED) != gradient_sketch(nudged, SEED)

    other = gradient(seed=1)
    ratio = distance(gradient_sketch(g, SEED), gradient_sketch(other, SEED)) / (g - other).norm().item()
    assert 0.6 < ratio < 1.4  # 16 signed block sums keep distances within ~18% (1 sigma)


def test_sketch_is_linear():
    a, b = gradient(seed=2), gradient(seed=3)
    combined = gradient_sketch(2.5 * a + b, SEED)
    separate = [2.5 * x + y for x, y in zip(gradient_sketch(a, SEED), gradient_sketch(b, SEED), strict=True)]
    # Projections run in float32 (16x faster than float64 here): linear up to its rounding.
    scale = max(abs(v) for v in combined)
    assert all(math.isclose(x, y, rel_tol=1e-5, abs_tol=1e-5 * scale) for x, y in zip(combined, separate, strict=True))


def test_sketch_does_not_depend_on_how_the_gradient_is_split_into_tensors():
    flat = gradient(size=(1 << 20) + 70_000)  # its signs come from two SHAKE streams
    pieces = [flat[:1000], flat[1000:51_000].reshape(100, 500), flat[51_000:]]
    assert gradient_sketch(pieces, SEED) == gradient_sketch(flat, SEED)


def test_sketch_of_a_model_reads_its_gradients_and_counts_missing_ones_as_zero():
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Linear(3, 2))
    model(torch.ones(1, 4)).sum().backward()
    model[1].bias.grad = None
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in model.parameters()]
    assert gradient_sketch(model, SEED) == gradient_sketch(grads, SEED)


def test_sketch_seed_differs_per_window():
    seeds = {sketch_seed(b"swarm", account, epoch) for account in ("aa", "bb") for epoch in (0, 1)}
    assert len(seeds) == 4


def test_state_digest_pins_every_parameter():
    task = get_task("synthetic")
    model, twin = task.build_model(), task.build_model()
    assert state_digest(model) == state_digest(twin)
    with torch.no_grad():
        weight = twin[0].weight
        weight[0, 0] = torch.nextafter(weight[0, 0], torch.tensor(math.inf))  # one ulp
    assert state_digest(model) != state_digest(twin)
    assert len(state_digest(model)) == 32


def test_another_process_computes_the_same_sketch_and_digest():
    code = textwrap.dedent(
        f"""
        import json, torch
        from potluck.node.sketch import gradient_sketch, state_digest
        from potluck.node.tasks import get_task
        g = torch.randn(40_000, generator=torch.Generator().manual_seed(7))
        model = get_task("synthetic").build_model()
        print(json.dumps({{"sketch": gradient_sketch(g, {SEED!r}), "digest": state_digest(model).hex()}}))
        """
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=90, check=True)
    theirs = json.loads(result.stdout.strip().splitlines()[-1])
    ours = gradient_sketch(torch.randn(40_000, generator=torch.Generator().manual_seed(7)), SEED)
    assert theirs["sketch"] == ours
    assert theirs["digest"] == state_digest(get_task("synthetic").build_model()).hex()


def test_a_projector_reused_across_micro_batches_equals_fresh_sketches():
    projector = SketchProjector(SEED, SKETCH_DIM)
    for _ in range(3):
        g = torch.randn((1 << 20) + 70_000)  # its signs come from two SHAKE streams
        assert projector.sketch(g) == gradient_sketch(g, SEED, dim=SKETCH_DIM)
