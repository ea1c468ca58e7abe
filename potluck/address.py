"""Network addresses as users type them: `HOST:PORT` for the tracker, checked before anything dials it."""

from __future__ import annotations

import re

from potluck.errors import ConfigError

HOST_PORT_RE = re.compile(r"(?P<host>[A-Za-z0-9.-]+|\[[0-9a-fA-F:]+\]):(?P<port>[0-9]{1,5})")


def check_host_port(value: str, what: str = "address") -> str:
    """Return `value` if it is HOST:PORT with a port in 1..65535, else raise `ConfigError` naming `what`."""
    match = HOST_PORT_RE.fullmatch(value)
    if not match or not 1 <= int(match["port"]) <= 65535:
        raise ConfigError(f"{what}: must be HOST:PORT with a port from 1 to 65535 (got {value!r})")
    return value
