"""A blocking client of the tracker's read-only `Ledger` gRPC service, for auditors and volunteers.

Every call carries a deadline. A tracker that cannot be reached, or that fails a call, becomes a
`TrackerError` with one line saying which tracker and what happened; nothing it answers is trusted.
"""

from __future__ import annotations

from collections.abc import Iterator

import grpc

from potluck.errors import PotluckError, VerificationError
from potluck.proto import tracker_pb2 as pb
from potluck.proto.tracker_pb2_grpc import LedgerStub
from potluck.swarm_config import check_host_port

__all__ = ["DEFAULT_RPC_TIMEOUT", "ENTRIES_PER_REQUEST", "LedgerClient", "TrackerError", "check_address"]

DEFAULT_RPC_TIMEOUT = 30.0
#: Entries asked for per GetEntries call: each call's deadline covers this many.
ENTRIES_PER_REQUEST = 5000
_CHANNEL_OPTIONS = [("grpc.max_receive_message_length", 4 * 1024 * 1024), ("grpc.enable_retries", 0)]
_UNREACHABLE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


class TrackerError(PotluckError):
    """The tracker could not be reached or refused a call. `code` is the gRPC status, if any."""

    def __init__(self, message: str, code: grpc.StatusCode | None = None):
        super().__init__(message)
        self.code = code

    @property
    def unreachable(self) -> bool:
        """No answer came (as opposed to an answer refusing the call)."""
        return self.code in _UNREACHABLE


def check_address(address: str) -> str:
    """`HOST:PORT` or raise `ConfigError`."""
    return check_host_port(address, "--tracker")


class LedgerClient:
    """Calls the tracker's `Ledger` service at `address` (HOST:PORT), each call within `rpc_timeout` seconds."""

    def __init__(self, address: str, *, rpc_timeout: float = DEFAULT_RPC_TIMEOUT):
        self.address = check_address(address)
        self.rpc_timeout = rpc_timeout
        self._channel = grpc.insecure_channel(address, options=_CHANNEL_OPTIONS)
        self._stub = LedgerStub(self._channel)

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> LedgerClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def checkpoint(self) -> str:
        """The tracker's latest signed checkpoint note, unverified."""
        return self._call("GetCheckpoint", pb.GetCheckpointRequest()).checkpoint

    def consistency_proof(self, old_size: int, new_size: int) -> list[bytes]:
        request = pb.ConsistencyProofRequest(old_size=old_size, new_size=new_size)
        return list(self._call("GetConsistencyProof", request).hashes)

    def receipt(self, index: int) -> str:
        """A C2SP tlog-proof receipt for entry `index`, unverified."""
        return self._call("GetReceipt", pb.ReceiptRequest(index=index)).receipt

    def balances(self) -> pb.BalancesResponse:
        return self._call("GetBalances", pb.BalancesRequest())

    def entries(self, start: int, end: int) -> Iterator[list[bytes]]:
        """Entry bytes for indices start..end-1, in chunks of at most ENTRIES_PER_REQUEST, in order.

        Raises `VerificationError` if the tracker answers an index other than the one that comes next
        (an entry left out or sent twice must not shift every later one) or too few entries.
        """
        for chunk_start in range(start, end, ENTRIES_PER_REQUEST):
            chunk_end = min(chunk_start + ENTRIES_PER_REQUEST, end)
            request = pb.EntriesRequest(start=chunk_start, end=chunk_end)
            chunk: list[bytes] = []
            call = self._stub.GetEntries(request, timeout=self.rpc_timeout)
            try:
                for batch in call:
                    expected = chunk_start + len(chunk)
                    if batch.start != expected:
                        raise VerificationError(f"entry {expected}: the tracker sent entries from {batch.start} where "
                                                f"{expected} was expected (an entry left out or reordered)")
                    chunk.extend(batch.entries)
            except grpc.RpcError as exc:
                raise self._error("GetEntries", exc) from None
            finally:
                call.cancel()  # a no-op once the stream ended; stops it when we gave up early
            if len(chunk) != chunk_end - chunk_start:
                raise VerificationError(f"entry {chunk_start + len(chunk)}: the tracker's answer to entries "
                                   f"{chunk_start}..{chunk_end} stopped after {len(chunk)} entries")
            yield chunk

    def _call(self, method: str, request):
        try:
            return getattr(self._stub, method)(request, timeout=self.rpc_timeout)
        except grpc.RpcError as exc:
            raise self._error(method, exc) from None

    def _error(self, method: str, exc: grpc.RpcError) -> TrackerError:
        code = exc.code() if hasattr(exc, "code") else None
        details = (exc.details() if hasattr(exc, "details") else None) or str(exc)
        details = " ".join(details.split())  # grpc's connection errors span lines
        if code == grpc.StatusCode.DEADLINE_EXCEEDED:
            return TrackerError(f"tracker {self.address} unreachable: no answer to {method} within "
                                f"{self.rpc_timeout:g}s", code)
        if code in _UNREACHABLE:
            return TrackerError(f"tracker {self.address} unreachable: {details}", code)
        name = code.name if code is not None else "error"
        return TrackerError(f"tracker {self.address}: {method} failed ({name}): {details}", code)
