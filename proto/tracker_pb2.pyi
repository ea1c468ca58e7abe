from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class GetManifestRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetManifestResponse(_message.Message):
    __slots__ = ("signed_manifest", "log_key")
    SIGNED_MANIFEST_FIELD_NUMBER: _ClassVar[int]
    LOG_KEY_FIELD_NUMBER: _ClassVar[int]
    signed_manifest: bytes
    log_key: str
    def __init__(self, signed_manifest: _Optional[bytes] = ..., log_key: _Optional[str] = ...) -> None: ...

class RegisterRequest(_message.Message):
    __slots__ = ("binding",)
    BINDING_FIELD_NUMBER: _ClassVar[int]
    binding: bytes
    def __init__(self, binding: _Optional[bytes] = ...) -> None: ...

class RegisterResponse(_message.Message):
    __slots__ = ("index",)
    INDEX_FIELD_NUMBER: _ClassVar[int]
    index: int
    def __init__(self, index: _Optional[int] = ...) -> None: ...

class SubmitReportsRequest(_message.Message):
    __slots__ = ("reports",)
    REPORTS_FIELD_NUMBER: _ClassVar[int]
    reports: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, reports: _Optional[_Iterable[bytes]] = ...) -> None: ...

class SubmitReportsResponse(_message.Message):
    __slots__ = ("acks",)
    ACKS_FIELD_NUMBER: _ClassVar[int]
    acks: _containers.RepeatedCompositeFieldContainer[ReportAck]
    def __init__(self, acks: _Optional[_Iterable[_Union[ReportAck, _Mapping]]] = ...) -> None: ...

class ReportAck(_message.Message):
    __slots__ = ("report_sha256", "sequence", "verdict", "index", "checkpoint", "reason", "receipt", "code", "retry")
    class Verdict(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        VERDICT_UNSPECIFIED: _ClassVar[ReportAck.Verdict]
        ACCEPTED: _ClassVar[ReportAck.Verdict]
        REJECTED: _ClassVar[ReportAck.Verdict]
    VERDICT_UNSPECIFIED: ReportAck.Verdict
    ACCEPTED: ReportAck.Verdict
    REJECTED: ReportAck.Verdict
    REPORT_SHA256_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    VERDICT_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    RECEIPT_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    RETRY_FIELD_NUMBER: _ClassVar[int]
    report_sha256: bytes
    sequence: int
    verdict: ReportAck.Verdict
    index: int
    checkpoint: str
    reason: str
    receipt: str
    code: str
    retry: bool
    def __init__(self, report_sha256: _Optional[bytes] = ..., sequence: _Optional[int] = ..., verdict: _Optional[_Union[ReportAck.Verdict, str]] = ..., index: _Optional[int] = ..., checkpoint: _Optional[str] = ..., reason: _Optional[str] = ..., receipt: _Optional[str] = ..., code: _Optional[str] = ..., retry: _Optional[bool] = ...) -> None: ...

class FetchShardRequest(_message.Message):
    __slots__ = ("sha256",)
    SHA256_FIELD_NUMBER: _ClassVar[int]
    sha256: str
    def __init__(self, sha256: _Optional[str] = ...) -> None: ...

class ShardChunk(_message.Message):
    __slots__ = ("data",)
    DATA_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    def __init__(self, data: _Optional[bytes] = ...) -> None: ...

class GetCheckpointRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class CheckpointResponse(_message.Message):
    __slots__ = ("checkpoint",)
    CHECKPOINT_FIELD_NUMBER: _ClassVar[int]
    checkpoint: str
    def __init__(self, checkpoint: _Optional[str] = ...) -> None: ...

class ConsistencyProofRequest(_message.Message):
    __slots__ = ("old_size", "new_size")
    OLD_SIZE_FIELD_NUMBER: _ClassVar[int]
    NEW_SIZE_FIELD_NUMBER: _ClassVar[int]
    old_size: int
    new_size: int
    def __init__(self, old_size: _Optional[int] = ..., new_size: _Optional[int] = ...) -> None: ...

class ConsistencyProofResponse(_message.Message):
    __slots__ = ("hashes",)
    HASHES_FIELD_NUMBER: _ClassVar[int]
    hashes: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, hashes: _Optional[_Iterable[bytes]] = ...) -> None: ...

class ReceiptRequest(_message.Message):
    __slots__ = ("index",)
    INDEX_FIELD_NUMBER: _ClassVar[int]
    index: int
    def __init__(self, index: _Optional[int] = ...) -> None: ...

class ReceiptResponse(_message.Message):
    __slots__ = ("receipt",)
    RECEIPT_FIELD_NUMBER: _ClassVar[int]
    receipt: str
    def __init__(self, receipt: _Optional[str] = ...) -> None: ...

class EntriesRequest(_message.Message):
    __slots__ = ("start", "end")
    START_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    start: int
    end: int
    def __init__(self, start: _Optional[int] = ..., end: _Optional[int] = ...) -> None: ...

class EntriesBatch(_message.Message):
    __slots__ = ("start", "entries")
    START_FIELD_NUMBER: _ClassVar[int]
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    start: int
    entries: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, start: _Optional[int] = ..., entries: _Optional[_Iterable[bytes]] = ...) -> None: ...

class BalancesRequest(_message.Message):
    __slots__ = ("account_id", "page_token", "page_size")
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    page_token: str
    page_size: int
    def __init__(self, account_id: _Optional[str] = ..., page_token: _Optional[str] = ..., page_size: _Optional[int] = ...) -> None: ...

class Balance(_message.Message):
    __slots__ = ("account_id", "granted_flops", "escrow_flops", "vested_flops", "forfeited_flops", "strikes", "banned", "checks_pending", "data_granted_flops", "data_escrow_flops", "data_vested_flops", "data_forfeited_flops")
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    GRANTED_FLOPS_FIELD_NUMBER: _ClassVar[int]
    ESCROW_FLOPS_FIELD_NUMBER: _ClassVar[int]
    VESTED_FLOPS_FIELD_NUMBER: _ClassVar[int]
    FORFEITED_FLOPS_FIELD_NUMBER: _ClassVar[int]
    STRIKES_FIELD_NUMBER: _ClassVar[int]
    BANNED_FIELD_NUMBER: _ClassVar[int]
    CHECKS_PENDING_FIELD_NUMBER: _ClassVar[int]
    DATA_GRANTED_FLOPS_FIELD_NUMBER: _ClassVar[int]
    DATA_ESCROW_FLOPS_FIELD_NUMBER: _ClassVar[int]
    DATA_VESTED_FLOPS_FIELD_NUMBER: _ClassVar[int]
    DATA_FORFEITED_FLOPS_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    granted_flops: int
    escrow_flops: int
    vested_flops: int
    forfeited_flops: int
    strikes: int
    banned: bool
    checks_pending: int
    data_granted_flops: int
    data_escrow_flops: int
    data_vested_flops: int
    data_forfeited_flops: int
    def __init__(self, account_id: _Optional[str] = ..., granted_flops: _Optional[int] = ..., escrow_flops: _Optional[int] = ..., vested_flops: _Optional[int] = ..., forfeited_flops: _Optional[int] = ..., strikes: _Optional[int] = ..., banned: _Optional[bool] = ..., checks_pending: _Optional[int] = ..., data_granted_flops: _Optional[int] = ..., data_escrow_flops: _Optional[int] = ..., data_vested_flops: _Optional[int] = ..., data_forfeited_flops: _Optional[int] = ...) -> None: ...

class BalancesResponse(_message.Message):
    __slots__ = ("flops_per_credit", "tree_size", "balances", "next_page_token")
    FLOPS_PER_CREDIT_FIELD_NUMBER: _ClassVar[int]
    TREE_SIZE_FIELD_NUMBER: _ClassVar[int]
    BALANCES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    flops_per_credit: int
    tree_size: int
    balances: _containers.RepeatedCompositeFieldContainer[Balance]
    next_page_token: str
    def __init__(self, flops_per_credit: _Optional[int] = ..., tree_size: _Optional[int] = ..., balances: _Optional[_Iterable[_Union[Balance, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class ReachabilityRequest(_message.Message):
    __slots__ = ("port",)
    PORT_FIELD_NUMBER: _ClassVar[int]
    port: int
    def __init__(self, port: _Optional[int] = ...) -> None: ...

class ReachabilityResponse(_message.Message):
    __slots__ = ("reachable", "address", "reason")
    REACHABLE_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    reachable: bool
    address: str
    reason: str
    def __init__(self, reachable: _Optional[bool] = ..., address: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class StatusRequest(_message.Message):
    __slots__ = ("account_id",)
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    def __init__(self, account_id: _Optional[str] = ...) -> None: ...

class StatusResponse(_message.Message):
    __slots__ = ("origin", "epoch", "num_peers", "samples_per_second", "loss", "num_reports", "tree_size", "spread", "verifier", "averaging", "held_out", "last_sequence")
    ORIGIN_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    NUM_PEERS_FIELD_NUMBER: _ClassVar[int]
    SAMPLES_PER_SECOND_FIELD_NUMBER: _ClassVar[int]
    LOSS_FIELD_NUMBER: _ClassVar[int]
    NUM_REPORTS_FIELD_NUMBER: _ClassVar[int]
    TREE_SIZE_FIELD_NUMBER: _ClassVar[int]
    SPREAD_FIELD_NUMBER: _ClassVar[int]
    VERIFIER_FIELD_NUMBER: _ClassVar[int]
    AVERAGING_FIELD_NUMBER: _ClassVar[int]
    HELD_OUT_FIELD_NUMBER: _ClassVar[int]
    LAST_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    origin: str
    epoch: int
    num_peers: int
    samples_per_second: float
    loss: float
    num_reports: int
    tree_size: int
    spread: ParameterSpread
    verifier: VerifierHealth
    averaging: _containers.RepeatedCompositeFieldContainer[EpochAveraging]
    held_out: HeldOutLoss
    last_sequence: int
    def __init__(self, origin: _Optional[str] = ..., epoch: _Optional[int] = ..., num_peers: _Optional[int] = ..., samples_per_second: _Optional[float] = ..., loss: _Optional[float] = ..., num_reports: _Optional[int] = ..., tree_size: _Optional[int] = ..., spread: _Optional[_Union[ParameterSpread, _Mapping]] = ..., verifier: _Optional[_Union[VerifierHealth, _Mapping]] = ..., averaging: _Optional[_Iterable[_Union[EpochAveraging, _Mapping]]] = ..., held_out: _Optional[_Union[HeldOutLoss, _Mapping]] = ..., last_sequence: _Optional[int] = ...) -> None: ...

class HeldOutLoss(_message.Message):
    __slots__ = ("epoch", "loss")
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    LOSS_FIELD_NUMBER: _ClassVar[int]
    epoch: int
    loss: float
    def __init__(self, epoch: _Optional[int] = ..., loss: _Optional[float] = ...) -> None: ...

class EpochAveraging(_message.Message):
    __slots__ = ("epoch", "volunteers", "averaged", "failures")
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    VOLUNTEERS_FIELD_NUMBER: _ClassVar[int]
    AVERAGED_FIELD_NUMBER: _ClassVar[int]
    FAILURES_FIELD_NUMBER: _ClassVar[int]
    epoch: int
    volunteers: int
    averaged: int
    failures: _containers.RepeatedCompositeFieldContainer[FailureCount]
    def __init__(self, epoch: _Optional[int] = ..., volunteers: _Optional[int] = ..., averaged: _Optional[int] = ..., failures: _Optional[_Iterable[_Union[FailureCount, _Mapping]]] = ...) -> None: ...

class FailureCount(_message.Message):
    __slots__ = ("reason", "volunteers")
    REASON_FIELD_NUMBER: _ClassVar[int]
    VOLUNTEERS_FIELD_NUMBER: _ClassVar[int]
    reason: str
    volunteers: int
    def __init__(self, reason: _Optional[str] = ..., volunteers: _Optional[int] = ...) -> None: ...

class VerifierHealth(_message.Message):
    __slots__ = ("running", "restarts", "outstanding_jobs", "pid", "last_exit", "recomputed", "failed", "unverifiable", "passed")
    RUNNING_FIELD_NUMBER: _ClassVar[int]
    RESTARTS_FIELD_NUMBER: _ClassVar[int]
    OUTSTANDING_JOBS_FIELD_NUMBER: _ClassVar[int]
    PID_FIELD_NUMBER: _ClassVar[int]
    LAST_EXIT_FIELD_NUMBER: _ClassVar[int]
    RECOMPUTED_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    UNVERIFIABLE_FIELD_NUMBER: _ClassVar[int]
    PASSED_FIELD_NUMBER: _ClassVar[int]
    running: bool
    restarts: int
    outstanding_jobs: int
    pid: int
    last_exit: str
    recomputed: int
    failed: int
    unverifiable: int
    passed: int
    def __init__(self, running: _Optional[bool] = ..., restarts: _Optional[int] = ..., outstanding_jobs: _Optional[int] = ..., pid: _Optional[int] = ..., last_exit: _Optional[str] = ..., recomputed: _Optional[int] = ..., failed: _Optional[int] = ..., unverifiable: _Optional[int] = ..., passed: _Optional[int] = ...) -> None: ...

class ParameterSpread(_message.Message):
    __slots__ = ("epoch", "num_peers", "relative")
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    NUM_PEERS_FIELD_NUMBER: _ClassVar[int]
    RELATIVE_FIELD_NUMBER: _ClassVar[int]
    epoch: int
    num_peers: int
    relative: float
    def __init__(self, epoch: _Optional[int] = ..., num_peers: _Optional[int] = ..., relative: _Optional[float] = ...) -> None: ...
