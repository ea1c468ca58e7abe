"""The ledger's read API over gRPC: checkpoints, proofs, receipts, entries and balances.

Read only and open to anyone: auditors and volunteers check the tracker with it. A request
outside the log gets OUT_OF_RANGE, a malformed one INVALID_ARGUMENT, each with the reason.

Threat: anyone may call it, as often as they like. So every read is bounded (entries are read
ENTRIES_PER_READ at a time, balances served in pages of at most MAX_BALANCES_PER_PAGE), runs off the
event loop, and holds the ledger's locks only to copy what it read, never across a send: one
reader cannot hold up the writer, and a log of any size (measured before: GetBalances failed past
~45k accounts, on the 4 MiB message limit) is served.
"""

from __future__ import annotations

import asyncio
import heapq

import grpc

from potluck.errors import ConfigError
from potluck.identity import parse_credited
from potluck.proto import tracker_pb2 as pb
from potluck.proto.tracker_pb2_grpc import LedgerServicer
from potluck.tracker.ledger import MAX_ENTRIES_PER_READ, Ledger, LedgerRangeError

ENTRIES_PER_BATCH = 1000  # per message: one message per entry caps a stream at ~15k entries/s
ENTRIES_PER_READ = 64  # per trip to the store: at most 16 MiB of entries held (they are at most 256 KiB)
MAX_BATCH_BYTES = 1024 * 1024  # entries are at most 256 KiB, so a batch stays far below the 4 MiB message cap
MAX_BALANCES_PER_PAGE = 1000  # a Balance is ~100 bytes on the wire: a page is ~0.1 MB
MAX_PAGE_TOKEN_CHARS = 200


class LedgerService(LedgerServicer):
    def __init__(self, ledger: Ledger, flops_per_credit: int):
        self.ledger = ledger
        self.flops_per_credit = flops_per_credit

    async def GetCheckpoint(self, request, context):
        return pb.CheckpointResponse(checkpoint=await asyncio.to_thread(self.ledger.checkpoint))

    async def GetConsistencyProof(self, request, context):
        if request.old_size > request.new_size:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                                f"old_size {request.old_size} is larger than new_size {request.new_size}")
        hashes = await self._read(context, self.ledger.consistency_proof, request.old_size, request.new_size)
        return pb.ConsistencyProofResponse(hashes=hashes)

    async def GetReceipt(self, request, context):
        return pb.ReceiptResponse(receipt=await self._read(context, self.ledger.receipt, request.index))

    async def GetEntries(self, request, context):
        start, end = request.start, request.end
        if start > end:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"start {start} is after end {end}")
        if end > self.ledger.size:
            await context.abort(grpc.StatusCode.OUT_OF_RANGE, f"no entries {start}..{end} (the log has "
                                                              f"{self.ledger.size})")
        batch, size = pb.EntriesBatch(start=start), 0
        for chunk in range(start, end, ENTRIES_PER_READ):
            for data in await self._read(context, self.ledger.entries, chunk, min(chunk + ENTRIES_PER_READ, end)):
                if batch.entries and (size + len(data) > MAX_BATCH_BYTES or len(batch.entries) >= ENTRIES_PER_BATCH):
                    yield batch
                    batch, size = pb.EntriesBatch(start=batch.start + len(batch.entries)), 0
                batch.entries.append(data)
                size += len(data)
        if batch.entries:
            yield batch

    async def GetBalances(self, request, context):
        account = request.account_id
        if account:
            try:
                account = parse_credited(account, "account_id")
            except ConfigError as e:
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(e))
        if len(request.page_token) > MAX_PAGE_TOKEN_CHARS:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"page_token: at most {MAX_PAGE_TOKEN_CHARS} "
                                                                  f"characters (got {len(request.page_token)})")
        page_size = min(request.page_size or MAX_BALANCES_PER_PAGE, MAX_BALANCES_PER_PAGE)
        size, balances, next_token = await asyncio.to_thread(self._balances_page, account, request.page_token,
                                                             page_size)
        return pb.BalancesResponse(flops_per_credit=self.flops_per_credit, tree_size=size, balances=balances,
                                   next_page_token=next_token)

    def _balances_page(self, account: str, after: str, page_size: int) -> tuple[int, list[pb.Balance], str]:
        """In a thread: the accounts after `after` (by id), at most `page_size`, at one tree size."""
        accounts = self.ledger.balances.accounts
        with self.ledger.lock:  # a copy of the ids only: the writer applies entries under this lock
            ids = [account] if account in accounts else [] if account else list(accounts)
        page = heapq.nsmallest(page_size + 1, (a for a in ids if a > after))
        with self.ledger.lock:
            size = self.ledger.size
            balances = [_balance(accounts[a]) for a in page[:page_size]]
        return size, balances, page[page_size - 1] if len(page) > page_size else ""
    async def _read(self, context, read, *args):
        try:
            return await asyncio.to_thread(read, *args)
        except LedgerRangeError as e:
            await context.abort(grpc.StatusCode.OUT_OF_RANGE, str(e))


def _balance(a) -> pb.Balance:
    return pb.Balance(account_id=a.account_id, granted_flops=a.granted_flops, escrow_flops=a.escrow_flops,
                      vested_flops=a.vested_flops, forfeited_flops=a.forfeited_flops, strikes=a.strikes,
                      banned=a.banned, checks_pending=len(getattr(a, "awaiting", ())),
                      data_granted_flops=a.data_granted_flops, data_escrow_flops=a.data_escrow_flops,
                      data_vested_flops=a.data_vested_flops, data_forfeited_flops=a.data_forfeited_flops)


assert ENTRIES_PER_READ <= MAX_ENTRIES_PER_READ
