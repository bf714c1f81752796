"""TLS for our own HTTPS clients (SmartCommunicator, the notification webhook): the verifying context we
build, and telling a certificate that does not verify from other transport failures."""

from __future__ import annotations

import ssl


def ssl_context(ca_bundle: str) -> ssl.SSLContext:
    """A verifying TLS context from `ca_bundle` (a PEM path), or from the system store when it is empty.

    Built explicitly rather than left to libraries, which would let REQUESTS_CA_BUNDLE and friends override
    it; one context per client, since contexts are not safe to share across threads
    (docs/spec/graph-and-msal.md).
    """
    return ssl.create_default_context(cafile=ca_bundle) if ca_bundle else ssl.create_default_context()


def admin_trust_context(ca_file: str = "") -> ssl.SSLContext:
    """The TLS trust for talking to a syncd admin listener (a standby forwarding to its leader, `syncd
    resync`): the system's trust store, plus the certificates in `ca_file` (`admin.tls_cert_path`: replicas
    sharing one certificate, or one CA's chain, trust each other; any of its certificates is a trust
    anchor)."""
    context = ssl_context("")
    if ca_file:
        context.load_verify_locations(cafile=ca_file)
        context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    return context


def is_tls_verification_failure(exc: BaseException) -> bool:
    """Whether `exc`, or an exception it was raised from, is a certificate that did not verify (a
    configuration error: retrying cannot help)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, ssl.SSLCertVerificationError):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False
