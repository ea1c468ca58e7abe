"""A report-opening worker: `python -m potluck.tracker.intake.opening_worker`, started by `OpeningPool`.

It reads pickled frames on stdin (the `ReportOpener` first, then requests: ("open", envelopes) or
("attestations", each report's attestations)) and answers
each batch on stdout; it ends at the end of its input, so also when the tracker dies. The package
does not import this module, so running it does not load it twice.
"""

from __future__ import annotations

import pickle
import sys

from potluck.tracker.intake.opening_pool import write_frame


def _serve() -> None:
    """The worker: the opener first, then batches of envelopes, each answered; ends at end of input."""
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    opener = None
    while header := stdin.read(4):
        request = pickle.loads(stdin.read(int.from_bytes(header, "big")))
        if opener is None:
            opener, answer = request, None
        else:
            kind, items = request
            answer = opener.open_all(items) if kind == "open" else opener.read_all(items)
        write_frame(stdout, answer)
        stdout.flush()


if __name__ == "__main__":
    _serve()
