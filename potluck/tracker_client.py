"""A blocking client of the tracker's two gRPC services, for volunteers, leads and auditors alike.

Every call carries a deadline. A call that gets no answer raises `TrackerUnreachable`; one the tracker
refuses raises `TrackerError` with its status; each is one line naming the tracker and the call.
Nothing the tracker answers is trusted here: callers verify what they are given. The channel is TLS
(potluck/tls.py): pinned to a certificate fingerprint when the caller has one (a volunteer, from the
join line or the lead's manifest), otherwise encrypted to whatever certificate the tracker presents.
"""

from __future__ import annotations

from collections.abc import Iterator

import grpc

from potluck.address import check_host_port
from potluck.errors import TrackerError, TrackerUnreachable, VerificationError
from potluck.proto import tracker_pb2 as pb
from potluck.proto.tracker_pb2_grpc import LedgerStub, TrackerStub
from potluck.proto.wire import MAX_ENTRY_BYTES, MAX_MESSAGE_BYTES
from potluck.tls import TLS_NAME, certificate_sha256, probe_certificate

__all__ = ["DEFAULT_RPC_TIMEOUT", "ENTRIES_PER_REQUEST", "TrackerClient", "open_channel"]

DEFAULT_RPC_TIMEOUT = 30.0
#: Entries asked for per GetEntries call: each call's deadline covers this many.
ENTRIES_PER_REQUEST = 5000
#: Entry bytes one chunk of `entries` holds at most (then the rest comes by another call): what bounds the
#: memory a tracker can make its reader hold, whatever it sends.
MAX_CHUNK_BYTES = 64 * 1024 * 1024
PROBE_TIMEOUT = 10.0  # seconds for the TLS handshake that reads the tracker's certificate
#: Pages of balances read at most (of up to 1000 accounts each): a tracker cannot keep a reader forever.
MAX_BALANCE_PAGES = 100_000
# gRPC's own reconnect backoff grows to 120 s: after an outage of a minute the channel would not even try
# for as long. Capped at 2 s, a returning tracker is found within seconds (the reporter's queue drains).
CHANNEL_OPTIONS = [("grpc.max_receive_message_length", MAX_MESSAGE_BYTES), ("grpc.enable_retries", 0),
                   ("grpc.initial_reconnect_backoff_ms", 250), ("grpc.max_reconnect_backoff_ms", 2000)]
_UNREACHABLE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


def open_channel(address: str, cert_pem: bytes) -> grpc.Channel:
    """A TLS channel to the tracker at HOST:PORT that trusts only `cert_pem`, with the wire contract's limits."""
    return grpc.secure_channel(address, grpc.ssl_channel_credentials(root_certificates=cert_pem),
                               options=[*CHANNEL_OPTIONS, ("grpc.ssl_target_name_override", TLS_NAME)])


class TrackerClient:
    """Calls the tracker at `address` (HOST:PORT), each call within `rpc_timeout` seconds unless told otherwise.

    `tls_sha256` pins the tracker's certificate (lowercase hex); without it the first certificate seen
    is used. The channel opens on the first call (reading the certificate then: a tracker that is
    down raises `TrackerUnreachable` there, as any call would); `channel` is for callers that stream.
    """

    def __init__(self, address: str, *, rpc_timeout: float = DEFAULT_RPC_TIMEOUT, tls_sha256: str | None = None):
        self.address = check_host_port(address, "--tracker")
        self.rpc_timeout, self.pinned = rpc_timeout, tls_sha256
        self._channel: grpc.Channel | None = None
        self._cert_pem: bytes | None = None

    @property
    def channel(self) -> grpc.Channel:
        return self._open() if self._channel is None else self._channel

    def _open(self) -> grpc.Channel:
        self._cert_pem = probe_certificate(self.address, min(self.rpc_timeout, PROBE_TIMEOUT), self.pinned)
        self._channel = open_channel(self.address, self._cert_pem)
        self._stubs = {"tracker": TrackerStub(self._channel), "ledger": LedgerStub(self._channel)}
        return self._channel

    def _stub(self, service: str):
        if self._channel is None:
            self._open()
        return self._stubs[service]

    @property
    def tls_sha256(self) -> str:
        """The fingerprint of the certificate this client's channel trusts (opening it if need be)."""
        if self._cert_pem is None:
            self._open()
        return certificate_sha256(self._cert_pem)

    def close(self) -> None:
        if self._channel is not None:
            self._channel.close()

    def __enter__(self) -> TrackerClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- the Tracker service: what volunteers and leads ask -------------------------------------------

    def manifest(self) -> pb.GetManifestResponse:
        """The signed manifest and the log's verifier key, unverified."""
        return self._call("tracker", "GetManifest", pb.GetManifestRequest())

    def register(self, binding: bytes) -> pb.RegisterResponse:
        return self._call("tracker", "Register", pb.RegisterRequest(binding=binding))

    def status(self, account_id: str = "") -> pb.StatusResponse:
        """The swarm's status; with `account_id`, also that account's last logged sequence."""
        return self._call("tracker", "GetStatus", pb.StatusRequest(account_id=account_id))

    def check_reachability(self, port: int) -> pb.ReachabilityResponse:
        """Whether the tracker could connect back to this host's `port` (tracker/service/reachability.py)."""
        return self._call("tracker", "CheckReachability", pb.ReachabilityRequest(port=port))

    def fetch_shard(self, sha256: str, timeout: float) -> bytes:
        """A dataset shard's bytes, unchecked, within `timeout` seconds for the whole download."""
        try:
            chunks = self._stub("tracker").FetchShard(pb.FetchShardRequest(sha256=sha256), timeout=timeout)
            return b"".join(chunk.data for chunk in chunks)
        except grpc.RpcError as exc:
            raise self._error("FetchShard", exc, timeout) from None

    # --- the Ledger service: read only, for anyone ------------------------------------------------------

    def checkpoint(self) -> str:
        """The tracker's latest signed checkpoint note, unverified."""
        return self._call("ledger", "GetCheckpoint", pb.GetCheckpointRequest()).checkpoint

    def consistency_proof(self, old_size: int, new_size: int) -> list[bytes]:
        request = pb.ConsistencyProofRequest(old_size=old_size, new_size=new_size)
        return list(self._call("ledger", "GetConsistencyProof", request).hashes)

    def receipt(self, index: int) -> str:
        """A C2SP tlog-proof receipt for entry `index`, unverified."""
        return self._call("ledger", "GetReceipt", pb.ReceiptRequest(index=index)).receipt

    def balances(self, account_id: str = "") -> pb.BalancesResponse:
        """Every account's balance, or only `account_id`'s, read page after page (each a call of its own).

        Each page is computed at its own tree size; when they differ (the log grew meanwhile) the answer's
        `tree_size` is the largest, so that a caller comparing balances with a log of some size sees that
        they are not of it (as `audit verify` does). Raises `VerificationError` if the pages do not follow
        each other (an account sent twice, or out of order).
        """
        answer, token = pb.BalancesResponse(), ""
        for _ in range(MAX_BALANCE_PAGES):
            page = self._call("ledger", "GetBalances", pb.BalancesRequest(account_id=account_id,
                                                                               page_token=token))
            last = answer.balances[-1].account_id if answer.balances else ""
            if page.balances and page.balances[0].account_id <= last:
                raise VerificationError(f"the tracker's balances page after {last[:12]} starts at "
                                        f"{page.balances[0].account_id[:12]}, not after it")
            answer.flops_per_credit = page.flops_per_credit
            answer.tree_size = max(answer.tree_size, page.tree_size)
            answer.balances.extend(page.balances)
            if not page.next_page_token:
                return answer
            if page.next_page_token <= token:
                raise VerificationError(f"the tracker's balances pages go back (page token {page.next_page_token[:12]} "
                                        f"after {token[:12]})")
            token = page.next_page_token
        raise VerificationError(f"the tracker's balances run past {MAX_BALANCE_PAGES} pages")

    def entries(self, start: int, end: int) -> Iterator[list[bytes]]:
        """Entry bytes for indices start..end-1, in chunks of at most ENTRIES_PER_REQUEST, in order.

        Raises `VerificationError` if the tracker answers an index other than the one that comes next
        (an entry left out or sent twice must not shift every later one), too few entries, more than
        were asked for, or an entry larger than any the tracker may log.

        Threat: a hostile tracker streaming without end (or entries of 4 MiB each) must not grow the
        caller's memory without bound: a chunk holds at most MAX_CHUNK_BYTES (and one message more);
        past that, the rest of the range is asked for by a call of its own.
        """
        position = start
        while position < end:
            chunk_end = min(position + ENTRIES_PER_REQUEST, end)
            chunk, held = self._entries_chunk(position, chunk_end)
            if len(chunk) != chunk_end - position and (not chunk or held < MAX_CHUNK_BYTES):
                raise VerificationError(f"entry {position + len(chunk)}: the tracker's answer to entries "
                                        f"{position}..{chunk_end} stopped after {len(chunk)} entries")
            yield chunk
            position += len(chunk)

    def _entries_chunk(self, start: int, end: int) -> tuple[list[bytes], int]:
        """One GetEntries call for start..end-1: the entries read (fewer once MAX_CHUNK_BYTES are held), and
        their size in bytes."""
        chunk: list[bytes] = []
        held = 0
        call = self._stub("ledger").GetEntries(pb.EntriesRequest(start=start, end=end), timeout=self.rpc_timeout)
        try:
            for batch in call:
                expected = start + len(chunk)
                if batch.start != expected:
                    raise VerificationError(f"entry {expected}: the tracker sent entries from {batch.start} where "
                                            f"{expected} was expected (an entry left out or reordered)")
                if len(chunk) + len(batch.entries) > end - start:
                    raise VerificationError(f"entries {start}..{end}: the tracker sent more than the {end - start} "
                                            "entries asked for")
                for offset, data in enumerate(batch.entries):
                    if len(data) > MAX_ENTRY_BYTES:
                        raise VerificationError(f"entry {expected + offset}: the tracker sent {len(data)} bytes, "
                                                f"more than the {MAX_ENTRY_BYTES} an entry may hold")
                chunk.extend(batch.entries)
                held += sum(map(len, batch.entries))
                if held >= MAX_CHUNK_BYTES:
                    break
        except grpc.RpcError as exc:
            raise self._error("GetEntries", exc, self.rpc_timeout) from None
        finally:
            call.cancel()  # a no-op once the stream ended; stops it when we gave up early
        return chunk, held

    def _call(self, service: str, method: str, request):
        try:
            return getattr(self._stub(service), method)(request, timeout=self.rpc_timeout)
        except grpc.RpcError as exc:
            raise self._error(method, exc, self.rpc_timeout) from None

    def _error(self, method: str, exc: grpc.RpcError, timeout: float) -> TrackerError:
        code = exc.code() if hasattr(exc, "code") else None
        details = (exc.details() if hasattr(exc, "details") else None) or str(exc)
        details = " ".join(details.split())  # grpc's connection errors span lines
        name = code.name if code is not None else None
        if code == grpc.StatusCode.DEADLINE_EXCEEDED:
            return TrackerUnreachable(f"tracker {self.address} unreachable: no answer to {method} within "
                                      f"{timeout:g}s", name)
        if code in _UNREACHABLE:
            return TrackerUnreachable(f"tracker {self.address} unreachable: {details}", name)
        return TrackerError(f"tracker {self.address}: {method} failed ({name or 'error'}): {details}", name)
