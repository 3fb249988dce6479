from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class WorkloadSpec(_message.Message):
    __slots__ = ("workload_id", "kind", "driver", "memory_bytes", "cpu_cores", "priority", "app", "user", "params")
    class ParamsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    WORKLOAD_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    DRIVER_FIELD_NUMBER: _ClassVar[int]
    MEMORY_BYTES_FIELD_NUMBER: _ClassVar[int]
    CPU_CORES_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    APP_FIELD_NUMBER: _ClassVar[int]
    USER_FIELD_NUMBER: _ClassVar[int]
    PARAMS_FIELD_NUMBER: _ClassVar[int]
    workload_id: str
    kind: str
    driver: str
    memory_bytes: int
    cpu_cores: float
    priority: int
    app: str
    user: str
    params: _containers.ScalarMap[str, str]
    def __init__(self, workload_id: _Optional[str] = ..., kind: _Optional[str] = ..., driver: _Optional[str] = ..., memory_bytes: _Optional[int] = ..., cpu_cores: _Optional[float] = ..., priority: _Optional[int] = ..., app: _Optional[str] = ..., user: _Optional[str] = ..., params: _Optional[_Mapping[str, str]] = ...) -> None: ...

class Workload(_message.Message):
    __slots__ = ("spec", "state", "started_at", "endpoint", "pid")
    SPEC_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    PID_FIELD_NUMBER: _ClassVar[int]
    spec: WorkloadSpec
    state: str
    started_at: float
    endpoint: str
    pid: int
    def __init__(self, spec: _Optional[_Union[WorkloadSpec, _Mapping]] = ..., state: _Optional[str] = ..., started_at: _Optional[float] = ..., endpoint: _Optional[str] = ..., pid: _Optional[int] = ...) -> None: ...

class Usage(_message.Message):
    __slots__ = ("workload_id", "at", "cpu_cores_used", "mem_used_bytes", "io_bytes_per_second", "extra")
    class ExtraEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    WORKLOAD_ID_FIELD_NUMBER: _ClassVar[int]
    AT_FIELD_NUMBER: _ClassVar[int]
    CPU_CORES_USED_FIELD_NUMBER: _ClassVar[int]
    MEM_USED_BYTES_FIELD_NUMBER: _ClassVar[int]
    IO_BYTES_PER_SECOND_FIELD_NUMBER: _ClassVar[int]
    EXTRA_FIELD_NUMBER: _ClassVar[int]
    workload_id: str
    at: float
    cpu_cores_used: float
    mem_used_bytes: int
    io_bytes_per_second: float
    extra: _containers.ScalarMap[str, float]
    def __init__(self, workload_id: _Optional[str] = ..., at: _Optional[float] = ..., cpu_cores_used: _Optional[float] = ..., mem_used_bytes: _Optional[int] = ..., io_bytes_per_second: _Optional[float] = ..., extra: _Optional[_Mapping[str, float]] = ...) -> None: ...

class StartWorkloadRequest(_message.Message):
    __slots__ = ("spec",)
    SPEC_FIELD_NUMBER: _ClassVar[int]
    spec: WorkloadSpec
    def __init__(self, spec: _Optional[_Union[WorkloadSpec, _Mapping]] = ...) -> None: ...

class StartWorkloadResponse(_message.Message):
    __slots__ = ("node_id", "workload")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    WORKLOAD_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    workload: Workload
    def __init__(self, node_id: _Optional[str] = ..., workload: _Optional[_Union[Workload, _Mapping]] = ...) -> None: ...

class StopWorkloadRequest(_message.Message):
    __slots__ = ("workload_id",)
    WORKLOAD_ID_FIELD_NUMBER: _ClassVar[int]
    workload_id: str
    def __init__(self, workload_id: _Optional[str] = ...) -> None: ...

class StopWorkloadResponse(_message.Message):
    __slots__ = ("node_id", "workload_id", "stopped_at")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    WORKLOAD_ID_FIELD_NUMBER: _ClassVar[int]
    STOPPED_AT_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    workload_id: str
    stopped_at: float
    def __init__(self, node_id: _Optional[str] = ..., workload_id: _Optional[str] = ..., stopped_at: _Optional[float] = ...) -> None: ...

class ListWorkloadsRequest(_message.Message):
    __slots__ = ("driver",)
    DRIVER_FIELD_NUMBER: _ClassVar[int]
    driver: str
    def __init__(self, driver: _Optional[str] = ...) -> None: ...

class ListWorkloadsResponse(_message.Message):
    __slots__ = ("node_id", "workloads")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    WORKLOADS_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    workloads: _containers.RepeatedCompositeFieldContainer[Workload]
    def __init__(self, node_id: _Optional[str] = ..., workloads: _Optional[_Iterable[_Union[Workload, _Mapping]]] = ...) -> None: ...

class GetUsageRequest(_message.Message):
    __slots__ = ("workload_ids",)
    WORKLOAD_IDS_FIELD_NUMBER: _ClassVar[int]
    workload_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, workload_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class GetUsageResponse(_message.Message):
    __slots__ = ("node_id", "sampled_at", "usages")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    SAMPLED_AT_FIELD_NUMBER: _ClassVar[int]
    USAGES_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    sampled_at: float
    usages: _containers.RepeatedCompositeFieldContainer[Usage]
    def __init__(self, node_id: _Optional[str] = ..., sampled_at: _Optional[float] = ..., usages: _Optional[_Iterable[_Union[Usage, _Mapping]]] = ...) -> None: ...

class MigrationOrder(_message.Message):
    __slots__ = ("order_id", "workload_id", "kind", "source_node", "target_node", "target_endpoint", "method", "issued_at", "deadline_at", "dry_run", "attempt", "mem_bytes", "expected_seconds", "reason_code")
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    WORKLOAD_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    SOURCE_NODE_FIELD_NUMBER: _ClassVar[int]
    TARGET_NODE_FIELD_NUMBER: _ClassVar[int]
    TARGET_ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    ISSUED_AT_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_AT_FIELD_NUMBER: _ClassVar[int]
    DRY_RUN_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    MEM_BYTES_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_SECONDS_FIELD_NUMBER: _ClassVar[int]
    REASON_CODE_FIELD_NUMBER: _ClassVar[int]
    order_id: str
    workload_id: str
    kind: str
    source_node: str
    target_node: str
    target_endpoint: str
    method: str
    issued_at: float
    deadline_at: float
    dry_run: bool
    attempt: int
    mem_bytes: int
    expected_seconds: float
    reason_code: str
    def __init__(self, order_id: _Optional[str] = ..., workload_id: _Optional[str] = ..., kind: _Optional[str] = ..., source_node: _Optional[str] = ..., target_node: _Optional[str] = ..., target_endpoint: _Optional[str] = ..., method: _Optional[str] = ..., issued_at: _Optional[float] = ..., deadline_at: _Optional[float] = ..., dry_run: _Optional[bool] = ..., attempt: _Optional[int] = ..., mem_bytes: _Optional[int] = ..., expected_seconds: _Optional[float] = ..., reason_code: _Optional[str] = ...) -> None: ...

class MigrateRequest(_message.Message):
    __slots__ = ("order",)
    ORDER_FIELD_NUMBER: _ClassVar[int]
    order: MigrationOrder
    def __init__(self, order: _Optional[_Union[MigrationOrder, _Mapping]] = ...) -> None: ...

class MigrationError(_message.Message):
    __slots__ = ("code", "message")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    code: str
    message: str
    def __init__(self, code: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class MigrationProgress(_message.Message):
    __slots__ = ("order_id", "workload_id", "state", "at", "source_node", "target_node", "driver", "method", "attempt", "dry_run", "progress_ratio", "downtime_seconds", "transferred_bytes", "total_seconds", "error", "message", "workload_endpoint")
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    WORKLOAD_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    AT_FIELD_NUMBER: _ClassVar[int]
    SOURCE_NODE_FIELD_NUMBER: _ClassVar[int]
    TARGET_NODE_FIELD_NUMBER: _ClassVar[int]
    DRIVER_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    DRY_RUN_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_RATIO_FIELD_NUMBER: _ClassVar[int]
    DOWNTIME_SECONDS_FIELD_NUMBER: _ClassVar[int]
    TRANSFERRED_BYTES_FIELD_NUMBER: _ClassVar[int]
    TOTAL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    WORKLOAD_ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    order_id: str
    workload_id: str
    state: str
    at: float
    source_node: str
    target_node: str
    driver: str
    method: str
    attempt: int
    dry_run: bool
    progress_ratio: float
    downtime_seconds: float
    transferred_bytes: int
    total_seconds: float
    error: MigrationError
    message: str
    workload_endpoint: str
    def __init__(self, order_id: _Optional[str] = ..., workload_id: _Optional[str] = ..., state: _Optional[str] = ..., at: _Optional[float] = ..., source_node: _Optional[str] = ..., target_node: _Optional[str] = ..., driver: _Optional[str] = ..., method: _Optional[str] = ..., attempt: _Optional[int] = ..., dry_run: _Optional[bool] = ..., progress_ratio: _Optional[float] = ..., downtime_seconds: _Optional[float] = ..., transferred_bytes: _Optional[int] = ..., total_seconds: _Optional[float] = ..., error: _Optional[_Union[MigrationError, _Mapping]] = ..., message: _Optional[str] = ..., workload_endpoint: _Optional[str] = ...) -> None: ...

class PrepareIncomingRequest(_message.Message):
    __slots__ = ("order", "spec", "source_endpoint", "expected_bytes")
    ORDER_FIELD_NUMBER: _ClassVar[int]
    SPEC_FIELD_NUMBER: _ClassVar[int]
    SOURCE_ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_BYTES_FIELD_NUMBER: _ClassVar[int]
    order: MigrationOrder
    spec: WorkloadSpec
    source_endpoint: str
    expected_bytes: int
    def __init__(self, order: _Optional[_Union[MigrationOrder, _Mapping]] = ..., spec: _Optional[_Union[WorkloadSpec, _Mapping]] = ..., source_endpoint: _Optional[str] = ..., expected_bytes: _Optional[int] = ...) -> None: ...

class PrepareIncomingResponse(_message.Message):
    __slots__ = ("order_id", "incoming_uri", "reserved_until_at", "params")
    class ParamsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    INCOMING_URI_FIELD_NUMBER: _ClassVar[int]
    RESERVED_UNTIL_AT_FIELD_NUMBER: _ClassVar[int]
    PARAMS_FIELD_NUMBER: _ClassVar[int]
    order_id: str
    incoming_uri: str
    reserved_until_at: float
    params: _containers.ScalarMap[str, str]
    def __init__(self, order_id: _Optional[str] = ..., incoming_uri: _Optional[str] = ..., reserved_until_at: _Optional[float] = ..., params: _Optional[_Mapping[str, str]] = ...) -> None: ...

class TransferChunk(_message.Message):
    __slots__ = ("order_id", "seq", "path", "offset", "data", "sha256", "last_of_file", "file_size_bytes", "file_mode", "file_sha256")
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    LAST_OF_FILE_FIELD_NUMBER: _ClassVar[int]
    FILE_SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    FILE_MODE_FIELD_NUMBER: _ClassVar[int]
    FILE_SHA256_FIELD_NUMBER: _ClassVar[int]
    order_id: str
    seq: int
    path: str
    offset: int
    data: bytes
    sha256: bytes
    last_of_file: bool
    file_size_bytes: int
    file_mode: int
    file_sha256: bytes
    def __init__(self, order_id: _Optional[str] = ..., seq: _Optional[int] = ..., path: _Optional[str] = ..., offset: _Optional[int] = ..., data: _Optional[bytes] = ..., sha256: _Optional[bytes] = ..., last_of_file: _Optional[bool] = ..., file_size_bytes: _Optional[int] = ..., file_mode: _Optional[int] = ..., file_sha256: _Optional[bytes] = ...) -> None: ...

class TransferredFile(_message.Message):
    __slots__ = ("path", "size_bytes", "sha256")
    PATH_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    path: str
    size_bytes: int
    sha256: bytes
    def __init__(self, path: _Optional[str] = ..., size_bytes: _Optional[int] = ..., sha256: _Optional[bytes] = ...) -> None: ...

class TransferResponse(_message.Message):
    __slots__ = ("order_id", "chunks", "received_bytes", "files")
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    CHUNKS_FIELD_NUMBER: _ClassVar[int]
    RECEIVED_BYTES_FIELD_NUMBER: _ClassVar[int]
    FILES_FIELD_NUMBER: _ClassVar[int]
    order_id: str
    chunks: int
    received_bytes: int
    files: _containers.RepeatedCompositeFieldContainer[TransferredFile]
    def __init__(self, order_id: _Optional[str] = ..., chunks: _Optional[int] = ..., received_bytes: _Optional[int] = ..., files: _Optional[_Iterable[_Union[TransferredFile, _Mapping]]] = ...) -> None: ...

class SwitchRequest(_message.Message):
    __slots__ = ("order_id", "quiesced_at", "files")
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    QUIESCED_AT_FIELD_NUMBER: _ClassVar[int]
    FILES_FIELD_NUMBER: _ClassVar[int]
    order_id: str
    quiesced_at: float
    files: _containers.RepeatedCompositeFieldContainer[TransferredFile]
    def __init__(self, order_id: _Optional[str] = ..., quiesced_at: _Optional[float] = ..., files: _Optional[_Iterable[_Union[TransferredFile, _Mapping]]] = ...) -> None: ...

class SwitchResponse(_message.Message):
    __slots__ = ("order_id", "workload_endpoint", "ready_at")
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    WORKLOAD_ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    READY_AT_FIELD_NUMBER: _ClassVar[int]
    order_id: str
    workload_endpoint: str
    ready_at: float
    def __init__(self, order_id: _Optional[str] = ..., workload_endpoint: _Optional[str] = ..., ready_at: _Optional[float] = ...) -> None: ...

class CommitRequest(_message.Message):
    __slots__ = ("order_id",)
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    order_id: str
    def __init__(self, order_id: _Optional[str] = ...) -> None: ...

class CommitResponse(_message.Message):
    __slots__ = ("order_id", "state")
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    order_id: str
    state: str
    def __init__(self, order_id: _Optional[str] = ..., state: _Optional[str] = ...) -> None: ...

class AbortRequest(_message.Message):
    __slots__ = ("order_id", "reason")
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    order_id: str
    reason: MigrationError
    def __init__(self, order_id: _Optional[str] = ..., reason: _Optional[_Union[MigrationError, _Mapping]] = ...) -> None: ...

class AbortResponse(_message.Message):
    __slots__ = ("order_id", "state")
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    order_id: str
    state: str
    def __init__(self, order_id: _Optional[str] = ..., state: _Optional[str] = ...) -> None: ...

class MigrationStatusRequest(_message.Message):
    __slots__ = ("order_id",)
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    order_id: str
    def __init__(self, order_id: _Optional[str] = ...) -> None: ...

class MigrationStatusResponse(_message.Message):
    __slots__ = ("order_id", "workload_id", "role", "phase", "updated_at", "last_progress")
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    WORKLOAD_ID_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    PHASE_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    LAST_PROGRESS_FIELD_NUMBER: _ClassVar[int]
    order_id: str
    workload_id: str
    role: str
    phase: str
    updated_at: float
    last_progress: MigrationProgress
    def __init__(self, order_id: _Optional[str] = ..., workload_id: _Optional[str] = ..., role: _Optional[str] = ..., phase: _Optional[str] = ..., updated_at: _Optional[float] = ..., last_progress: _Optional[_Union[MigrationProgress, _Mapping]] = ...) -> None: ...
