"""The averager's two-stage accumulation hands hivemind exactly the sum hivemind's own would.

AttestingGradientAverager adds each micro-batch's gradient to a segment buffer, which the worker
folds into hivemind's accumulators after sketching it. Whatever hivemind then reads (the averaged
tensors it loads before a round or a lone step) must be the mean over every micro-batch, folded or
not; a reset must clear the buffer too. A real averager on a real DHT, in a process of its own.
"""

import json
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.timeout(120)

SCRIPT = textwrap.dedent("""
    import json, torch, hivemind
    from potluck.node.attesting_averager import AttestingGradientAverager

    torch.manual_seed(0)
    params = [torch.nn.Parameter(torch.zeros(5, 3)), torch.nn.Parameter(torch.zeros(7))]
    dht = hivemind.DHT(start=True)
    averager = AttestingGradientAverager(params, dht=dht, prefix="acc", start=True,
                                         payload_for_round=lambda: (0, b""))
    results = {}
    try:
        def window(num_steps, fold_after):
            grads = []
            for step in range(num_steps):
                for p in params:
                    p.grad = torch.randn_like(p)
                grads.append([p.grad.clone() for p in params])
                averager.accumulate_grads_(batch_size=4)
                if step + 1 in fold_after:
                    averager.fold_segment()
            averager.load_accumulators_into_averager_()  # what hivemind does before a round or a lone step
            with averager.get_tensors() as loaded:
                error = max((got - torch.stack([g[i] for g in grads]).mean(0)).abs().max().item()
                            for i, got in enumerate(loaded))
            averager.reset_accumulated_grads_()
            return error

        results["folded_at_segment_ends"] = window(20, {8, 16})
        results["never_folded"] = window(5, set())
        results["after_a_reset"] = window(3, {1})
        averager.accumulate_grads_(batch_size=4)  # then a reload from peers resets the sums
        averager.reset_accumulated_grads_()
        results["segment_after_reset"] = max(t.abs().max().item() for t in averager.segment_sum())
    finally:
        averager.shutdown()
        dht.shutdown()
    print(json.dumps(results))
""")


def test_hivemind_reads_the_mean_of_every_micro_batch_whether_or_not_its_segment_was_folded():
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=100)
    assert out.returncode == 0, out.stderr[-3000:]
    results = json.loads(out.stdout.strip().splitlines()[-1])
    assert results == pytest.approx({"folded_at_segment_ends": 0.0, "never_folded": 0.0, "after_a_reset": 0.0,
                                     "segment_after_reset": 0.0}, abs=1e-6), results
