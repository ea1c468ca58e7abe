"""A ledger writer for the crash trials: appends batches forever, printing each acknowledged append.

Run as `python crash_writer.py LOCATION SEED MARK`; the test SIGKILLs it at a random moment (MARK is
the high-water mark file, which a kill may leave ahead of the stored checkpoints).
Printed lines: `ack INDEX LEAFHASH` once an append returned (so it is durable), and
`checkpoint BASE64NOTE` once a checkpoint was signed.
"""

import base64
import random
import sys

from ledgerkit import ORIGIN, grant
from nacl.signing import SigningKey

from potluck.entries import serialize_entry
from potluck.identity import AccountKey
from potluck.tlog import leaf_hash
from potluck.tracker.ledger.high_water import HighWaterMark
from potluck.tracker.ledger.ledger import Ledger
from potluck.tracker.ledger.store import open_store

LOG_KEY = SigningKey(b"\x07" * 32)


def main(location: str, seed: int, mark: str) -> None:
    rng = random.Random(seed)
    accounts = [AccountKey.generate() for _ in range(3)]
    ledger = Ledger(open_store(location), origin=ORIGIN, log_key=LOG_KEY, mark=HighWaterMark(mark))
    sequence = ledger.size + 1
    print("ready", flush=True)
    while True:
        batch = [grant(rng.choice(accounts), sequence + i) for i in range(rng.randint(1, 40))]
        sequence += len(batch)
        indices = ledger.append(batch)
        acks = zip(indices, batch, strict=True)
        sys.stdout.write("".join(f"ack {i} {leaf_hash(serialize_entry(e)).hex()}\n" for i, e in acks))
        if rng.random() < 0.3:
            sys.stdout.write(f"checkpoint {base64.b64encode(ledger.checkpoint().encode()).decode()}\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), sys.argv[3])
