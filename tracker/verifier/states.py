"""The model states the verifier checks reports on: held by digest, and fetched from the reporting peer.

A check needs the state its report started from. The verifier holds the swarm's recent states and
those it fetched; any other it asks of the report's own peer (state_fetcher.py), each try within
FETCH_TIMEOUT. Fetches run side by side, beside the recomputations, so a peer that never answers
costs one fetch slot for the timeout, not the verifier's whole loop.

Slots are what a flood could still take: anyone can register accounts, and each can send a report
whose peer hangs. So no account has more than one fetch under way, and accounts that have not yet
proven a report by recomputation (new, and free to make by the thousand) share at most
NEW_ACCOUNT_FETCHES of the MAX_FETCHES slots: a Sybil flood delays other new accounts' checks but
never an established volunteer's. An established account that hangs its fetches is struck for it,
which forfeits credit it earned with verified work; a second strike bans it.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from concurrent.futures import Future

import torch

from potluck.node.sketch import state_digest
from potluck.tracker.verifier.messages import Job
from potluck.tracker.verifier.state_fetcher import StateFetcher, StateUnavailable

# Model states kept (each a full copy of the model): the recent epochs' states, several an epoch when
# peers are out of step; a late report (from a node that was cut off) still finds its state.
MAX_SNAPSHOTS = 16
# A check's state download: each try within FETCH_TIMEOUT, FETCH_RETRY apart, FETCH_ATTEMPTS in all before the
# check fails (a peer busy with an averaging round, or a blip in its link, gets two more chances). A node
# keeps serving its states until its reports are checked (node/supervisor.py).
FETCH_TIMEOUT = 20.0
FETCH_RETRY = 5.0
FETCH_ATTEMPTS = 3
# Downloads under way at once (each holds at most one model's parameters), and how many of them may be
# for accounts with no report proven yet.
MAX_FETCHES = 4
NEW_ACCOUNT_FETCHES = 2


class Wanted:
    """A check's need of a state it does not hold: the tries so far, and the one under way."""

    def __init__(self, job: Job, account_id: str, peer_id: str, digest: bytes, epoch: int):
        self.job, self.account_id, self.peer_id, self.digest, self.epoch = job, account_id, peer_id, digest, epoch
        self.errors: list[str] = []
        self.next_try = 0.0
        self.under_way: Future | None = None

    @property
    def given_up(self) -> bool:
        return len(self.errors) >= FETCH_ATTEMPTS


class States:
    """Model states by digest, oldest dropped first; fetched from a named peer when missing."""

    def __init__(self, fetcher: StateFetcher, model: torch.nn.Module):
        self.fetcher, self.model = fetcher, model  # fetched tensors are checked in `model`'s parameters
        self.held: OrderedDict[bytes, tuple[int, dict]] = OrderedDict()
        self.fetching: dict[str, Wanted] = {}  # account -> its fetch under way

    def add(self, digest: bytes, epoch: int, model: torch.nn.Module) -> None:
        self.held[digest] = (epoch, _snapshot(model))
        self.held.move_to_end(digest)

    def get(self, digest: bytes) -> dict | None:
        held = self.held.get(digest)
        return None if held is None else held[1]

    def obtain(self, wanted: Wanted) -> dict | None:
        """The state, once fetched; None while it is not (yet): under way, waiting for a slot or its next
        try, or given up on (`wanted.errors` says why)."""
        if (held := self.get(wanted.digest)) is not None:
            self._release(wanted)
            return held
        if wanted.under_way is not None:
            if not wanted.under_way.done():
                return None
            try:
                return self._adopt(wanted, wanted.under_way.result())
            except StateUnavailable as e:
                wanted.errors.append(str(e))
                wanted.next_try = time.monotonic() + FETCH_RETRY
                return None
            finally:
                self._release(wanted)
        if wanted.given_up or time.monotonic() < wanted.next_try or not self._slot_for(wanted):
            return None
        like = [p.detach() for p in self.model.parameters()]  # read for shapes and dtypes only
        wanted.under_way = self.fetcher.start(wanted.peer_id, wanted.digest, like, FETCH_TIMEOUT)
        self.fetching[wanted.account_id] = wanted
        return None

    def _slot_for(self, wanted: Wanted) -> bool:
        if wanted.account_id in self.fetching or len(self.fetching) >= MAX_FETCHES:
            return False
        new = sum(not w.job.established for w in self.fetching.values())
        return wanted.job.established or new < NEW_ACCOUNT_FETCHES

    def _release(self, wanted: Wanted) -> None:
        if self.fetching.get(wanted.account_id) is wanted:
            del self.fetching[wanted.account_id]
        wanted.under_way = None

    def _adopt(self, wanted: Wanted, tensors: list[torch.Tensor]) -> dict:
        params = list(self.model.parameters())
        with torch.no_grad():
            for param, tensor in zip(params, tensors, strict=True):
                param.copy_(tensor)
        if state_digest(self.model) != wanted.digest:
            raise StateUnavailable("it served a state with another digest")
        self.add(wanted.digest, wanted.epoch, self.model)
        return self.held[wanted.digest][1]

    def drop(self, wanted: Wanted) -> None:
        """The check no longer needs it (decided, or the verifier is stopping)."""
        if wanted.under_way is not None:
            wanted.under_way.cancel()
        self._release(wanted)

    def trim(self) -> None:
        while len(self.held) > MAX_SNAPSHOTS:
            self.held.popitem(last=False)


def _snapshot(model: torch.nn.Module) -> dict:
    """A copy of the model's state that its further training does not touch."""
    return {k: v.clone() for k, v in model.state_dict().items()}
