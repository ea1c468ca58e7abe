"""The tracker, assembled: ledger and accounts, report intake, verification, the single writer, the gRPC services."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from potluck.entries import decode_entry
from potluck.errors import ConfigError
from potluck.keyfile import load_or_create_secret
from potluck.manifest import SignedManifest, initial_state_shard, param_dict, training_shards
from potluck.node.hivemind_config import HivemindConfig
from potluck.node.tasks import get_task
from potluck.proto.report_pb2 import ContributionReport
from potluck.signing import parse_envelope
from potluck.tlog import verifier_key_text
from potluck.tls import load_or_create_certificate
from potluck.tracker.credit import Accounts, CreditPolicy
from potluck.tracker.credit.deterrence import check_deterrence
from potluck.tracker.intake import ReportIntake, Submissions
from potluck.tracker.ledger import (
    MARK_FILE,
    STATE_DIR_LOCK_FILE,
    HighWaterMark,
    Ledger,
    LedgerWriter,
    WriterLock,
    load_or_create_log_key,
    open_store,
)
from potluck.tracker.service import LedgerService, TrackerService, start_server
from potluck.tracker.swarm_stats import SwarmStats
from potluck.tracker.verifier import Verification, VerifierSpec

logger = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class TrackerConfig:
    """Where the tracker keeps its state and where it listens."""

    state_dir: Path
    db: str  # a SQLite path, or a postgresql:// URL
    listen: str  # HOST:PORT; port 0 picks a free one
    shards: dict[str, Path] = field(default_factory=dict)  # dataset shards it serves, by sha256
    verify: bool = True  # run the verifier (stages b and c); without it grants vest on escrow depth alone
    checkpoint_every: int = 5  # the verifier saves the swarm's model to state_dir/checkpoints this often
    # The p2p daemon (a control multiaddr on this host) the verifier downloads states through: the
    # bootstrap peer's, which every volunteer keeps a connection to. None: the verifier's own.
    fetch_daemon: str | None = None


class Tracker:
    """A running tracker. Create with `await Tracker.start(...)`, end with `await tracker.stop()`."""

    def __init__(self, manifest: SignedManifest, ledger: Ledger, server: grpc.aio.Server, port: int,
                 writer: LedgerWriter, service: TrackerService, state_lock: WriterLock, tls_sha256: str):
        self.manifest, self.ledger, self.server, self.port = manifest, ledger, server, port
        self.writer, self.service, self.state_lock = writer, service, state_lock
        self.tls_sha256 = tls_sha256  # the fingerprint of the certificate it serves, for volunteers to pin

    @classmethod
    async def start(cls, manifest: SignedManifest, config: TrackerConfig) -> Tracker:
        # One tracker per state dir: two would sign with one log key, each over its own history.
        state_lock = WriterLock(config.state_dir / STATE_DIR_LOCK_FILE, f"the state directory {config.state_dir}")
        try:
            return await cls._start(manifest, config, state_lock)
        except BaseException:
            state_lock.release()
            raise

    @classmethod
    async def _start(cls, manifest: SignedManifest, config: TrackerConfig, state_lock: WriterLock) -> Tracker:
        m = manifest.manifest
        task = get_task(m.task.name, param_dict(m.task))  # the verifier supplies shards when it needs data
        flops_per_sample, tokens_per_sample = task.flops_per_sample(), task.tokens_per_sample()
        check_deterrence(m.credit_policy)  # a manifest signed elsewhere, or by an older potluck
        if m.task.flops_per_sample and m.task.flops_per_sample != flops_per_sample:
            raise ConfigError(f"the manifest prices a sample at {m.task.flops_per_sample} FLOPs, but task "
                              f"{m.task.name!r} costs {flops_per_sample} (signed by another potluck version?)")
        log_key = load_or_create_log_key(config.state_dir, m.origin)
        certificate = load_or_create_certificate(config.state_dir)
        check_pins(m, verifier_key_text(m.origin, log_key.verify_key), certificate.sha256, config.state_dir)
        spec = _verifier_spec(m, config) if config.verify else None
        check_key = load_or_create_secret(config.state_dir / "check.key")
        accounts = Accounts(m.origin, m.credit_policy)  # restored from every stored entry as the ledger opens
        ledger = Ledger(open_store(config.db), origin=m.origin, log_key=log_key, balances=accounts,
                        mark=HighWaterMark(config.state_dir / MARK_FILE))
        policy = CreditPolicy(m.credit_policy, origin=m.origin, accounts=accounts, check_key=check_key)
        intake = ReportIntake(manifest, accounts, flops_per_sample=flops_per_sample,
                              tokens_per_sample=tokens_per_sample)
        writer = LedgerWriter(ledger)
        writer.start()
        stats = SwarmStats()
        verification = Verification(policy=policy, writer=writer, spec=spec, stats=stats)
        writer.on_landed_late = verification.on_landed_late  # a grant committed unseen is checked all the same
        submissions = Submissions(manifest=manifest, ledger=ledger, writer=writer, intake=intake,
                                  verification=verification, stats=stats, flops_per_sample=flops_per_sample)
        service = TrackerService(manifest=manifest, ledger=ledger, writer=writer, accounts=accounts,
                                 submissions=submissions, shards=config.shards)
        try:
            await verification.start()
            await submissions.start()
            for _, index in policy.escrowed() if config.verify else ():
                envelope = decode_entry(ledger.entries(index, index + 1)[0], index).grant.report
                # Its signature was checked when it was logged (and the verifier checks it again).
                verification.recheck(index, envelope, ContributionReport.FromString(parse_envelope(envelope).payload))
            server, port = await start_server(
                config.listen, certificate, tracker_service=service,
                ledger_service=LedgerService(ledger, m.credit_policy.flops_per_credit))
        except BaseException:
            await submissions.stop()
            await verification.stop()
            await writer.stop()
            ledger.store.close()
            raise
        logger.info("tracker for %s serving on port %d (%d ledger entries)", m.origin, port, ledger.size)
        return cls(manifest, ledger, server, port, writer, service, state_lock, certificate.sha256)

    @property
    def log_key(self) -> str:
        return self.ledger.verifier_key

    @property
    def verification(self) -> Verification:
        return self.service.submissions.verification

    async def stop(self, grace: float = 2.0) -> None:
        await self.server.stop(grace)
        await self.service.submissions.stop()
        await self.verification.stop()
        await self.writer.stop()
        self.ledger.store.close()
        self.state_lock.release()


def check_pins(m, log_key: str, tls_sha256: str, state_dir: Path) -> None:
    """A manifest pins this tracker's log key and certificate: refuse to serve one that pins others'."""
    if m.log_key and m.log_key != log_key:
        raise ConfigError(f"the manifest pins log key {m.log_key!r}, but {state_dir} holds {log_key!r}: "
                          "volunteers would refuse every receipt (the manifest is for another state directory)")
    if m.tracker_tls_sha256 and m.tracker_tls_sha256 != tls_sha256:
        raise ConfigError(f"the manifest pins TLS certificate sha256:{m.tracker_tls_sha256}, but {state_dir} holds "
                          f"sha256:{tls_sha256}: volunteers would refuse this tracker")
    if not m.log_key or not m.tracker_tls_sha256:
        logger.warning("the manifest pins no log key or TLS certificate: volunteers must trust this tracker on "
                       "first use (`swarm start` signs both in)")


def _verifier_spec(m, config: TrackerConfig) -> VerifierSpec:
    if not m.bootstrap_peers:
        raise ConfigError("the manifest names no bootstrap peers, so the verifier cannot follow the swarm")
    return VerifierSpec(
        origin=m.origin, hivemind=HivemindConfig.from_manifest(m), data_seed=m.swarm_seed,
        task_name=m.task.name, task_params=param_dict(m.task),
        shards=tuple((sha, config.shards[sha].read_bytes())
                     for sha in sorted(training_shards(m) & config.shards.keys())),
        checkpoint_dir=str(config.state_dir / "checkpoints"), checkpoint_every=config.checkpoint_every,
        fetch_daemon=config.fetch_daemon,
        eval_shards=tuple((d.sha256, config.shards[d.sha256].read_bytes()) for d in m.datasets
                          if d.kind == "eval" and d.sha256 in config.shards),
        initial_state=config.shards[init].read_bytes() if (init := initial_state_shard(m)) in config.shards else None)

