"""The tracker's gRPC side: the `Tracker` service volunteers call (manifest, registration, reports, shards,
status), the read-only `Ledger` service anyone may call, and the server that carries both with the
standard health and reflection services."""

from .ledger_service import LedgerService
from .server import start_server
from .tracker_service import TrackerService

__all__ = ["LedgerService", "TrackerService", "start_server"]
