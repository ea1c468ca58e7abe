"""The tracker's TLS certificate: self-signed, made on first start, pinned by its SHA-256 fingerprint.

A volunteer cannot check a tracker's certificate against a CA (a lead's laptop has no domain name),
so the tracker makes its own and the lead publishes its fingerprint: signed into the manifest and
printed in the join line. A client first reads the certificate the server presents (`probe_certificate`),
refuses it unless it is the pinned one, then opens a gRPC channel that trusts exactly that certificate:
a man-in-the-middle would need the tracker's private key to complete that handshake.

The key and certificate live together in `<state_dir>/tls.pem`, created once (whoever starts first
wins: `create_secret_file` links a complete file into place or reads the one already there) and read
with the key-file rules (0600, owned by this user, no symlinks).
"""

from __future__ import annotations

import datetime
import hashlib
import re
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path

from potluck.errors import ConfigError, KeyFileError, TrackerUnreachable, VerificationError
from potluck.keyfile import create_secret_file, read_secret_file

__all__ = ["TLS_FILE", "TLS_NAME", "TrackerCertificate", "certificate_sha256", "load_or_create_certificate",
           "new_certificate", "parse_fingerprint", "probe_certificate"]

TLS_FILE = "tls.pem"
#: The name in every tracker certificate; clients ask for it (`grpc.ssl_target_name_override`) whatever
#: address they dial, since trust comes from the pinned fingerprint, not from a name.
TLS_NAME = "potluck-tracker"
VALID_DAYS = 100 * 365  # the pin is the trust; expiry would only break a running swarm
_FINGERPRINT = re.compile(r"(?:sha256:)?([0-9a-f]{64})")


@dataclass(frozen=True)
class TrackerCertificate:
    key_pem: bytes
    cert_pem: bytes

    @property
    def sha256(self) -> str:
        return certificate_sha256(self.cert_pem)


def certificate_sha256(cert_pem: bytes) -> str:
    """The fingerprint volunteers pin: lowercase hex SHA-256 of the certificate's DER bytes."""
    return hashlib.sha256(ssl.PEM_cert_to_DER_cert(cert_pem.decode("ascii"))).hexdigest()


def parse_fingerprint(text: str, what: str = "--tracker-cert") -> str:
    """`sha256:<64 hex>` (as printed) or the bare hex, as lowercase hex."""
    match = _FINGERPRINT.fullmatch(text.strip().lower())
    if match is None:
        raise ConfigError(f"{what}: expected a certificate fingerprint sha256:<64 hex digits>, got {text!r}")
    return match.group(1)


def load_or_create_certificate(state_dir: Path) -> TrackerCertificate:
    """The tracker's key and certificate from `state_dir/tls.pem`, made there on first use."""
    path = Path(state_dir) / TLS_FILE
    try:
        fresh = new_certificate()
        create_secret_file(path, fresh.key_pem + fresh.cert_pem)
    except OSError as exc:
        raise KeyFileError(f"{path}: cannot create the tracker's TLS certificate ({exc.strerror or exc})") from None
    text = read_secret_file(path).decode("ascii", errors="replace")
    key = re.search(r"-----BEGIN PRIVATE KEY-----.+?-----END PRIVATE KEY-----\n", text, re.S)
    cert = re.search(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----\n", text, re.S)
    if key is None or cert is None:
        raise KeyFileError(f"{path}: corrupt: expected a PEM private key and certificate")
    certificate = TrackerCertificate(key.group(0).encode(), cert.group(0).encode())
    try:
        certificate_sha256(certificate.cert_pem)
    except ValueError:
        raise KeyFileError(f"{path}: corrupt: the certificate is not valid PEM") from None
    return certificate


def new_certificate() -> TrackerCertificate:
    """A fresh key and self-signed certificate for `TLS_NAME` (kept only in memory)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, TLS_NAME)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=VALID_DAYS))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(TLS_NAME)]), critical=False)
            # Its own trust anchor: clients hand exactly this certificate to gRPC as the root.
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .sign(key, hashes.SHA256()))
    return TrackerCertificate(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()),
        cert.public_bytes(serialization.Encoding.PEM))


def probe_certificate(address: str, timeout: float, pinned: str | None = None) -> bytes:
    """The PEM certificate the server at HOST:PORT presents; with `pinned`, only if it is that one.

    Nothing is sent but a TLS handshake. Without a pin the certificate is unauthenticated: the
    caller must check what it learns over the channel by other means (signatures, the manifest).
    """
    host, port = address.rsplit(":", 1)
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE  # checked by fingerprint below
    context.set_alpn_protocols(["h2"])
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout) as raw, \
                context.wrap_socket(raw, server_hostname=TLS_NAME) as conn:
            der = conn.getpeercert(binary_form=True)
    except (OSError, ssl.SSLError) as exc:
        raise TrackerUnreachable(f"tracker {address} unreachable: no TLS handshake ({exc})", "UNAVAILABLE") from None
    if not der:
        raise TrackerUnreachable(f"tracker {address} unreachable: it presented no certificate", "UNAVAILABLE")
    seen = hashlib.sha256(der).hexdigest()
    if pinned is not None and seen != pinned:
        raise VerificationError(f"tracker {address} presented certificate sha256:{seen}, expected the pinned "
                                f"sha256:{pinned}; refusing it (another server, or a man-in-the-middle)")
    return ssl.DER_cert_to_PEM_cert(der).encode("ascii")
