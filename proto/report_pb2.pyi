from potluck.proto import envelope_pb2 as _envelope_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class KeyBindingStatement(_message.Message):
    __slots__ = ("origin", "account_id", "peer_id", "peer_public_key")
    ORIGIN_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    PEER_ID_FIELD_NUMBER: _ClassVar[int]
    PEER_PUBLIC_KEY_FIELD_NUMBER: _ClassVar[int]
    origin: str
    account_id: str
    peer_id: str
    peer_public_key: bytes
    def __init__(self, origin: _Optional[str] = ..., account_id: _Optional[str] = ..., peer_id: _Optional[str] = ..., peer_public_key: _Optional[bytes] = ...) -> None: ...

class KeyBinding(_message.Message):
    __slots__ = ("statement", "peer_signature")
    STATEMENT_FIELD_NUMBER: _ClassVar[int]
    PEER_SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    statement: bytes
    peer_signature: bytes
    def __init__(self, statement: _Optional[bytes] = ..., peer_signature: _Optional[bytes] = ...) -> None: ...

class Attestation(_message.Message):
    __slots__ = ("origin", "epoch", "peer_id", "account_id")
    ORIGIN_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    PEER_ID_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    origin: str
    epoch: int
    peer_id: str
    account_id: str
    def __init__(self, origin: _Optional[str] = ..., epoch: _Optional[int] = ..., peer_id: _Optional[str] = ..., account_id: _Optional[str] = ...) -> None: ...

class AveragingRound(_message.Message):
    __slots__ = ("succeeded", "failure", "attestations")
    SUCCEEDED_FIELD_NUMBER: _ClassVar[int]
    FAILURE_FIELD_NUMBER: _ClassVar[int]
    ATTESTATIONS_FIELD_NUMBER: _ClassVar[int]
    succeeded: bool
    failure: str
    attestations: _containers.RepeatedCompositeFieldContainer[_envelope_pb2.SignedEnvelope]
    def __init__(self, succeeded: _Optional[bool] = ..., failure: _Optional[str] = ..., attestations: _Optional[_Iterable[_Union[_envelope_pb2.SignedEnvelope, _Mapping]]] = ...) -> None: ...

class ContributionReport(_message.Message):
    __slots__ = ("origin", "manifest_id", "account_id", "peer_id", "sequence", "epoch", "batch_size", "losses", "num_samples", "num_tokens", "gradient_sketch", "state_digest", "averaging", "wall_time", "device_class", "started_at")
    ORIGIN_FIELD_NUMBER: _ClassVar[int]
    MANIFEST_ID_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    PEER_ID_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    LOSSES_FIELD_NUMBER: _ClassVar[int]
    NUM_SAMPLES_FIELD_NUMBER: _ClassVar[int]
    NUM_TOKENS_FIELD_NUMBER: _ClassVar[int]
    GRADIENT_SKETCH_FIELD_NUMBER: _ClassVar[int]
    STATE_DIGEST_FIELD_NUMBER: _ClassVar[int]
    AVERAGING_FIELD_NUMBER: _ClassVar[int]
    WALL_TIME_FIELD_NUMBER: _ClassVar[int]
    DEVICE_CLASS_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    origin: str
    manifest_id: bytes
    account_id: str
    peer_id: str
    sequence: int
    epoch: int
    batch_size: int
    losses: _containers.RepeatedScalarFieldContainer[float]
    num_samples: int
    num_tokens: int
    gradient_sketch: _containers.RepeatedScalarFieldContainer[float]
    state_digest: bytes
    averaging: AveragingRound
    wall_time: float
    device_class: str
    started_at: float
    def __init__(self, origin: _Optional[str] = ..., manifest_id: _Optional[bytes] = ..., account_id: _Optional[str] = ..., peer_id: _Optional[str] = ..., sequence: _Optional[int] = ..., epoch: _Optional[int] = ..., batch_size: _Optional[int] = ..., losses: _Optional[_Iterable[float]] = ..., num_samples: _Optional[int] = ..., num_tokens: _Optional[int] = ..., gradient_sketch: _Optional[_Iterable[float]] = ..., state_digest: _Optional[bytes] = ..., averaging: _Optional[_Union[AveragingRound, _Mapping]] = ..., wall_time: _Optional[float] = ..., device_class: _Optional[str] = ..., started_at: _Optional[float] = ...) -> None: ...
