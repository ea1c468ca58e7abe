"""Hostile inputs for a gRPC server, built from the descriptors its reflection service hands out.

Three kinds, all as wire bytes (sent with identity serializers, so nothing on the client side checks them):
random messages of a method's request type (every field type, extreme ints, long strings, random bytes,
long repeated fields), valid requests mutated (bit flips, truncations, extensions, one field's value
replaced or mutated: so the payload inside a real signed report is damaged too), and raw garbage.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import grpc
from google.protobuf import descriptor_pool, message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

INTS = [0, 1, -1, 2, 63, 64, 65, 255, 1000, 65535, 65536, 2**31 - 1, -2**31, 2**32 - 1, 2**53, 2**63 - 1, -2**63,
        2**64 - 1]
FLOATS = [0.0, -0.0, 1e-300, 1e300, float("inf"), float("-inf"), float("nan"), -1.0]
# Random text cannot spell what the test reads as a leak in a status message, since a status may rightly
# echo the caller's own text back (a run saw "no dataset shard with sha256 '…$N$.py)…'"): it leaves out
# '/', '<', '.' and '\\' (paths, classes, ".py"), the first letters of the words looked for (Error,
# Exception, Traceback, Unexpected, SELECT, INSERT, UPDATE, DELETE, WHERE, TABLE) and 'q', 'y' (sqlite,
# psycopg). Each pattern needs a character that never comes, so no run fails by chance.
_ALPHABET = "".join(chr(c) for c in [*range(0x20, 0x7f), 0xe9, 0x4e2d, 0x1f600, 0] if chr(c) not in "/<.\\ETUSIDWqy")
_RANGES = {
    FieldDescriptor.TYPE_INT32: (-2**31, 2**31 - 1), FieldDescriptor.TYPE_SINT32: (-2**31, 2**31 - 1),
    FieldDescriptor.TYPE_SFIXED32: (-2**31, 2**31 - 1), FieldDescriptor.TYPE_ENUM: (-2**31, 2**31 - 1),
    FieldDescriptor.TYPE_INT64: (-2**63, 2**63 - 1), FieldDescriptor.TYPE_SINT64: (-2**63, 2**63 - 1),
    FieldDescriptor.TYPE_SFIXED64: (-2**63, 2**63 - 1),
    FieldDescriptor.TYPE_UINT32: (0, 2**32 - 1), FieldDescriptor.TYPE_FIXED32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_UINT64: (0, 2**64 - 1), FieldDescriptor.TYPE_FIXED64: (0, 2**64 - 1),
}


@dataclass(frozen=True)
class Method:
    path: str  # /package.Service/Method
    request: type  # the request's message class, built from the reflected descriptor
    client_streaming: bool
    server_streaming: bool


def reflected_methods(channel: grpc.Channel) -> list[Method]:
    """Every method of every service the server's reflection lists, with its request type from reflection."""
    database = ProtoReflectionDescriptorDatabase(channel)
    pool = descriptor_pool.DescriptorPool(database)
    methods = []
    for name in database.get_services():
        for method in pool.FindServiceByName(name).methods:
            methods.append(Method(f"/{name}/{method.name}", message_factory.GetMessageClass(method.input_type),
                                  method.client_streaming, method.server_streaming))
    return methods


class Fuzzer:
    """Inputs for `Method`s from a seeded RNG; `valid` holds real requests (wire bytes) per method path."""

    def __init__(self, rng: random.Random, valid: dict[str, list[bytes]]):
        self.rng, self.valid = rng, valid
        self.payloads = [p for requests in valid.values() for p in requests]

    def message(self, method: Method) -> tuple[str, bytes]:
        """One request message's bytes, and which kind of input it is."""
        kind = self.rng.choices(["random", "mutated", "garbage"], [4, 4, 2])[0]
        if kind == "mutated" and self.valid.get(method.path):
            return kind, self.mutated(method, self.rng.choice(self.valid[method.path]))
        if kind == "garbage":
            return kind, self.garbage()
        return "random", self.random_message(method.request.DESCRIPTOR).SerializeToString()

    def random_message(self, descriptor: Descriptor, depth: int = 0):
        message = message_factory.GetMessageClass(descriptor)()
        for field in descriptor.fields:
            if self.rng.random() < 0.4:
                continue
            if field.is_repeated:
                count = self.rng.choice([0, 1, 2, 5, 64, 65, 200]) if depth < 2 else self.rng.randint(0, 2)
                for _ in range(count):
                    self._set(message, field, depth)
            else:
                self._set(message, field, depth)
        return message

    def _value(self, field: FieldDescriptor, depth: int):
        rng, kind = self.rng, field.type
        if kind in _RANGES:
            low, high = _RANGES[kind]
            return min(max(rng.choice([*INTS, rng.randint(low, high)]), low), high)
        if kind == FieldDescriptor.TYPE_BOOL:
            return rng.random() < 0.5
        if kind in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
            return rng.choice([*FLOATS, rng.uniform(-1e9, 1e9)])
        if kind == FieldDescriptor.TYPE_STRING:
            return "".join(rng.choices(_ALPHABET, k=rng.choice([0, 1, 12, 64, 65, 300, 5000, 100_000])))
        if kind == FieldDescriptor.TYPE_BYTES:
            if self.payloads and rng.random() < 0.3:  # a real payload, so that what is inside it gets looked at
                return self.mutate_bytes(rng.choice(self.payloads))
            return self.garbage()
        raise AssertionError(f"no values for field type {kind}")

    def _set(self, message, field: FieldDescriptor, depth: int) -> None:
        """Set `field` of `message` to a random value, or add one if it is repeated."""
        if field.type == FieldDescriptor.TYPE_MESSAGE:
            if depth < 3:
                target = getattr(message, field.name).add() if field.is_repeated else getattr(message, field.name)
                target.CopyFrom(self.random_message(field.message_type, depth + 1))
        elif field.is_repeated:
            getattr(message, field.name).append(self._value(field, depth))
        else:
            setattr(message, field.name, self._value(field, depth))

    def mutated(self, method: Method, valid: bytes) -> bytes:
        """A valid request damaged: on the wire, or one of its fields (a report inside it, say)."""
        if self.rng.random() < 0.5:
            return self.mutate_bytes(valid)
        message = method.request.FromString(valid)
        fields = [f for f, _ in message.ListFields()] or list(method.request.DESCRIPTOR.fields)
        if not fields:
            return self.mutate_bytes(valid)
        field = self.rng.choice(fields)
        if field.is_repeated:
            items = getattr(message, field.name)
            if field.type == FieldDescriptor.TYPE_BYTES and len(items) and self.rng.random() < 0.7:
                position = self.rng.randrange(len(items))
                items[position] = self.mutate_bytes(items[position])
            elif len(items) and self.rng.random() < 0.5:
                for _ in range(self.rng.choice([1, 10, 64])):  # the same items again: repeats and long lists
                    item = items[self.rng.randrange(len(items))]
                    if field.type == FieldDescriptor.TYPE_MESSAGE:
                        items.add().CopyFrom(item)
                    else:
                        items.append(item)
            else:
                self._set(message, field, 1)
        elif field.type == FieldDescriptor.TYPE_BYTES and self.rng.random() < 0.7:
            setattr(message, field.name, self.mutate_bytes(getattr(message, field.name)))
        else:
            message.ClearField(field.name)
            self._set(message, field, 1)
        return message.SerializeToString()

    def mutate_bytes(self, data: bytes) -> bytes:
        rng, data = self.rng, bytearray(data)
        how = rng.choice(["flip", "truncate", "extend", "splice", "duplicate"])
        if how == "flip" and data:
            for _ in range(rng.choice([1, 1, 2, 8])):
                data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        elif how == "truncate" and data:
            del data[rng.randrange(len(data)):]
        elif how == "extend":
            data += self.garbage() if rng.random() < 0.5 else rng.choice(self.payloads or [b"\x00"])
        elif how == "splice" and data and self.payloads:
            other = rng.choice(self.payloads)
            data[rng.randrange(len(data)):] = other[rng.randrange(len(other) or 1):]
        else:
            data += bytes(data)
        return bytes(data)

    def garbage(self) -> bytes:
        size = self.rng.choice([0, 1, 2, 7, 64, 300, 4096, 70_000] if self.rng.random() < 0.999 else [1_500_000])
        return self.rng.randbytes(size)
