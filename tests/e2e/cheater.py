"""A volunteer that cheats: `potluck node join`, with its reports (or its training) doctored.

Run as `python cheater.py MODE CHEAT_AFTER node join ARGS…`: it behaves honestly for its first
CHEAT_AFTER reports, then:
  triple     claims three times the micro-batches it trained (real claims, repeated);
  fake       reports made-up losses (within the honest range) and made-up gradient sketches;
  freerider  runs hivemind (progress records, averaging) but never computes a gradient: it
             reports honest forward losses and the sketches of the zero gradients it sends;
  griefer    trains and reports honestly, but gathers into every averaging round an attestation
             signed by a throwaway key (valid signature, the key bound to nothing), so that its
             honest groupmates carry it to the tracker;
  past       claims its window started an hour before it did (and lasted an hour longer), so that
             any claim looks plausible for its time;
  pad_unseen every second report, claims 1.8x the micro-batches it trained (the extra ones made up,
             losses and sketches in its honest range) and names a starting state nobody ever had, so
             that no verifier can recompute it (issue 11 measured 2 such reports vest);
  future     reports each window at an epoch 10^6 ahead of the one it trained (a made-up epoch
             restarts the per-epoch claim cap, and names data nobody trained on);
  poison     trains and reports honestly, but from its first step keeps a hivemind progress record
             at epoch 10^6 in the DHT (signed by a key of its own, as any peer's is), and writes the
             same over every other peer's record (unsigned: not theirs to write). Before the fix one
             such record would move every honest peer's hivemind epoch to 10^6.
"""

import os
import random
import sys
import threading
import time
from dataclasses import replace

import torch

from potluck.attestations import sign_attestation
from potluck.cli import main
from potluck.identity import AccountKey
from potluck.node import supervisor, training, worker
from potluck.node.training import WindowStats
from potluck.proto.wire import SKETCH_DIM, num_segments

MODE, CHEAT_AFTER = sys.argv[1], int(sys.argv[2])
sys.argv = [sys.argv[0], *sys.argv[3:]]
honest_on_window = supervisor.Node._on_window


def doctored(stats: WindowStats) -> WindowStats:
    rng = random.Random(stats.epoch)
    if MODE == "triple":
        return replace(stats, samples=3 * stats.samples, tokens=3 * stats.tokens, losses=stats.losses * 3,
                       sketch=(stats.sketch * 3)[:SKETCH_DIM * num_segments(3 * len(stats.losses))])
    if MODE == "fake":
        low, high = min(stats.losses), max(stats.losses)
        scale = max(abs(v) for v in stats.sketch)
        return replace(stats, losses=tuple(rng.uniform(low, high) for _ in stats.losses),
                       sketch=tuple(rng.uniform(-scale, scale) for _ in stats.sketch))
    if MODE == "past":
        return replace(stats, started_at=stats.started_at - 3600.0, wall_time=stats.wall_time + 3600.0)
    if MODE == "pad_unseen":
        low, high = min(stats.losses), max(stats.losses)
        scale = max(abs(v) for v in stats.sketch)
        steps = len(stats.losses) + max(1, round(0.8 * len(stats.losses)))
        sketch = stats.sketch + tuple(rng.uniform(-scale, scale)
                                      for _ in range(SKETCH_DIM * num_segments(steps) - len(stats.sketch)))
        samples = steps * stats.batch_size
        return replace(stats, samples=samples, tokens=samples * (stats.tokens // stats.samples),
                       losses=stats.losses + tuple(rng.uniform(low, high) for _ in range(steps - len(stats.losses))),
                       sketch=sketch, start_state_digest=os.urandom(32))
    if MODE == "future":
        return replace(stats, epoch=stats.epoch + 10**6)
    return stats


def on_window(self, stats: WindowStats) -> None:
    cheats = self.windows_done >= CHEAT_AFTER and (MODE != "pad_unseen" or self.windows_done % 2 == 1)
    honest_on_window(self, doctored(stats) if cheats else stats)


if MODE == "freerider":
    honest_make_optimizer = training.TrainingWorker._make_optimizer

    def make_optimizer(self):
        params = list(self.model.parameters())

        def backward(tensor, *args, **kwargs):  # no gradient is ever computed: zeros go to averaging
            for param in params:
                param.grad = torch.zeros_like(param)

        torch.Tensor.backward = backward
        return honest_make_optimizer(self)

    training.TrainingWorker._make_optimizer = make_optimizer
elif MODE == "griefer":
    THROWAWAY = AccountKey.generate()

    def forged_attestation(account, origin, epoch, peer_id):
        return sign_attestation(THROWAWAY, origin, epoch, peer_id)

    worker.sign_attestation = forged_attestation  # the worker is forked from here: it gathers this
elif MODE == "poison":
    ABSURD_EPOCH = 10**6
    honest_join = training.TrainingWorker._join_swarm

    def poison(worker) -> None:
        import hivemind
        from hivemind.dht.crypto import RSASignatureValidator
        from hivemind.optim.progress_tracker import LocalTrainingProgress
        from hivemind.utils import get_dht_time
        from hivemind.utils.crypto import RSAPrivateKey

        key = f"{worker.config.hivemind.run_id}_progress"
        signer = RSASignatureValidator(RSAPrivateKey())  # a key of its own: its record is validly signed
        def joined_dht(**kwargs) -> hivemind.DHT:
            # On 2 loaded cores a bootstrap ping can go unanswered (CI measured one in ~20 runs): the
            # attacker keeps trying, as a real one would, rather than give up on its attack.
            for _ in range(30):
                try:
                    return hivemind.DHT(initial_peers=worker.visible_maddrs, start=True, **kwargs)
                except RuntimeError as error:
                    print(f"poison: DHT not joined yet ({error}); trying again", flush=True)
                    time.sleep(1.0)
            raise RuntimeError("poison: the swarm's DHT never answered")

        # Both DHTs are children of this worker: its process group, so they go when the node stops it.
        signed = joined_dht(record_validators=[signer])
        unsigned = joined_dht()
        attempts = 0
        while True:
            record = LocalTrainingProgress(peer_id=signed.peer_id.to_bytes(), epoch=ABSURD_EPOCH, samples_accumulated=0,
                                           samples_per_second=1.0, time=get_dht_time(), client_mode=False).dict()
            signed.store(key, subkey=signer.local_public_key, value=record, expiration_time=get_dht_time() + 30)
            found = signed.get(key, latest=True)  # a DHT without the validator cannot read signed values
            for subkey in (found.value if found is not None and isinstance(found.value, dict) else {}):
                if subkey != signer.local_public_key:
                    unsigned.store(key, subkey=subkey, value=record, expiration_time=get_dht_time() + 30)
                    attempts += 1
            print(f"poison: own record at epoch {ABSURD_EPOCH} stored; {attempts} overwrites tried", flush=True)
            time.sleep(1.0)

    def join_swarm(self) -> None:
        threading.Thread(target=poison, args=(self,), daemon=True, name="poison").start()
        honest_join(self)

    training.TrainingWorker._join_swarm = join_swarm
else:
    supervisor.Node._on_window = on_window

if __name__ == "__main__":
    main()
