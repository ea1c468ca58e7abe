"""Typed errors, one base class. The CLI turns any `PotluckError` into one line and exit code 1."""


class PotluckError(Exception):
    """A failure we expected and can explain to the user in one line."""


class ConfigError(PotluckError):
    """A configuration file or command-line value is invalid."""


class KeyFileError(PotluckError):
    """A key file is missing, unreadable, corrupt or too widely readable."""


class VerificationError(PotluckError):
    """A signature, proof or claim did not verify. The message says what was expected and what was found."""


class TrackerError(PotluckError):
    """The tracker answered a call with an error. `code` is the gRPC status name (e.g. "OUT_OF_RANGE")."""

    def __init__(self, message: str, code: str | None = None):
        super().__init__(message)
        self.code = code


class TrackerUnreachable(TrackerError):
    """No answer came from the tracker: it is down, unreachable, or slower than the call's deadline."""
