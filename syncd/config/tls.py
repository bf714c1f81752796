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
