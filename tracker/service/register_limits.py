"""How fast new (account, peer) pairs may register: per account, per caller's network, and overall.

Register needs no account (it is how one starts), and each new pair is a durable ledger entry and memory
for good. Three buckets protect against three attackers:

* one account binding endless peers (16 at once, then one a minute: a volunteer has a few machines);
* one host making endless accounts, which alone would spend the whole tracker's budget and so lock every
  honest newcomer out (64 at once, then one every 4 s: a lab behind one NAT still joins in minutes);
* many hosts at once, bounded by the tracker-wide budget (1024 at once, 16 a second, 57k an hour).

A new pair must find a token in all three; one refused takes nothing from the others, so an account or a
host at its limit does not spend the budget of the level above it. An IPv6 caller is counted by its /64,
as one subscriber gets a whole /64 to pick addresses from.
"""

from __future__ import annotations

import ipaddress

from potluck.tracker.intake.report_intake import TokenBucket

REGISTER_BURST, REGISTER_PER_SECOND = 1024, 16.0
SOURCE_REGISTER_BURST, SOURCE_REGISTER_PER_SECOND = 64, 1 / 4
ACCOUNT_REGISTER_BURST, ACCOUNT_REGISTER_PER_SECOND = 16, 1 / 60
# Buckets kept per account and per source before the full ones (as good as new) are dropped. A bucket is
# short of full only for `burst / per_second` after a registration, and the tracker-wide rate bounds how
# many registrations that is: 16/s over 960 s is 15,360 accounts, over 256 s 4,096 sources.
MAX_BUCKETS = 32_768


class Refused(Exception):
    """A new pair over a limit: the reason says which, for the caller."""


class _Buckets:
    """One bucket per key, the full ones dropped when there are more than MAX_BUCKETS."""

    def __init__(self, burst: float, per_second: float):
        self.burst, self.per_second = burst, per_second
        self.by_key: dict[str, TokenBucket] = {}

    def get(self, key: str, now: float) -> TokenBucket:
        bucket = self.by_key.get(key)
        if bucket is None:
            if len(self.by_key) >= MAX_BUCKETS:
                self.by_key = {k: b for k, b in self.by_key.items() if b.refill(now) < b.burst}
            bucket = self.by_key[key] = TokenBucket(now, self.burst, self.per_second)
        bucket.refill(now)
        return bucket


def source_of(host: str | None) -> str:
    """The network a caller is counted by: its IPv4 address, its IPv6 /64 (an IPv4-mapped one as IPv4)."""
    if host is None:
        return "local"  # not over TCP (a Unix socket): this machine
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


class RegisterLimits:
    def __init__(self, now: float):
        self.overall = TokenBucket(now, REGISTER_BURST, REGISTER_PER_SECOND)
        self.sources = _Buckets(SOURCE_REGISTER_BURST, SOURCE_REGISTER_PER_SECOND)
        self.accounts = _Buckets(ACCOUNT_REGISTER_BURST, ACCOUNT_REGISTER_PER_SECOND)

    def take(self, account_id: str, host: str | None, now: float) -> None:
        """Spend one token of each level for a new pair, or raise Refused (spending none)."""
        source = source_of(host)
        levels = (
            (self.accounts.get(account_id, now), f"account {account_id[:12]} registers new peers too fast; "
                                                 "retry in a minute"),
            (self.sources.get(source, now), f"{source} registers new peers too fast; retry in a few seconds"),
            (self.overall, f"the tracker takes new registrations at {REGISTER_PER_SECOND:g}/s; retry shortly"),
        )
        self.overall.refill(now)
        for bucket, reason in levels:
            if bucket.tokens < 1.0:
                raise Refused(reason)
        for bucket, _ in levels:
            bucket.tokens -= 1.0
