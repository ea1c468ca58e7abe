"""Windows of training produced the way a node produces them, for tests of recomputation.

In another process, with another torch thread count than the verifier's: the worker's own window
bookkeeping (potluck.node.training._Window), fed micro-batch gradients the way AttestingGradientAverager
accumulates them (a segment buffer folded into the window's sum), and a real optimizer step between
windows. Each window: its epoch, the state it started from, its losses and its gradient sketch.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

NODE = textwrap.dedent("""
    import json, sys, torch
    from potluck.node.sketch import SketchProjector, sketch_seed
    from potluck.proto.wire import SKETCH_DIM
    from potluck.node.tasks import get_task
    from potluck.node.training import _Window
    seed, account, num_windows, steps, batch, setup = json.loads(sys.argv[1])
    seed = bytes.fromhex(seed)
    torch.set_num_threads(2)
    exec(setup)  # binds `task`
    model = task.build_model()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    class Sums:  # the two stages of AttestingGradientAverager's accumulation
        def __init__(self):
            self.segment = [torch.zeros_like(p) for p in model.parameters()]
            self.total = [torch.zeros_like(p) for p in model.parameters()]
        def segment_sum(self):
            return self.segment
        def fold_segment(self):
            torch._foreach_add_(self.total, self.segment)
            torch._foreach_zero_(self.segment)
    windows = []
    for epoch in range(num_windows):
        state = [p.detach().clone().tolist() for p in model.parameters()]
        window = _Window(epoch, b"", SketchProjector(sketch_seed(seed, account, epoch), SKETCH_DIM))
        sums = Sums()
        for step in range(steps):
            model.zero_grad()
            loss = task.loss(model, task.make_batch(seed, account, epoch, step, batch))
            loss.backward()
            window.losses.append(loss.detach())
            torch._foreach_add_(sums.segment, [p.grad for p in model.parameters()])
            window.on_accumulated(sums, window_ends=False)
        window.on_accumulated(sums, window_ends=True)
        for p, total in zip(model.parameters(), sums.total):
            p.grad = total / steps
        optimizer.step()  # the swarm's update between windows
        windows.append(dict(epoch=epoch, state=state, losses=torch.stack(window.losses).tolist(),
                            sketch=window.sketches))
    json.dump(windows, sys.stdout)
""")


def node_windows(setup: str, seed: bytes, account: str, num_windows: int, steps: int, batch: int,
                 timeout: float = 240) -> list[dict]:
    """`num_windows` windows of `steps` micro-batches of `batch` samples; `setup` is Python binding `task`."""
    argument = json.dumps([seed.hex(), account, num_windows, steps, batch, setup])
    out = subprocess.run([sys.executable, "-c", NODE, argument], capture_output=True, text=True, check=True,
                         timeout=timeout)
    return json.loads(out.stdout)
