"""The Graph emulator's app registrations and permissions: the default app and its credentials, the
application roles each Graph endpoint takes, the access tokens issued, and the checks the token endpoint
makes on client secrets (HTTP Basic too), scopes and certificate-signed client assertions.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from urllib.parse import unquote

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

from syncd.emulators.common import b64url_decode

DEFAULT_TENANT_ID = "8c0a6f64-0e7d-4b1e-9a55-4d0c8bb6a1f0"
DEFAULT_CLIENT_ID = "3f6b1d2e-5a4c-4e7b-9c1d-2b8f0a6e4d31"
DEFAULT_CLIENT_SECRET = "emulator-client-secret"  # noqa: S105 - the emulator's test credential, not a secret
GRAPH_ROLES = ("GroupMember.Read.All", "User.Read.All")
"""The application permissions syncd needs by default: group members and users."""
TEAMS_NUMBER_ROLE = "TeamsTelephoneNumber.Read.All"
"""The least privileged application permission that lists Teams telephone number assignments."""
DEFAULT_APP_ROLES = (*GRAPH_ROLES, TEAMS_NUMBER_ROLE)
"""The roles the default app registration (and `register_app` unless told otherwise) is granted."""

JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ARM_RESOURCE = "https://management.azure.com"
"""Another resource the tenant has (Azure Resource Manager): Entra issues app tokens for it too (without
Graph's roles), and Graph refuses them (their audience is not Graph)."""

# Graph's documented application permissions per endpoint (least to most privileged).
_MEMBER_ROLES = frozenset(
    {
        "GroupMember.Read.All",
        "Group.Read.All",
        "GroupMember.ReadWrite.All",
        "Group.ReadWrite.All",
        "Directory.Read.All",
        "Directory.ReadWrite.All",
    }
)
_USER_ROLES = frozenset(
    {"User.Read.All", "User.ReadWrite.All", "Directory.Read.All", "Directory.ReadWrite.All"}
)
_HIDDEN_MEMBERS_ROLE = "Member.Read.Hidden"
# A user's memberOf is a relationship of the user: readable with a user or a membership permission (Graph
# documents Directory.Read.All as least privileged for apps; GroupMember.Read.All and User.Read.All work).
# Without a group permission the groups come back with limited information (id and @odata.type only).
_MEMBER_OF_ROLES = _MEMBER_ROLES | _USER_ROLES
_NUMBER_ROLES = frozenset({TEAMS_NUMBER_ROLE, "TeamsTelephoneNumber.ReadWrite.All"})


@dataclass(frozen=True)
class _Certificate:
    public_key: RSAPublicKey
    sha1: bytes
    sha256: bytes


@dataclass(frozen=True)
class _App:
    client_id: str
    secret: str | None
    certificate: _Certificate | None
    roles: frozenset[str]
    service_principal_id: str
    display_name: str


@dataclass
class _Token:
    client_id: str
    roles: frozenset[str]
    audience: str
    """The resource the token was issued for (its "aud"), as the emulator knows it."""
    expires_at: float
    revoked: bool = False


def _basic_credentials(authorization: str | None) -> tuple[str | None, str | None]:
    """client_secret_basic: (client_id, secret) from an HTTP Basic header, else (None, None)."""
    if authorization is None:
        return None, None
    scheme, _, encoded = authorization.partition(" ")
    if scheme.lower() != "basic":
        return None, None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        return None, None
    client_id, sep, secret = decoded.partition(":")
    if not sep:
        return None, None
    return unquote(client_id.replace("+", " ")), unquote(secret.replace("+", " "))


_INVALID_SCOPE = (
    "The provided value for the input parameter 'scope' is not valid. The scope {scope} is not valid."
)
_DEFAULT_SUFFIX = "/.default"


def _scope_error(scope: str) -> tuple[int, str] | None:
    """Client credentials take exactly one scope: a resource's identifier + "/.default"."""
    scopes = scope.split()
    if len(scopes) != 1:
        return (70011, _INVALID_SCOPE.format(scope=scope))
    only = scopes[0]
    if not only.lower().endswith(_DEFAULT_SUFFIX) or len(only) == len(_DEFAULT_SUFFIX):
        return (
            1002012,
            f"The provided value for scope {only} is not valid. Client credential flows must have a scope "
            "value with /.default suffixed to the resource identifier (application ID URI).",
        )
    return None


def _scope_resource(scope: str) -> str:
    """The resource a valid scope (see `_scope_error`) names."""
    return scope.strip()[: -len(_DEFAULT_SUFFIX)]


def _same_resource(a: str, b: str) -> bool:
    """Resource identifiers compare without case and without a trailing slash, as Entra matches them."""
    return a.rstrip("/").lower() == b.rstrip("/").lower()


def _token_audiences(origin: str, tenant: str, tenant_id: str) -> list[str]:
    """The token endpoint URLs a client assertion may name as its audience (v2 and v1, tenant as sent)."""
    audiences: list[str] = []
    for name in dict.fromkeys((tenant, tenant_id)):
        audiences += [f"{origin}/{name}/oauth2/v2.0/token", f"{origin}/{name}/oauth2/token"]
    return audiences


def _load_certificate(pem: bytes) -> _Certificate:
    try:
        certificate = x509.load_pem_x509_certificate(pem)
    except ValueError as exc:
        raise ValueError(f"certificate_pem is not a PEM certificate: {exc}") from exc
    public_key = certificate.public_key()
    if not isinstance(public_key, RSAPublicKey):
        raise ValueError(
            "Entra accepts only RSA certificates for app credentials (msal signs RS256/PS256); "
            "trustme issues ECDSA by default: use key_type=trustme.KeyType.RSA"
        )
    return _Certificate(
        public_key=public_key,
        sha1=certificate.fingerprint(hashes.SHA1()),  # noqa: S303 - x5t is a SHA-1 thumbprint by definition
        sha256=certificate.fingerprint(hashes.SHA256()),
    )


def _thumbprint(value: object) -> bytes | None:
    if not isinstance(value, str):
        return None
    try:
        return b64url_decode(value.rstrip("="))
    except (binascii.Error, ValueError):
        return None


def _assertion_problem(app: _App, assertion: str, audiences: list[str]) -> str | None:
    """Why a client assertion is refused (AADSTS700027-style text), or None if it proves the app."""
    certificate = app.certificate
    try:
        header = jwt.get_unverified_header(assertion)
    except jwt.PyJWTError:
        hint = ""
        if assertion.startswith(("b'", 'b"')):
            # What msal's bytes assertion becomes in a form encoded with str() (httpx does that).
            hint = " It looks like a Python bytes literal: the client form-encoded bytes with str()."
        return (
            "Client assertion failed signature validation. "
            f"[Reason - The assertion is not a well-formed JWT.{hint}]"
        )
    algorithm = header.get("alg")
    if algorithm not in ("RS256", "PS256"):
        return (
            f"Client assertion failed signature validation. [Reason - Unsupported algorithm '{algorithm}'.]"
        )
    sha256 = _thumbprint(header.get("x5t#S256"))
    sha1 = _thumbprint(header.get("x5t"))
    if sha256 is None and sha1 is None:
        return (
            "Client assertion failed signature validation. [Reason - The assertion names no certificate: "
            "its header has neither 'x5t' nor 'x5t#S256'.]"
        )
    used = (sha256 or sha1 or b"").hex().upper()
    if (
        certificate is None
        or (sha256 is not None and sha256 != certificate.sha256)
        or (sha1 is not None and sha1 != certificate.sha1)
    ):
        return (
            "Client assertion contains an invalid signature. [Reason - The key was not found., Thumbprint of "
            f"key used by client: '{used}', Please visit the Azure Portal, Graph Explorer or directly use MS "
            f"Graph to see configured keys for app Id '{app.client_id}'.]"
        )
    try:
        claims = jwt.decode(
            assertion,
            certificate.public_key,
            algorithms=[algorithm],
            audience=audiences,
            issuer=app.client_id,
            options={"require": ["exp", "aud", "iss", "sub"]},
        )
    except jwt.ExpiredSignatureError:
        return "Client assertion is not within its valid time range. [Reason - The assertion has expired.]"
    except jwt.ImmatureSignatureError:
        return (
            "Client assertion is not within its valid time range. [Reason - The assertion is not yet valid.]"
        )
    except jwt.InvalidAudienceError:
        return (
            "The audience claim ('aud') of the client assertion is invalid: it must be the token endpoint, "
            f"'{audiences[0]}'."
        )
    except jwt.InvalidIssuerError:
        return "The issuer claim ('iss') of the client assertion must be the application's client ID."
    except jwt.InvalidSignatureError:
        return (
            "Client assertion contains an invalid signature. [Reason - The provided signature value did not "
            f"match the expected signature value., Thumbprint of key used by client: '{used}']"
        )
    except jwt.PyJWTError as exc:
        return f"Client assertion failed validation. [Reason - {exc}]"
    if claims.get("sub") != app.client_id:
        return "The subject claim ('sub') of the client assertion must be the application's client ID."
    return None
