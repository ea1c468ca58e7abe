"""potluck: train models together on volunteered hardware, with verifiable compute credits."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("potluck")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"
