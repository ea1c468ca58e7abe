from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class CreditGrant(_message.Message):
    __slots__ = ("report", "account_id", "num_samples", "flops_per_sample", "policy_version", "flops_per_credit", "flops", "credits", "data_share_ppm", "data", "data_windows")
    REPORT_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    NUM_SAMPLES_FIELD_NUMBER: _ClassVar[int]
    FLOPS_PER_SAMPLE_FIELD_NUMBER: _ClassVar[int]
    POLICY_VERSION_FIELD_NUMBER: _ClassVar[int]
    FLOPS_PER_CREDIT_FIELD_NUMBER: _ClassVar[int]
    FLOPS_FIELD_NUMBER: _ClassVar[int]
    CREDITS_FIELD_NUMBER: _ClassVar[int]
    DATA_SHARE_PPM_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    DATA_WINDOWS_FIELD_NUMBER: _ClassVar[int]
    report: bytes
    account_id: str
    num_samples: int
    flops_per_sample: int
    policy_version: int
    flops_per_credit: int
    flops: int
    credits: str
    data_share_ppm: int
    data: _containers.RepeatedCompositeFieldContainer[DataCredit]
    data_windows: int
    def __init__(self, report: _Optional[bytes] = ..., account_id: _Optional[str] = ..., num_samples: _Optional[int] = ..., flops_per_sample: _Optional[int] = ..., policy_version: _Optional[int] = ..., flops_per_credit: _Optional[int] = ..., flops: _Optional[int] = ..., credits: _Optional[str] = ..., data_share_ppm: _Optional[int] = ..., data: _Optional[_Iterable[_Union[DataCredit, _Mapping]]] = ..., data_windows: _Optional[int] = ...) -> None: ...

class DataCredit(_message.Message):
    __slots__ = ("owner", "windows", "flops", "credits")
    OWNER_FIELD_NUMBER: _ClassVar[int]
    WINDOWS_FIELD_NUMBER: _ClassVar[int]
    FLOPS_FIELD_NUMBER: _ClassVar[int]
    CREDITS_FIELD_NUMBER: _ClassVar[int]
    owner: str
    windows: int
    flops: int
    credits: str
    def __init__(self, owner: _Optional[str] = ..., windows: _Optional[int] = ..., flops: _Optional[int] = ..., credits: _Optional[str] = ...) -> None: ...

class Vest(_message.Message):
    __slots__ = ("account_id", "grant_indices", "flops")
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    GRANT_INDICES_FIELD_NUMBER: _ClassVar[int]
    FLOPS_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    grant_indices: _containers.RepeatedScalarFieldContainer[int]
    flops: int
    def __init__(self, account_id: _Optional[str] = ..., grant_indices: _Optional[_Iterable[int]] = ..., flops: _Optional[int] = ...) -> None: ...

class Strike(_message.Message):
    __slots__ = ("account_id", "report_index", "check", "reason")
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    REPORT_INDEX_FIELD_NUMBER: _ClassVar[int]
    CHECK_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    report_index: int
    check: str
    reason: str
    def __init__(self, account_id: _Optional[str] = ..., report_index: _Optional[int] = ..., check: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class Forfeit(_message.Message):
    __slots__ = ("account_id", "grant_indices", "flops", "reason", "clawed_back_indices", "clawed_back_flops")
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    GRANT_INDICES_FIELD_NUMBER: _ClassVar[int]
    FLOPS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    CLAWED_BACK_INDICES_FIELD_NUMBER: _ClassVar[int]
    CLAWED_BACK_FLOPS_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    grant_indices: _containers.RepeatedScalarFieldContainer[int]
    flops: int
    reason: str
    clawed_back_indices: _containers.RepeatedScalarFieldContainer[int]
    clawed_back_flops: int
    def __init__(self, account_id: _Optional[str] = ..., grant_indices: _Optional[_Iterable[int]] = ..., flops: _Optional[int] = ..., reason: _Optional[str] = ..., clawed_back_indices: _Optional[_Iterable[int]] = ..., clawed_back_flops: _Optional[int] = ...) -> None: ...

class Ban(_message.Message):
    __slots__ = ("account_id", "reason")
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    reason: str
    def __init__(self, account_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class BindingRecord(_message.Message):
    __slots__ = ("binding", "account_id", "peer_id")
    BINDING_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    PEER_ID_FIELD_NUMBER: _ClassVar[int]
    binding: bytes
    account_id: str
    peer_id: str
    def __init__(self, binding: _Optional[bytes] = ..., account_id: _Optional[str] = ..., peer_id: _Optional[str] = ...) -> None: ...

class LedgerEntry(_message.Message):
    __slots__ = ("origin", "logged_at_ms", "grant", "vest", "strike", "forfeit", "ban", "binding")
    ORIGIN_FIELD_NUMBER: _ClassVar[int]
    LOGGED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    GRANT_FIELD_NUMBER: _ClassVar[int]
    VEST_FIELD_NUMBER: _ClassVar[int]
    STRIKE_FIELD_NUMBER: _ClassVar[int]
    FORFEIT_FIELD_NUMBER: _ClassVar[int]
    BAN_FIELD_NUMBER: _ClassVar[int]
    BINDING_FIELD_NUMBER: _ClassVar[int]
    origin: str
    logged_at_ms: int
    grant: CreditGrant
    vest: Vest
    strike: Strike
    forfeit: Forfeit
    ban: Ban
    binding: BindingRecord
    def __init__(self, origin: _Optional[str] = ..., logged_at_ms: _Optional[int] = ..., grant: _Optional[_Union[CreditGrant, _Mapping]] = ..., vest: _Optional[_Union[Vest, _Mapping]] = ..., strike: _Optional[_Union[Strike, _Mapping]] = ..., forfeit: _Optional[_Union[Forfeit, _Mapping]] = ..., ban: _Optional[_Union[Ban, _Mapping]] = ..., binding: _Optional[_Union[BindingRecord, _Mapping]] = ...) -> None: ...
