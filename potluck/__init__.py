"""potluck: train models together on volunteered hardware, with verifiable compute credits."""

import os

# Before anything imports grpc (it reads this once, at import). potluck forks processes while gRPC calls
# are in flight (the node's training worker while its reporter streams to the tracker; the tracker's
# report-opening workers while it serves). With grpc's fork support on, its fork handlers see those calls,
# skip themselves, and the child is left with gRPC's threads' half-copied state: measured, 4 of 300 such
# children died of SIGSEGV within a second, doing nothing (tests/foundation/test_fork_with_grpc.py). No
# child of ours uses gRPC, so the handlers are not needed. A user who set the variable keeps their choice.
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")

from importlib.metadata import PackageNotFoundError, version  # noqa: E402

try:
    __version__ = version("potluck")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"
