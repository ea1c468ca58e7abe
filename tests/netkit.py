"""Hosts for tests, made of Linux network namespaces: some with addresses on one shared link (the
internet, as far as the test goes), some behind a NAT router of their own.

    world (a namespace holding bridge `wbr`)    10.231.0.0/24: public hosts and the routers' outer legs
    public host  `<tag>-<name>`                  10.231.0.N, default route via the bridge
    NAT'd host   `<tag>-<name>` behind `<tag>-<name>-r`: 192.168.K.2/24, default route via 192.168.K.1;
                 the router masquerades what leaves its outer leg (10.231.0.M), so public hosts can
                 answer the NAT'd host but never dial it

Needs root (or CAP_NET_ADMIN), `ip` and, for NAT, `iptables`; `unavailable()` says why not, for a skip.
Everything is named with a tag unique to the test run, and `close()` deletes every namespace it made
(stop the processes in them first: a namespace lives as long as a process in it).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass

WORLD_PREFIX = "10.231.0"
ROUTE_TIMEOUT = 10


def _run(*args: str) -> None:
    found = subprocess.run(args, capture_output=True, text=True, timeout=ROUTE_TIMEOUT)
    if found.returncode != 0:
        raise RuntimeError(f"{' '.join(args)}: {found.stderr.strip()}")


def unavailable() -> str | None:
    """Why namespaces with NAT cannot be made here (None: they can)."""
    for tool in ("ip", "iptables"):
        if shutil.which(tool) is None:
            return f"`{tool}` is not installed (.ci/run installs iptables)"
    probe = f"plprobe{os.getpid()}"
    try:
        _run("ip", "netns", "add", probe)
        _run("ip", "netns", "exec", probe, "iptables", "-t", "nat", "-L", "-n")
    except (RuntimeError, OSError) as e:
        return f"cannot make network namespaces with NAT here: {e}"
    finally:
        subprocess.run(["ip", "netns", "del", probe], capture_output=True, timeout=ROUTE_TIMEOUT)
    return None


@dataclass(frozen=True)
class Host:
    name: str
    namespace: str
    address: str  # its own address: public, or private behind its router
    public: bool

    def command(self, argv: list[str]) -> list[str]:
        """`argv`, run on this host."""
        return ["ip", "netns", "exec", self.namespace, *argv]

    def run(self, *argv: str) -> None:
        _run(*self.command(list(argv)))


class Network:
    def __init__(self, tag: str | None = None):
        self.tag = tag or f"pl{os.getpid() % 100000}"
        self.namespaces: list[str] = []
        self.hosts: dict[str, Host] = {}
        self._next_world = 1
        self._next_private = 1
        self.world = self._namespace("w")
        self._in(self.world, "ip", "link", "add", "name", "wbr", "type", "bridge")
        self._in(self.world, "ip", "link", "set", "wbr", "up")

    def public(self, name: str) -> Host:
        namespace = self._namespace(name)
        address = self._plug(namespace)
        self._in(namespace, "ip", "route", "add", "default", "dev", "eth0")
        return self._add(Host(name, namespace, address, public=True))

    def behind_nat(self, name: str) -> Host:
        router, namespace = self._namespace(f"{name}r"), self._namespace(name)
        outer = self._plug(router)
        self._in(router, "ip", "route", "add", "default", "dev", "eth0")
        k = self._next_private
        self._next_private += 1
        inner, host_end = f"{self.tag}i{k}", f"{self.tag}h{k}"
        _run("ip", "link", "add", inner, "netns", router, "type", "veth", "peer", "name", host_end, "netns", namespace)
        self._in(router, "ip", "addr", "add", f"192.168.{k}.1/24", "dev", inner)
        self._in(router, "ip", "link", "set", inner, "up")
        self._in(namespace, "ip", "link", "set", host_end, "name", "eth0")
        self._in(namespace, "ip", "addr", "add", f"192.168.{k}.2/24", "dev", "eth0")
        self._in(namespace, "ip", "link", "set", "eth0", "up")
        self._in(namespace, "ip", "link", "set", "lo", "up")
        self._in(namespace, "ip", "route", "add", "default", "via", f"192.168.{k}.1")
        self._in(router, "sysctl", "-qw", "net.ipv4.ip_forward=1")
        self._in(router, "iptables", "-t", "nat", "-A", "POSTROUTING", "-o", "eth0", "-j", "MASQUERADE")
        # Nothing from outside reaches the private side unless it answers a connection from inside.
        self._in(router, "iptables", "-A", "FORWARD", "-i", "eth0", "-m", "conntrack", "!", "--ctstate",
                 "ESTABLISHED,RELATED", "-j", "DROP")
        host = self._add(Host(name, namespace, f"192.168.{k}.2", public=False))
        self.hosts[f"{name}-router"] = Host(f"{name}-router", router, outer, public=True)
        return host

    def cut(self, host: Host) -> None:
        """Unplug `host` (for a NAT'd host, its router) from the world."""
        self._link(host, "down")

    def restore(self, host: Host) -> None:
        self._link(host, "up")

    def close(self) -> None:
        for namespace in reversed(self.namespaces):
            subprocess.run(["ip", "netns", "del", namespace], capture_output=True, timeout=ROUTE_TIMEOUT)
        self.namespaces.clear()

    # -- plumbing --

    def _link(self, host: Host, state: str) -> None:
        outer = host if host.public else self.hosts[f"{host.name}-router"]
        self._in(outer.namespace, "ip", "link", "set", "eth0", state)
        if state == "up":
            self._in(outer.namespace, "ip", "route", "replace", "default", "dev", "eth0")

    def _namespace(self, name: str) -> str:
        namespace = f"{self.tag}-{name}"
        _run("ip", "netns", "add", namespace)
        self.namespaces.append(namespace)
        self._in(namespace, "ip", "link", "set", "lo", "up")
        return namespace

    def _plug(self, namespace: str) -> str:
        """A leg on the world's bridge, `eth0` in `namespace`; returns its address."""
        n = self._next_world
        self._next_world += 1
        outside, inside = f"{self.tag}b{n}", f"{self.tag}e{n}"
        _run("ip", "link", "add", outside, "netns", self.world, "type", "veth", "peer", "name", inside,
             "netns", namespace)
        self._in(self.world, "ip", "link", "set", outside, "master", "wbr")
        self._in(self.world, "ip", "link", "set", outside, "up")
        self._in(namespace, "ip", "link", "set", inside, "name", "eth0")
        address = f"{WORLD_PREFIX}.{n}"
        self._in(namespace, "ip", "addr", "add", f"{address}/24", "dev", "eth0")
        self._in(namespace, "ip", "link", "set", "eth0", "up")
        return address

    def _add(self, host: Host) -> Host:
        self.hosts[host.name] = host
        return host

    @staticmethod
    def _in(namespace: str, *argv: str) -> None:
        _run("ip", "netns", "exec", namespace, *argv)
