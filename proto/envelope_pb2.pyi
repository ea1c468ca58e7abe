from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class SignedEnvelope(_message.Message):
    __slots__ = ("purpose", "origin", "payload", "signer", "signature")
    PURPOSE_FIELD_NUMBER: _ClassVar[int]
    ORIGIN_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    SIGNER_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    purpose: str
    origin: str
    payload: bytes
    signer: bytes
    signature: bytes
    def __init__(self, purpose: _Optional[str] = ..., origin: _Optional[str] = ..., payload: _Optional[bytes] = ..., signer: _Optional[bytes] = ..., signature: _Optional[bytes] = ...) -> None: ...
