"""Opening reports: the checks that need no account state (size, encoding, swarm, the number of
attestations, signature, signer), and apart from them the groupmates' attestations' signatures.

They are most of what a report costs the tracker (an Ed25519 verification each), so they run in the
worker processes of `opening_pool`; this module is what those workers import, and it stays light.
A report's attestations are read only once the report is admitted (`ReportIntake`: its account
bound, within its rate): up to 64 signatures each, which a self-made account must not get for free.
"""

from __future__ import annotations

from dataclasses import dataclass

from google.protobuf.message import DecodeError

from potluck.attestations import AttesterClaim, open_attestation
from potluck.errors import VerificationError
from potluck.identity import account_id_of
from potluck.proto.report_pb2 import ContributionReport
from potluck.proto.wire import MAX_ATTESTATIONS_PER_REPORT, MAX_REPORT_BYTES
from potluck.signing import PURPOSE_REPORT, parse_envelope, verify_envelope
from potluck.tracker.intake.rejected import Rejected


@dataclass(frozen=True)
class Attestations:
    """What a report's attestations say: the claims whose signatures hold, and how many did not verify.

    Whether each claim is true (the peer bound to the account that signed for it) is for the tracker
    to say (`potluck.tracker.verifier.check_attestations`), which holds the bindings. One that does not
    verify names nobody who signed it: it is ignored, counted, and held against no one.
    """

    claims: tuple[AttesterClaim, ...] = ()
    unreadable: int = 0


@dataclass(frozen=True)
class OpenedReport:
    """A report whose signature holds, with its groupmates' attestations read."""

    report: ContributionReport
    attestations: Attestations = Attestations()  # read after admission (`Submissions`)


def attestation_bytes(report: ContributionReport) -> list[bytes]:
    """A report's attestations as the workers read them."""
    return [envelope.SerializeToString(deterministic=True) for envelope in report.averaging.attestations]


def read_attestations(attestations: list[bytes], origin: str) -> Attestations:
    """Each groupmate's attestation whose signature holds, and how many did not."""
    claims, unreadable = [], 0
    for data in attestations:
        try:
            claims.append(open_attestation(data, origin))
        except Exception:  # any malformed attestation attests nothing
            unreadable += 1
    return Attestations(claims=tuple(claims), unreadable=unreadable)


@dataclass(frozen=True)
class ReportOpener:
    """What a report is opened against: the swarm's origin and manifest."""

    origin: str
    manifest_id: bytes

    def open(self, envelope: bytes) -> ContributionReport:
        """The report a signed envelope carries, if it is well formed and signed by the account it names."""
        origin = self.origin
        if len(envelope) > MAX_REPORT_BYTES:
            raise Rejected("INVALID_ARGUMENT", f"report of {len(envelope)} bytes exceeds {MAX_REPORT_BYTES}")
        try:
            sealed = parse_envelope(envelope)
        except VerificationError as e:
            raise Rejected("INVALID_ARGUMENT", str(e)) from None
        if sealed.purpose != PURPOSE_REPORT:
            raise Rejected("INVALID_ARGUMENT", f"expected purpose {PURPOSE_REPORT!r}, got {sealed.purpose!r}")
        if sealed.origin != origin:
            raise Rejected("FAILED_PRECONDITION", f"report for another swarm: expected origin {origin!r}, "
                                                  f"got {sealed.origin!r}")
        # Decoded before its signature is checked: every refusal that costs no signature comes first.
        try:
            report = ContributionReport.FromString(sealed.payload)
        except DecodeError:
            raise Rejected("INVALID_ARGUMENT", "expected a ContributionReport, got undecodable bytes") from None
        if len(report.averaging.attestations) > MAX_ATTESTATIONS_PER_REPORT:  # honest nodes keep at most so many
            raise Rejected("INVALID_ARGUMENT", f"report carries {len(report.averaging.attestations)} attestations, "
                                               f"more than {MAX_ATTESTATIONS_PER_REPORT}")
        try:
            opened = verify_envelope(sealed, purpose=PURPOSE_REPORT, origin=origin)
        except VerificationError as e:
            raise Rejected("UNAUTHENTICATED", str(e)) from None
        if report.origin != origin:
            raise Rejected("FAILED_PRECONDITION", f"report for another swarm: expected origin {origin!r}, "
                                                  f"got {report.origin!r}")
        if report.manifest_id != self.manifest_id:
            raise Rejected("FAILED_PRECONDITION", f"report for manifest {report.manifest_id.hex()[:16]}…, this swarm "
                                                  f"runs {self.manifest_id.hex()[:16]}…",
                           temporary=True)  # the lead may start the report's manifest again
        signer = account_id_of(opened.signer)
        if report.account_id != signer:
            raise Rejected("UNAUTHENTICATED", f"report claims account {report.account_id[:12]} but is signed by "
                                              f"{signer[:12]}")
        return report

    def open_all(self, envelopes: list[bytes]) -> list[OpenedReport | Rejected]:
        """Each report opened (its attestations not yet read), or why not (in a worker; they travel back pickled)."""
        opened: list[OpenedReport | Rejected] = []
        for envelope in envelopes:
            try:
                opened.append(OpenedReport(self.open(envelope)))
            except Rejected as r:
                opened.append(r)
            except Exception as e:  # bytes that trip a library: this report's problem, not its batch's
                opened.append(Rejected("INVALID_ARGUMENT", f"unreadable report ({type(e).__name__}: {e})"))
        return opened

    def read_all(self, reports: list[list[bytes]]) -> list[Attestations]:
        """Each admitted report's attestations read (in a worker)."""
        return [read_attestations(attestations, self.origin) for attestations in reports]
