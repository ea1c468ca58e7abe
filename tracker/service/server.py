"""The tracker's gRPC server: our services plus the standard health service and reflection, over TLS only.

Plain-text connections are refused: a volunteer deletes a report once the tracker acknowledges it, so an
unauthenticated tracker would let anyone on the path forge acknowledgements (potluck/tls.py).
"""

from __future__ import annotations

import logging

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from potluck.errors import ConfigError
from potluck.proto import tracker_pb2, tracker_pb2_grpc
from potluck.proto.wire import MAX_MESSAGE_BYTES
from potluck.tls import TrackerCertificate
from potluck.tracker.service.incidents import IncidentInterceptor

logger = logging.getLogger(__name__)

SERVER_OPTIONS = [
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.so_reuseport", 0),
    ("grpc.max_concurrent_streams", 32),  # per connection: a node's reporter, status and balance calls
]
# Calls in progress at once, every client's together (more are answered RESOURCE_EXHAUSTED by gRPC): with
# each report stream's bytes in flight (tracker_service.MAX_BYTES_IN_FLIGHT), what bounds the tracker's
# memory under a flood. Honest nodes hold one short report stream at a time, and only while they flush.
MAX_CONCURRENT_RPCS = 256


async def start_server(listen: str, certificate: TrackerCertificate, *, ledger_service=None, tracker_service=None,
                       interceptors=()) -> tuple[grpc.aio.Server, int]:
    """Start a grpc.aio server on `listen` (HOST:PORT, port 0 picks one) with TLS; return it and its port."""
    # The incident interceptor first, so that it wraps every handler (other interceptors' too): no client
    # hears an exception's class, message or traceback.
    server = grpc.aio.server(options=SERVER_OPTIONS, interceptors=[IncidentInterceptor(), *interceptors],
                             maximum_concurrent_rpcs=MAX_CONCURRENT_RPCS)
    names = [reflection.SERVICE_NAME, health.SERVICE_NAME]
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    descriptor = tracker_pb2.DESCRIPTOR.services_by_name
    if ledger_service is not None:
        tracker_pb2_grpc.add_LedgerServicer_to_server(ledger_service, server)
        names.append(descriptor["Ledger"].full_name)
    if tracker_service is not None:
        tracker_pb2_grpc.add_TrackerServicer_to_server(tracker_service, server)
        names.append(descriptor["Tracker"].full_name)
    reflection.enable_server_reflection(names, server)
    try:
        port = server.add_secure_port(
            listen, grpc.ssl_server_credentials([(certificate.key_pem, certificate.cert_pem)]))
    except RuntimeError as e:
        raise ConfigError(f"--listen {listen}: cannot listen there ({e})") from None
    if port == 0:
        raise ConfigError(f"--listen {listen}: cannot listen there (address in use or not local)")
    await server.start()
    for name in names[2:]:
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    await health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    logger.info("gRPC server listening on %s (port %d)", listen, port)
    return server, port
