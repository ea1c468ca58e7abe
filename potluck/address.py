"""Network addresses as users type them (`HOST:PORT` for the tracker, checked before anything dials it),
and the address a lead's servers advertise to other hosts."""

from __future__ import annotations

import contextlib
import ipaddress
import re
import socket

from potluck.errors import ConfigError

HOST_PORT_RE = re.compile(r"(?P<host>[A-Za-z0-9.-]+|\[[0-9a-fA-F:]+\]):(?P<port>[0-9]{1,5})")


def check_host_port(value: str, what: str = "address") -> str:
    """Return `value` if it is HOST:PORT with a port in 1..65535, else raise `ConfigError` naming `what`."""
    match = HOST_PORT_RE.fullmatch(value)
    if not match or not 1 <= int(match["port"]) <= 65535:
        raise ConfigError(f"{what}: must be HOST:PORT with a port from 1 to 65535 (got {value!r})")
    return value


WILDCARD_HOSTS = {"0.0.0.0", "[::]"}
# No packet is sent to it: connecting a UDP socket only asks the kernel which route, so which source
# address, it would use (TEST-NET-1, RFC 5737: never a real host).
ROUTE_PROBE = ("192.0.2.1", 9)


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return host == "localhost"


def default_route_address() -> str | None:
    """The IPv4 address this host's default route leaves from, or None (no route, or only loopback)."""
    with contextlib.suppress(OSError), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect(ROUTE_PROBE)
        address = probe.getsockname()[0]
        if not is_loopback(address) and address != "0.0.0.0":
            return address
    return None


def advertised_host(listen_host: str, public_host: str | None) -> str:
    """The host other machines reach a server listening on `listen_host` at: `public_host` if given, the
    default route's address for a wildcard, else `listen_host` itself. Never a wildcard."""
    if public_host is not None:
        check_host_port(f"{public_host}:1", "--public-host")
        if public_host in WILDCARD_HOSTS:
            raise ConfigError(f"--public-host: must be an address other hosts can reach (got {public_host!r})")
        return public_host
    if listen_host not in WILDCARD_HOSTS:
        return listen_host
    found = default_route_address()
    if found is None:
        raise ConfigError(f"--listen {listen_host}: cannot tell which address other hosts reach this one at (it has "
                          "no default route); give --public-host HOST")
    return found


def tcp_maddr(host: str, port: int) -> str:
    """The libp2p multiaddr of TCP `host`:`port` (an IP address or a DNS name)."""
    try:
        version = ipaddress.ip_address(host.strip("[]")).version
        return f"/ip{version}/{host.strip('[]')}/tcp/{port}"
    except ValueError:
        return f"/dns/{host}/tcp/{port}"


def check_maddr(value: str, what: str = "--announce-maddr") -> str:
    """Return `value` if it is a TCP multiaddr with a fixed port, else raise `ConfigError` naming `what`."""
    from hivemind.utils.multiaddr import Multiaddr  # here: hivemind takes seconds to import

    try:
        port = Multiaddr(value).value_for_protocol("tcp")
    except Exception as e:
        raise ConfigError(f"{what}: not a multiaddr ({value!r}: {e})") from None
    if not port or port == "0":
        raise ConfigError(f"{what}: must name a fixed TCP port, like /ip4/203.0.113.7/tcp/31337 (got {value!r})")
    return value
