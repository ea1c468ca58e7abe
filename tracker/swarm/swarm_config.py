"""`swarm.toml`: the lead's description of a swarm, loaded into a (not yet signed) `Manifest` message.

It lives with the lead's side: only a lead writes swarm.toml, and checking its task parameters takes
the node's task recipes. Volunteers and auditors read the signed manifest instead (`potluck.manifest`).

Every field is checked; a mistake is reported as
`swarm.toml: [section] key: what is wrong (got X)`.
"""

from __future__ import annotations

import re
import secrets
import string
import tomllib
from importlib.resources import files
from pathlib import Path
from typing import Any

from potluck.address import check_host_port
from potluck.data_credit import MAX_OWNERS
from potluck.entries import PPM
from potluck.errors import ConfigError
from potluck.identity import MAX_OWNER_BYTES, parse_credited
from potluck.manifest import MANIFEST_FORMAT_VERSION, is_training
from potluck.proto.manifest_pb2 import (
    Community,
    CreditPolicy,
    DatasetShard,
    HivemindSettings,
    Manifest,
    ParamValue,
    TaskSpec,
)
from potluck.tracker.credit.deterrence import deterrence_problem

SECTIONS = {"swarm", "community", "task", "datasets", "hivemind", "network", "credits"}
COMPRESSIONS = ("none", "float16", "uniform8bit")
# Origins name signed-note keys too, which forbid whitespace and '+'.
ORIGIN_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/:-]{0,199}")
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
SHA256_RE = re.compile(r"[0-9a-f]{64}")
DATASET_KIND_RE = re.compile(r"train|eval|tokenizer")


class _Table:
    """One TOML table, read key by key, so every error can name its section and key."""

    def __init__(self, source: str, section: str, table: Any):
        self.source, self.section = source, section
        if not isinstance(table, dict):
            raise ConfigError(f"{source}: [{section}]: must be a table (got {table!r})")
        self.table = dict(table)

    def where(self, key: str) -> str:
        # Keys of the document root are sections themselves.
        return f"{self.source}: [{self.section}] {key}" if self.section else f"{self.source}: [{key}]"

    def error(self, key: str, what: str, value: Any) -> ConfigError:
        shown = "a table" if isinstance(value, dict) else repr(value)
        if len(shown) > 80:
            shown = shown[:77] + "..."
        return ConfigError(f"{self.where(key)}: {what} (got {shown})")

    def take(self, key: str, kind: type, default: Any = ...) -> Any:
        if key not in self.table:
            if default is ...:
                raise ConfigError(f"{self.where(key)}: required {'key' if self.section else 'section'} is missing")
            return default
        value = self.table.pop(key)
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise self.error(key, f"must be {_KIND_NAMES[kind]}", value)
        return value

    def take_str(self, key: str, pattern: re.Pattern | None = None, what: str = "", default: Any = ...) -> str:
        value = self.take(key, str, default)
        if pattern is not None and not pattern.fullmatch(value):
            raise self.error(key, what, value)
        return value

    def take_number(self, key: str, kind: type, low: float, high: float | None = None, default: Any = ...):
        value = self.take(key, kind, default)
        if not (value >= low and (high is None or value <= high)):  # NaN is neither
            bound = f"at least {low}" if high is None else f"between {low} and {high}"
            raise self.error(key, f"must be {bound}", value)
        return value

    def finish(self) -> None:
        if self.table:
            key = sorted(self.table)[0]
            raise self.error(key, "unknown key" if self.section else "unknown section", self.table[key])


_KIND_NAMES = {str: "a string", int: "an integer", float: "a number", bool: "true or false", list: "a list"}


def _owner(shard: _Table) -> str:
    """Who is credited for a shard's text: an account id (lowercased), or a name."""
    owner = shard.take_str("owner")
    try:
        return parse_credited(owner, "owner")
    except ConfigError:
        raise shard.error("owner", f"must be an account id or a name of up to {MAX_OWNER_BYTES} bytes of "
                                   f"printable UTF-8 in NFC", owner) from None


def _data_share_ppm(credits: _Table) -> int:
    """`data_share` (absent: 0, no owner credited) in the parts per million grants carry."""
    share = credits.take_number("data_share", float, 0.0, 1.0, default=0.0)
    ppm = round(share * PPM)
    if abs(ppm / PPM - share) > 1e-12:
        raise credits.error("data_share", "must have at most 6 decimal places", share)
    return ppm


def _param_value(value: Any) -> ParamValue:
    if isinstance(value, bool):
        return ParamValue(bool_value=value)
    if isinstance(value, int):
        return ParamValue(int_value=value)
    if isinstance(value, float):
        return ParamValue(float_value=value)
    return ParamValue(string_value=value)


def _load_task(source: str, table: Any) -> TaskSpec:
    from potluck.node.tasks import (  # here, not at the top: it imports torch, which `swarm init` needs not
        TASKS,
        get_task,
    )

    section = _Table(source, "task", table)
    name = section.take_str("name")
    params = _Table(source, "task.params", section.take("params", dict, {}))
    section.finish()
    if name not in TASKS:
        raise section.error("name", f"unknown task (known: {', '.join(sorted(TASKS))})", name)
    for key, value in params.table.items():
        if not isinstance(value, int | float | str | bool):
            raise params.error(key, "must be a number, string or boolean", value)
    try:
        validated = TASKS[name].validate_params(params.table)
    except ConfigError as e:
        raise ConfigError(f"{source}: [task.params] {str(e).removeprefix('task.params.')}") from None
    # The price of a sample, signed with the manifest: grants must use it, and auditors check that they do.
    return TaskSpec(name=name, params={k: _param_value(v) for k, v in validated.items()},
                    flops_per_sample=get_task(name, validated).flops_per_sample())


def _load_dataset(source: str, number: int, table: Any) -> DatasetShard:
    shard = _Table(source, f"datasets.{number}", table)
    result = DatasetShard(
        name=shard.take_str("name", NAME_RE, "must be a short name of letters, digits, '_', '.', '-'"),
        sha256=shard.take_str("sha256", SHA256_RE, "must be 64 lowercase hex digits"),
        size_bytes=shard.take_number("size_bytes", int, 1),
        license=shard.take_str("license", re.compile(r"\S.*"), "must not be empty"),
        owner=_owner(shard),
        kind=shard.take_str("kind", DATASET_KIND_RE, "must be train, eval or tokenizer", "train"),
    )
    shard.finish()
    return result


def _check_bootstrap_peers(network: _Table, peers: list) -> list[str]:
    for peer in peers:
        if not isinstance(peer, str) or not peer.startswith("/") or "/p2p/" not in peer:
            raise network.error("bootstrap_peers", "each must be a libp2p multiaddr ending in /p2p/<PeerID>", peer)
    return peers


def parse_swarm_config(text: str, source: str = "swarm.toml") -> Manifest:
    """Parse and check swarm.toml text into an (unsigned) `Manifest`."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{source}: not valid TOML ({e})") from None
    root = _Table(source, "", doc)
    unknown = sorted(set(doc) - SECTIONS)
    if unknown:
        raise root.error(unknown[0], f"unknown section (known: {', '.join(sorted(SECTIONS))})", doc[unknown[0]])

    swarm = _Table(source, "swarm", root.take("swarm", dict))
    name = swarm.take_str("name", NAME_RE, "must be letters, digits, '_', '.', '-' (at most 64)")
    description = swarm.take_str("description", default="")
    origin = swarm.take_str("origin", ORIGIN_RE, "must be 1-200 characters of letters, digits, '._/:-'")
    seed_hex = swarm.take_str("seed", SHA256_RE, "must be 64 lowercase hex digits (32 random bytes)")
    swarm.finish()

    community = _Table(source, "community", root.take("community", dict, {}))
    community_msg = Community(
        language=community.take_str("language", default=""),
        region=community.take_str("region", default=""),
        sector=community.take_str("sector", default=""),
    )
    community.finish()

    task = _load_task(source, root.take("task", dict))
    datasets = root.take("datasets", list, [])
    shards = [_load_dataset(source, i, table) for i, table in enumerate(datasets)]
    digests = [s.sha256 for s in shards]
    if len(set(digests)) != len(digests):
        raise root.error("datasets", "a shard is listed twice", digests)
    owners = sorted({shard.owner for shard in shards if is_training(shard)})
    if len(owners) > MAX_OWNERS:  # every grant names each (potluck/data_credit.py)
        raise root.error("datasets", f"the training shards have {len(owners)} owners; at most {MAX_OWNERS}", owners)

    hive = _Table(source, "hivemind", root.take("hivemind", dict))
    hivemind = HivemindSettings(
        run_id=hive.take_str("run_id", NAME_RE, "must be letters, digits, '_', '.', '-' (at most 64)"),
        target_batch_size=hive.take_number("target_batch_size", int, 1, 1 << 30),
        matchmaking_time=hive.take_number("matchmaking_time", float, 0.5, 300.0),
        averaging_timeout=hive.take_number("averaging_timeout", float, 1.0, 3600.0),
        compression=hive.take_str("compression", default="none"),
        learning_rate=hive.take_number("learning_rate", float, 1e-7, 10.0),
    )
    if hivemind.compression not in COMPRESSIONS:
        raise hive.error("compression", f"must be one of {', '.join(COMPRESSIONS)}", hivemind.compression)
    if hivemind.averaging_timeout <= hivemind.matchmaking_time:
        raise hive.error("averaging_timeout", "must be longer than matchmaking_time", hivemind.averaging_timeout)
    hive.finish()

    network = _Table(source, "network", root.take("network", dict))
    peers = _check_bootstrap_peers(network, network.take("bootstrap_peers", list, []))
    tracker = network.take_str("tracker")
    try:
        check_host_port(tracker)
    except ConfigError:
        raise network.error("tracker", "must be HOST:PORT with a port from 1 to 65535", tracker) from None
    network.finish()

    credits = _Table(source, "credits", root.take("credits", dict))
    policy = CreditPolicy(
        version=credits.take_number("version", int, 1, (1 << 32) - 1),
        flops_per_credit=credits.take_number("flops_per_credit", int, 1, (1 << 64) - 1),
        sampling_rate=credits.take_number("sampling_rate", float, 0.001, 1.0),
        new_account_checks=credits.take_number("new_account_checks", int, 0, 1_000_000),
        escrow_depth=credits.take_number("escrow_depth", int, 0, 1_000_000),
        data_share_ppm=_data_share_ppm(credits),
    )
    problem = deterrence_problem(policy.sampling_rate, policy.escrow_depth, policy.data_share_ppm)
    if problem is not None:
        raise credits.error("escrow_depth", problem, policy.escrow_depth)
    credits.finish()
    root.finish()

    return Manifest(
        format_version=MANIFEST_FORMAT_VERSION,
        name=name,
        description=description,
        origin=origin,
        swarm_seed=bytes.fromhex(seed_hex),
        community=community_msg,
        task=task,
        datasets=shards,
        hivemind=hivemind,
        bootstrap_peers=peers,
        tracker_address=tracker,
        credit_policy=policy,
    )


def load_swarm_config(path: Path) -> Manifest:
    """Read and check a swarm.toml file."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: file does not exist") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: cannot read ({e})") from None
    return parse_swarm_config(text, source=str(path))


def render_swarm_template(name: str) -> str:
    """A commented swarm.toml for a new swarm, with a fresh origin and seed, that loads as is."""
    if not NAME_RE.fullmatch(name):
        raise ConfigError(f"swarm name: must be letters, digits, '_', '.', '-' (at most 64) (got {name!r})")
    template = string.Template((files(__package__) / "swarm_template.toml").read_text(encoding="utf-8"))
    return template.substitute(
        name=name,
        origin=f"potluck.swarm/{name}/{secrets.token_hex(8)}",
        seed=secrets.token_hex(32),
        run_id=name,
    )
