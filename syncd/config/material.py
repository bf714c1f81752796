"""Checks of TLS material when the configuration loads: CA bundles, the Graph app's certificate and its key,
the admin listener's certificate chain and key.

Each check opens the file the way its user later will (`ssl` for CA bundles and the listener, `cryptography`
as msal does for the app's credential), so a bad file is a configuration error naming its key rather than a
traceback at the first request. Messages name the file and what is wrong with it; never key material, never
a passphrase, and never the text of a library's exception that could quote either.

`cryptography` is imported by the checks that open a certificate or a key, when such a key is given: a
configuration without one (or a command that only reads the database) does without it.
"""

from __future__ import annotations

import re
import ssl
from pathlib import Path

from syncd.config.fields import existing_file

__all__ = ["app_certificate", "app_certificate_password", "ca_bundle", "server_certificate", "server_key"]

PFX_SUFFIXES = (".pfx", ".p12")
"""File name endings of a PKCS#12 credential; any other `graph.certificate_path` is read as PEM."""

_ONE_PEM = "put the app's certificate and its private key in one PEM file"
_SSL_NOISE = re.compile(r"^\[[^\]]*\]\s*|\s*\(_ssl\.c:\d+\)$")
# DER encodes a PKCS#12 file as one SEQUENCE: anything else cannot be one, whatever its passphrase.
_DER_SEQUENCE = b"\x30"


def _read(path: str) -> bytes:
    existing_file(path)
    try:
        return Path(path).read_bytes()
    except OSError as error:
        raise ValueError(f"cannot read {path}: {error.strerror or type(error).__name__}") from None


def _ssl_reason(error: ssl.SSLError) -> str:
    """Pure: OpenSSL's reason without its library tag and source line ("no certificate or crl found")."""
    text = str(error.args[1]) if len(error.args) > 1 else str(error)
    reason = _SSL_NOISE.sub("", text).strip()
    return "a block that does not parse" if reason in ("PEM lib", "") else reason


def ca_bundle(path: str) -> str:
    """`path` when it is empty (the system's trust store) or a PEM file of CA certificates that
    `ssl.create_default_context(cafile=...)` loads, as our clients will; else ValueError."""
    if not path:
        return path
    _read(path)
    try:
        ssl.create_default_context(cafile=path)
    except ssl.SSLError as error:
        raise ValueError(f"not a PEM file of CA certificates ({_ssl_reason(error)} in {path})") from None
    except OSError as error:
        raise ValueError(f"cannot read {path}: {error.strerror or type(error).__name__}") from None
    return path


def _key_state(data: bytes) -> str:
    """Pure: "plain" for an unencrypted PEM private key that loads, "encrypted" for one that needs a
    passphrase, "none" when there is no private key that loads."""
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives import serialization

    try:
        serialization.load_pem_private_key(data, password=None)
    except TypeError:  # "Password was not given but private key is encrypted"
        return "encrypted"
    except (ValueError, UnsupportedAlgorithm):
        return "none"
    return "plain"


def app_certificate(path: str) -> str:
    """`graph.certificate_path`: `path` when it is empty, a PEM file with a certificate and a private key
    (opened by `app_certificate_password` when the key is encrypted), or a .pfx/.p12 file that can be PKCS#12
    (opened with the passphrase by `app_certificate_password`); else ValueError."""
    if not path:
        return path
    data = _read(path)
    if Path(path).suffix.lower() in PFX_SUFFIXES:
        if not data.startswith(_DER_SEQUENCE):
            raise ValueError(f"{path} is not a PKCS#12 (.pfx/.p12) file")
        return path
    from cryptography import x509

    try:
        x509.load_pem_x509_certificate(data)
    except ValueError:
        raise ValueError(f"no PEM certificate in {path}: {_ONE_PEM}") from None
    if _key_state(data) == "none":
        raise ValueError(f"no private key that loads in {path}: {_ONE_PEM}")
    return path


def app_certificate_password(path: str, password: str) -> None:
    """`graph.certificate_password` (`password`, "" for none) against the credential at `path`, which
    `app_certificate` accepted: None when msal will open it with that passphrase, else ValueError."""
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.serialization import pkcs12

    data = _read(path)
    passphrase = password.encode("utf-8") if password else None
    if Path(path).suffix.lower() in PFX_SUFFIXES:
        try:
            key, certificate, _ = pkcs12.load_key_and_certificates(data, passphrase)
        except (ValueError, UnsupportedAlgorithm):
            if passphrase is None:
                raise ValueError(
                    f"missing: {path} does not open without a passphrase; set certificate_password "
                    "(or certificate_password_file)"
                ) from None
            raise ValueError(f"does not open {path} (a wrong passphrase, or not a PKCS#12 file)") from None
        if key is None or certificate is None:
            missing = "private key" if key is None else "certificate"
            raise ValueError(f"{path} opens but holds no {missing}: certificate_path must hold both")
        return
    state = _key_state(data)
    if passphrase is None:
        if state == "encrypted":
            raise ValueError(
                f"missing: the key in {path} is encrypted; set certificate_password "
                "(or certificate_password_file)"
            )
        return
    if state == "plain":
        raise ValueError(f"the key in {path} is not encrypted: remove certificate_password")
    try:
        serialization.load_pem_private_key(data, password=passphrase)
    except (TypeError, ValueError, UnsupportedAlgorithm):
        raise ValueError(f"does not open the key in {path}") from None


def server_certificate(path: str) -> str:
    """`admin.tls_cert_path`: `path` when it is empty or a PEM file of one or more certificates (the
    listener's, then its chain); else ValueError."""
    if not path:
        return path
    from cryptography import x509

    data = _read(path)
    try:
        x509.load_pem_x509_certificates(data)
    except ValueError:
        raise ValueError(f"no PEM certificate in {path}") from None
    return path


def server_key(path: str, certificate: str) -> str:
    """`admin.tls_key_path`: `path` when it is empty or an unencrypted PEM private key that
    `ssl.SSLContext.load_cert_chain` takes with the certificate (chain) at `certificate` (when that is
    given and was accepted); else ValueError."""
    if not path:
        return path
    state = _key_state(_read(path))
    if state == "encrypted":
        # ssl would prompt on a terminal for the passphrase, or fail without one.
        raise ValueError(
            f"the key in {path} is encrypted: syncd needs it unencrypted (make the file readable by syncd "
            "only instead)"
        )
    if state == "none":
        raise ValueError(f"no PEM private key in {path}")
    if certificate:
        try:
            ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(certificate, path)
        except ssl.SSLError:
            raise ValueError(f"is not the private key of the certificate in {certificate}") from None
        except OSError as error:
            raise ValueError(f"cannot read {path}: {error.strerror or type(error).__name__}") from None
    return path
