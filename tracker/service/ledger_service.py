"""The ledger's read API over gRPC: checkpoints, proofs, receipts, entries and balances.

Read only and open to anyone: auditors and volunteers check the tracker with it. A request
outside the log gets OUT_OF_RANGE, a malformed one INVALID_ARGUMENT, each with the reason.
"""

from __future__ import annotations

import asyncio

import grpc

from potluck.errors import ConfigError
from potluck.identity import parse_credited
from potluck.proto import tracker_pb2 as pb
from potluck.proto.tracker_pb2_grpc import LedgerServicer
from potluck.tracker.ledger import MAX_ENTRIES_PER_READ, Ledger, LedgerRangeError

ENTRIES_PER_CHUNK = 1000
MAX_BATCH_BYTES = 1024 * 1024  # entries are at most 256 KiB, so a batch stays far below the 4 MiB message cap


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
        # Many entries per message: one message per entry caps a stream at ~15k entries/s.
        for chunk in range(start, end, ENTRIES_PER_CHUNK):
            chunk_end = min(chunk + ENTRIES_PER_CHUNK, end)
            batch = pb.EntriesBatch(start=chunk)
            size = 0
            for data in await self._read(context, self.ledger.entries, chunk, chunk_end):
                if size + len(data) > MAX_BATCH_BYTES and batch.entries:
                    yield batch
                    batch, size = pb.EntriesBatch(start=batch.start + len(batch.entries)), 0
                batch.entries.append(data)
                size += len(data)
            yield batch

    async def GetBalances(self, request, context):
        account = request.account_id
        if account:
            try:
                account = parse_credited(account, "account_id")
            except ConfigError as e:
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(e))
        with self.ledger.lock:
            size = self.ledger.size
            accounts = [a for a in self.ledger.balances.accounts.values() if not account or a.account_id == account]
            balances = [pb.Balance(account_id=a.account_id, granted_flops=a.granted_flops,
                                   escrow_flops=a.escrow_flops, vested_flops=a.vested_flops,
                                   forfeited_flops=a.forfeited_flops, strikes=a.strikes, banned=a.banned,
                                   checks_pending=len(getattr(a, "awaiting", ())),
                                   data_granted_flops=a.data_granted_flops, data_escrow_flops=a.data_escrow_flops,
                                   data_vested_flops=a.data_vested_flops,
                                   data_forfeited_flops=a.data_forfeited_flops)
                        for a in sorted(accounts, key=lambda a: a.account_id)]
        return pb.BalancesResponse(flops_per_credit=self.flops_per_credit, tree_size=size, balances=balances)

    async def _read(self, context, read, *args):
        try:
            return await asyncio.to_thread(read, *args)
        except LedgerRangeError as e:
            await context.abort(grpc.StatusCode.OUT_OF_RANGE, str(e))


assert ENTRIES_PER_CHUNK <= MAX_ENTRIES_PER_READ
