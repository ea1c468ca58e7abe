"""What a client hears when a call fails: a precise status and a short reason, never the tracker's insides.

Threat: grpc answers an exception a handler did not expect with "Unexpected <class ...>: <message>",
which can carry SQL text, file paths and library names to anyone who calls (measured: a malformed
request alone got "Unexpected <class 'google.protobuf.message.DecodeError'>: ..."). `IncidentInterceptor`
wraps every handler of the server (ours, health, reflection):

- a request that does not parse as the method's message is answered INVALID_ARGUMENT, naming the message
  type expected (the handler never sees it);
- a deliberate refusal (`context.abort`) and a cancelled call pass through unchanged; a method that is
  declared but not implemented (found by fuzzing: the health service's `List`) is UNIMPLEMENTED;
- anything else is logged here with its traceback under a fresh incident id, and the client gets
  INTERNAL "internal error at the tracker (incident <id>)": the lead finds the traceback by that id.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import secrets

import grpc

logger = logging.getLogger(__name__)


class MalformedRequest(Exception):
    """A request message that does not parse as the type its method takes."""


class IncidentInterceptor(grpc.aio.ServerInterceptor):
    async def intercept_service(self, continuation, handler_call_details):
        handler = await continuation(handler_call_details)
        if handler is None:  # an unknown method: gRPC answers UNIMPLEMENTED itself
            return None
        method = handler_call_details.method
        parse = handler.request_deserializer or (lambda data: data)
        if handler.unary_unary:
            return grpc.unary_unary_rpc_method_handler(
                _unary_in(handler.unary_unary, method, parse), None, handler.response_serializer)
        if handler.unary_stream:
            return grpc.unary_stream_rpc_method_handler(
                _unary_in(handler.unary_stream, method, parse), None, handler.response_serializer)
        if handler.stream_unary:
            return grpc.stream_unary_rpc_method_handler(
                _stream_in(handler.stream_unary, method, parse), None, handler.response_serializer)
        return grpc.stream_stream_rpc_method_handler(
            _stream_in(handler.stream_stream, method, parse), None, handler.response_serializer)


def _unary_in(behavior, method: str, parse):
    """`behavior` (taking one request) with the request parsed here and its failures answered as above."""
    def call(raw, context):
        return behavior(_parsed(raw, parse, method), context)
    return _guarded(behavior, call, method)


def _stream_in(behavior, method: str, parse):
    """`behavior` (taking a stream of requests), each parsed as the handler iterates over them (every handler
    here does; `context.read()` would hand it the raw bytes)."""
    async def requests(raw_requests):
        async for raw in raw_requests:
            yield _parsed(raw, parse, method)

    def call(raw_requests, context):
        return behavior(requests(raw_requests), context)
    return _guarded(behavior, call, method)


def _guarded(behavior, call, method: str):
    if inspect.isasyncgenfunction(behavior) or inspect.isgeneratorfunction(behavior):
        async def streamed(request, context):
            try:
                responses = call(request, context)
                if inspect.isasyncgen(responses):
                    async for response in responses:
                        yield response
                else:
                    for response in responses:
                        yield response
            except Exception as e:
                await _answer(e, context, method)
        return streamed

    async def answered(request, context):
        try:
            result = call(request, context)
            return await result if inspect.isawaitable(result) else result
        except Exception as e:
            await _answer(e, context, method)
    return answered


def _parsed(raw: bytes, parse, method: str):
    try:
        return parse(raw)
    except Exception:  # protobuf's DecodeError, or whatever a deserializer raises: the bytes were not a message
        raise MalformedRequest(f"the request is not a valid {_message_name(parse)} message") from None


async def _answer(error: Exception, context, method: str) -> None:
    """Answer a handler's exception: pass deliberate ones on, hide the rest behind an incident id."""
    if isinstance(error, grpc.aio.AbortError | asyncio.CancelledError):
        raise error
    if isinstance(error, MalformedRequest):
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(error))
    if isinstance(error, NotImplementedError):  # a generated servicer's method nobody wrote (grpc's Health.List)
        name = method.lstrip("/").replace("/", ".")
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, f"this tracker does not implement {name}")
    incident = secrets.token_hex(6)
    logger.error("incident %s: %s failed", incident, method, exc_info=error)
    await context.abort(grpc.StatusCode.INTERNAL, f"internal error at the tracker (incident {incident})")


def _message_name(parse) -> str:
    """The message type a deserializer parses (generated code passes `SomeMessage.FromString`)."""
    owner = getattr(parse, "__self__", None)
    descriptor = getattr(owner, "DESCRIPTOR", None)
    return getattr(descriptor, "full_name", "protobuf")
