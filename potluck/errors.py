"""Typed errors. The CLI turns any `PotluckError` into one line and exit code 1."""


class PotluckError(Exception):
    """A failure we expected and can explain to the user in one line."""


class ConfigError(PotluckError):
    """A configuration file or command-line value is invalid."""


class KeyFileError(PotluckError):
    """A key file is missing, unreadable, corrupt or too widely readable."""


class VerificationError(PotluckError):
    """A signature, proof or claim did not verify. The message says what was expected and what was found."""
