"""A tracker that breaks the lead's signed policy is caught by `audit verify --lead-key`, and the
failing entry is named: a friend credited at 1000x the price per sample, a grant vested before the
escrow depth, a strike, forfeit or ban with no cause on the log, data credit paid to the wrong owner.
The same log with the arithmetic intact passes an audit that is not given the lead's key (that is
what the auditor could not see)."""

import hashlib

import pytest
from auditkit import Tracker
from ledgerkit import FLOPS_PER_CREDIT, FLOPS_PER_SAMPLE, ORIGIN, grant, signed_report, vest

from potluck.data_credit import DataSplit
from potluck.entries import DataCredit, credits_text, grant_entry, serialize_entry
from potluck.identity import AccountKey
from potluck.manifest import sign_manifest
from potluck.proto import tracker_pb2 as pb
from potluck.proto.ledger_pb2 import Forfeit, LedgerEntry, Strike
from potluck.proto.manifest_pb2 import Manifest
from potluck.proto.tracker_pb2_grpc import TrackerServicer
from potluck.tracker.swarm.swarm_config import parse_swarm_config, render_swarm_template

pytestmark = pytest.mark.timeout(90)

LEAD = AccountKey.generate()
ALICE, BOB = AccountKey.generate(), AccountKey.generate()
ESCROW_DEPTH = 3


class ManifestService(TrackerServicer):
    """The tracker service's manifest call, serving the lead's signed manifest (the rest unimplemented)."""

    def __init__(self, signed: bytes, log_key: str):
        self.signed, self.log_key = signed, log_key

    async def GetManifest(self, request, context):
        return pb.GetManifestResponse(signed_manifest=self.signed, log_key=self.log_key)


def signed_manifest(lead: AccountKey = LEAD) -> bytes:
    manifest = parse_swarm_config(render_swarm_template("test"))
    manifest.origin = ORIGIN
    manifest.task.flops_per_sample = FLOPS_PER_SAMPLE
    manifest.credit_policy.version, manifest.credit_policy.flops_per_credit = 1, FLOPS_PER_CREDIT
    manifest.credit_policy.escrow_depth = ESCROW_DEPTH
    return sign_manifest(manifest, lead)


@pytest.fixture
def tracker(tmp_path):
    t = Tracker(tmp_path, tracker_service=lambda verifier_key: ManifestService(signed_manifest(), verifier_key))
    try:
        yield t
    finally:
        t.close()


def honest_log() -> list[LedgerEntry]:
    """Alice's grants 0..3 and Bob's 4; grant 0 vests once 3 later grants of Alice's are logged."""
    entries = [grant(ALICE, s) for s in range(1, 5)] + [grant(BOB, 1)]
    entries.append(vest(ALICE, [0], entries[0].grant.flops))
    return entries


def audit(tracker, entries: list[LedgerEntry], tmp_path, *extra: str):
    tracker.serve([serialize_entry(e) for e in entries], f"log{len(tracker.ledgers)}")
    return tracker.verify(tmp_path / f"state{len(tracker.ledgers)}", *extra)


def caught(result, *expected: str) -> None:
    assert result.exit_code == 1, result.output
    for text in expected:
        assert text in result.stdout, result.stdout


def test_an_honest_log_passes_the_policy_checks(tracker, tmp_path):
    result = audit(tracker, honest_log(), tmp_path, "--lead-key", LEAD.account_id)
    assert result.exit_code == 0, result.output
    assert "policy checked against the lead's manifest" in result.stdout


def test_a_friend_credited_at_a_thousand_times_the_price_is_caught(tracker, tmp_path):
    entries = honest_log()
    g = entries[4].grant  # Bob's: same signed report, priced 1000x; arithmetic consistent
    entries[4] = grant_entry(origin=ORIGIN, report=g.report, account_id=g.account_id, num_samples=g.num_samples,
                             flops_per_sample=FLOPS_PER_SAMPLE * 1000, policy_version=1,
                             flops_per_credit=FLOPS_PER_CREDIT, logged_at_ms=1)
    assert audit(tracker, entries, tmp_path).exit_code == 0  # without the manifest, nothing to see
    caught(audit(tracker, entries, tmp_path, "--lead-key", LEAD.account_id),
           f"entry 4: expected {FLOPS_PER_SAMPLE} FLOPs per sample (the manifest's), got {FLOPS_PER_SAMPLE * 1000}")


def test_a_grant_vested_before_the_escrow_depth_is_caught(tracker, tmp_path):
    entries = [grant(ALICE, 1), grant(ALICE, 2)]
    entries.append(vest(ALICE, [0], entries[0].grant.flops))
    assert audit(tracker, entries, tmp_path).exit_code == 0
    caught(audit(tracker, entries, tmp_path, "--lead-key", LEAD.account_id),
           "entry 2: vests grant 0 of", f"after 1 later grants, before the escrow depth of {ESCROW_DEPTH}")


@pytest.mark.parametrize(("penalty", "expected"), [
    (Strike(account_id=BOB.account_id, report_index=99, check="recompute", reason="made up"),
     "which is not a grant logged before it"),
    (Strike(account_id=BOB.account_id, report_index=0, check="recompute", reason="made up"),
     "for a recompute check of another account's report (entry 0)"),
    (Strike(account_id=BOB.account_id, report_index=4, check="", reason="made up"), "without naming the check"),
    (Forfeit(account_id=BOB.account_id, grant_indices=[4], flops=0, reason="made up"),
     "without the strike that decides it"),
])
def test_a_penalty_without_cause_on_the_log_is_caught(tracker, tmp_path, penalty, expected):
    entries = honest_log()[:5]
    kind = "strike" if isinstance(penalty, Strike) else "forfeit"
    if kind == "forfeit":
        penalty.flops = entries[4].grant.flops
    entries.append(LedgerEntry(origin=ORIGIN, logged_at_ms=1, **{kind: penalty}))
    assert audit(tracker, entries, tmp_path).exit_code == 0
    caught(audit(tracker, entries, tmp_path, "--lead-key", LEAD.account_id), "entry 5: ", expected)


def test_a_manifest_not_signed_by_the_given_lead_is_refused(tracker, tmp_path):
    result = audit(tracker, honest_log(), tmp_path, "--lead-key", AccountKey.generate().account_id)
    assert result.exit_code == 1
    assert "manifest" in result.output and "signer" in result.output, result.output


def text_manifest() -> Manifest:
    """A charlm swarm on two shards of text with different owners (Ana's and Bea's)."""
    manifest = parse_swarm_config(render_swarm_template("text").replace('name = "synthetic"', 'name = "charlm"', 1)
                                  .replace("# Task parameters; anything left out takes the task's default.",
                                           "seq_len = 16"))
    for owner, text in (("Archivo de Ana", b"a" * 300), ("Biblioteca de Bea", b"b" * 200)):
        manifest.datasets.add(name=owner[:6], sha256=hashlib.sha256(text).hexdigest(), size_bytes=len(text),
                              license="CC0-1.0", owner=owner)
    manifest.origin, manifest.task.flops_per_sample = ORIGIN, FLOPS_PER_SAMPLE
    manifest.credit_policy.version, manifest.credit_policy.flops_per_credit = 1, FLOPS_PER_CREDIT
    return manifest


def test_data_credit_to_the_wrong_owner_or_none_is_caught(tmp_path):
    manifest = text_manifest()
    split, policy = DataSplit(manifest), manifest.credit_policy
    flops = 256 * FLOPS_PER_SAMPLE

    def text_grant(account, sequence, data=None):
        return grant_entry(origin=ORIGIN, report=signed_report(account, sequence, num_samples=256),
                           account_id=account.account_id, num_samples=256, flops_per_sample=FLOPS_PER_SAMPLE,
                           policy_version=1, flops_per_credit=FLOPS_PER_CREDIT, logged_at_ms=1,
                           data_share_ppm=policy.data_share_ppm, data_windows=split.total,
                           data=split.credits(flops, FLOPS_PER_CREDIT) if data is None else data)

    honest = [text_grant(ALICE, 1), text_grant(BOB, 1)]
    assert [c.windows for c in honest[0].grant.data] == [300 - 16, 200 - 16] and policy.data_share_ppm == 100_000
    # Bob's grant pays Bea as if she owned every window (the arithmetic consistent), and Ana nothing.
    everything = DataCredit(owner="Biblioteca de Bea", windows=split.total, flops=flops // 10,
                            credits=credits_text(flops // 10, FLOPS_PER_CREDIT))
    t = Tracker(tmp_path, tracker_service=lambda key: ManifestService(sign_manifest(manifest, LEAD), key))
    try:
        assert audit(t, honest, tmp_path, "--lead-key", LEAD.account_id).exit_code == 0
        for lie, expected in ((text_grant(BOB, 1, [everything]), "expected data credit in FLOPs by owner "),
                              (text_grant(BOB, 1, []), "got none")):
            entries = [honest[0], lie]
            assert audit(t, entries, tmp_path).exit_code == 0  # without the manifest, nothing to see
            caught(audit(t, entries, tmp_path, "--lead-key", LEAD.account_id), "entry 1: ", expected)
    finally:
        t.close()
