from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ParamValue(_message.Message):
    __slots__ = ("int_value", "float_value", "string_value", "bool_value")
    INT_VALUE_FIELD_NUMBER: _ClassVar[int]
    FLOAT_VALUE_FIELD_NUMBER: _ClassVar[int]
    STRING_VALUE_FIELD_NUMBER: _ClassVar[int]
    BOOL_VALUE_FIELD_NUMBER: _ClassVar[int]
    int_value: int
    float_value: float
    string_value: str
    bool_value: bool
    def __init__(self, int_value: _Optional[int] = ..., float_value: _Optional[float] = ..., string_value: _Optional[str] = ..., bool_value: _Optional[bool] = ...) -> None: ...

class Community(_message.Message):
    __slots__ = ("language", "region", "sector")
    LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    REGION_FIELD_NUMBER: _ClassVar[int]
    SECTOR_FIELD_NUMBER: _ClassVar[int]
    language: str
    region: str
    sector: str
    def __init__(self, language: _Optional[str] = ..., region: _Optional[str] = ..., sector: _Optional[str] = ...) -> None: ...

class TaskSpec(_message.Message):
    __slots__ = ("name", "params", "flops_per_sample")
    class ParamsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: ParamValue
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[ParamValue, _Mapping]] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    PARAMS_FIELD_NUMBER: _ClassVar[int]
    FLOPS_PER_SAMPLE_FIELD_NUMBER: _ClassVar[int]
    name: str
    params: _containers.MessageMap[str, ParamValue]
    flops_per_sample: int
    def __init__(self, name: _Optional[str] = ..., params: _Optional[_Mapping[str, ParamValue]] = ..., flops_per_sample: _Optional[int] = ...) -> None: ...

class DatasetShard(_message.Message):
    __slots__ = ("name", "sha256", "size_bytes", "license", "owner", "kind")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    LICENSE_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    name: str
    sha256: str
    size_bytes: int
    license: str
    owner: str
    kind: str
    def __init__(self, name: _Optional[str] = ..., sha256: _Optional[str] = ..., size_bytes: _Optional[int] = ..., license: _Optional[str] = ..., owner: _Optional[str] = ..., kind: _Optional[str] = ...) -> None: ...

class HivemindSettings(_message.Message):
    __slots__ = ("run_id", "target_batch_size", "matchmaking_time", "averaging_timeout", "compression", "learning_rate")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    TARGET_BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    MATCHMAKING_TIME_FIELD_NUMBER: _ClassVar[int]
    AVERAGING_TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    COMPRESSION_FIELD_NUMBER: _ClassVar[int]
    LEARNING_RATE_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    target_batch_size: int
    matchmaking_time: float
    averaging_timeout: float
    compression: str
    learning_rate: float
    def __init__(self, run_id: _Optional[str] = ..., target_batch_size: _Optional[int] = ..., matchmaking_time: _Optional[float] = ..., averaging_timeout: _Optional[float] = ..., compression: _Optional[str] = ..., learning_rate: _Optional[float] = ...) -> None: ...

class CreditPolicy(_message.Message):
    __slots__ = ("version", "flops_per_credit", "sampling_rate", "escrow_depth", "new_account_checks", "data_share_ppm")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    FLOPS_PER_CREDIT_FIELD_NUMBER: _ClassVar[int]
    SAMPLING_RATE_FIELD_NUMBER: _ClassVar[int]
    ESCROW_DEPTH_FIELD_NUMBER: _ClassVar[int]
    NEW_ACCOUNT_CHECKS_FIELD_NUMBER: _ClassVar[int]
    DATA_SHARE_PPM_FIELD_NUMBER: _ClassVar[int]
    version: int
    flops_per_credit: int
    sampling_rate: float
    escrow_depth: int
    new_account_checks: int
    data_share_ppm: int
    def __init__(self, version: _Optional[int] = ..., flops_per_credit: _Optional[int] = ..., sampling_rate: _Optional[float] = ..., escrow_depth: _Optional[int] = ..., new_account_checks: _Optional[int] = ..., data_share_ppm: _Optional[int] = ...) -> None: ...

class Manifest(_message.Message):
    __slots__ = ("format_version", "name", "description", "origin", "swarm_seed", "community", "task", "datasets", "hivemind", "bootstrap_peers", "tracker_address", "credit_policy", "log_key", "tracker_tls_sha256")
    FORMAT_VERSION_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    ORIGIN_FIELD_NUMBER: _ClassVar[int]
    SWARM_SEED_FIELD_NUMBER: _ClassVar[int]
    COMMUNITY_FIELD_NUMBER: _ClassVar[int]
    TASK_FIELD_NUMBER: _ClassVar[int]
    DATASETS_FIELD_NUMBER: _ClassVar[int]
    HIVEMIND_FIELD_NUMBER: _ClassVar[int]
    BOOTSTRAP_PEERS_FIELD_NUMBER: _ClassVar[int]
    TRACKER_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    CREDIT_POLICY_FIELD_NUMBER: _ClassVar[int]
    LOG_KEY_FIELD_NUMBER: _ClassVar[int]
    TRACKER_TLS_SHA256_FIELD_NUMBER: _ClassVar[int]
    format_version: int
    name: str
    description: str
    origin: str
    swarm_seed: bytes
    community: Community
    task: TaskSpec
    datasets: _containers.RepeatedCompositeFieldContainer[DatasetShard]
    hivemind: HivemindSettings
    bootstrap_peers: _containers.RepeatedScalarFieldContainer[str]
    tracker_address: str
    credit_policy: CreditPolicy
    log_key: str
    tracker_tls_sha256: str
    def __init__(self, format_version: _Optional[int] = ..., name: _Optional[str] = ..., description: _Optional[str] = ..., origin: _Optional[str] = ..., swarm_seed: _Optional[bytes] = ..., community: _Optional[_Union[Community, _Mapping]] = ..., task: _Optional[_Union[TaskSpec, _Mapping]] = ..., datasets: _Optional[_Iterable[_Union[DatasetShard, _Mapping]]] = ..., hivemind: _Optional[_Union[HivemindSettings, _Mapping]] = ..., bootstrap_peers: _Optional[_Iterable[str]] = ..., tracker_address: _Optional[str] = ..., credit_policy: _Optional[_Union[CreditPolicy, _Mapping]] = ..., log_key: _Optional[str] = ..., tracker_tls_sha256: _Optional[str] = ...) -> None: ...
