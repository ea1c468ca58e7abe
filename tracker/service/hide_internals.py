"""What a client learns when the tracker fails unexpectedly: that it did, and nothing of why.

grpc answers an exception a handler did not expect with UNKNOWN and "Unexpected <class …>: …", which
hands any client the tracker's internals (SQL text, file paths, the state of its ledger). This
interceptor logs the exception on the tracker, with its traceback, and answers INTERNAL with a fixed
message instead. Statuses a handler chose (`context.abort`) pass through as they are.
"""

from __future__ import annotations

import logging
import uuid

import grpc

logger = logging.getLogger(__name__)


class HideInternals(grpc.aio.ServerInterceptor):
    async def intercept_service(self, continuation, handler_call_details):
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        method = handler_call_details.method
        if handler.unary_unary:
            return grpc.unary_unary_rpc_method_handler(
                _unary(handler.unary_unary, method), handler.request_deserializer, handler.response_serializer)
        if handler.unary_stream:
            return grpc.unary_stream_rpc_method_handler(
                _streaming(handler.unary_stream, method), handler.request_deserializer, handler.response_serializer)
        if handler.stream_unary:
            return grpc.stream_unary_rpc_method_handler(
                _unary(handler.stream_unary, method), handler.request_deserializer, handler.response_serializer)
        return grpc.stream_stream_rpc_method_handler(
            _streaming(handler.stream_stream, method), handler.request_deserializer, handler.response_serializer)


def _unary(behavior, method: str):
    async def guarded(request, context):
        try:
            return await behavior(request, context)
        except Exception as e:
            await _fail(context, method, e)

    return guarded


def _streaming(behavior, method: str):
    async def guarded(request, context):
        try:
            async for response in behavior(request, context):
                yield response
        except Exception as e:
            await _fail(context, method, e)

    return guarded


async def _fail(context, method: str, error: Exception) -> None:
    if isinstance(error, grpc.aio.AbortError) or context.code() not in (None, grpc.StatusCode.OK):
        raise error  # the handler's own answer (context.abort), already set
    incident = uuid.uuid4().hex[:12]
    logger.error("%s failed (incident %s)", method, incident, exc_info=error)
    await context.abort(grpc.StatusCode.INTERNAL, f"internal error in the tracker (incident {incident}; the "
                                                  f"tracker's log has the details)")
