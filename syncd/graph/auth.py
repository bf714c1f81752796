"""Entra app-only tokens for Graph: one long-lived msal ConfidentialClientApplication, behind kiota's
`AccessTokenProvider` so msgraph-sdk asks us for tokens.

msal is synchronous, so it runs in a worker thread (one at a time: its own cache answers repeated calls
without a request). It gets its own httpx.Client with its own TLS context built from `ca_bundle`: msal's
`verify=` is silently overridden by REQUESTS_CA_BUNDLE, and TLS contexts must not be shared across threads
(docs/spec/graph-and-msal.md). The authority is used as configured (`instance_discovery=False`), which is what
lets sovereign clouds and the emulator work by configuration alone.

On the public and sovereign clouds (KNOWN_LOGIN_HOSTS) the tenant's OpenID configuration follows one fixed
pattern, so msal's discovery request is answered here from that pattern (`known_openid_configuration`) and a
one-shot `syncd sync` sends one login request instead of two. A custom `authority_host` keeps msal's
discovery. An unknown tenant is then reported by the token request instead of the discovery.
"""

from __future__ import annotations

import asyncio
import ssl
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpcore  # noqa: F401  (see below)
import httpx
import msal
import structlog
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from kiota_abstractions.authentication import AccessTokenProvider, AllowedHostsValidator

from syncd.config.settings import GraphSettings
from syncd.graph.errors import GraphCredentialError, GraphUnavailable, shorten

log = structlog.get_logger("syncd.graph")

# httpcore is the transport of the httpx.Client msal sends through, and httpx imports it only when such a
# client is built, which is inside the first cycle (some 0.1 s of CPU): imported with this module instead,
# so a command imports it before it runs a cycle, and the collector freezes it with the other modules
# (syncd.cycle.collector).

_PEM_KEY_MARKERS = (
    b"-----BEGIN PRIVATE KEY-----",
    b"-----BEGIN RSA PRIVATE KEY-----",
    b"-----BEGIN ENCRYPTED PRIVATE KEY-----",
    b"-----BEGIN EC PRIVATE KEY-----",
)


KNOWN_LOGIN_HOSTS = frozenset(
    {
        "login.microsoftonline.com",  # the public cloud
        "login.microsoftonline.us",  # US Government (GCC High, DoD)
        "login.chinacloudapi.cn",  # operated by 21Vianet
        "login.partner.microsoftonline.cn",  # the same, its newer name
    }
)
"""Entra login hosts whose tenants' OpenID configuration syncd knows without asking."""

_DISCOVERY_SUFFIX = "/v2.0/.well-known/openid-configuration"


def known_openid_configuration(url: str) -> dict[str, str] | None:
    """Pure: the OpenID configuration msal's tenant discovery would fetch from `url`, when `url` is that
    document of a tenant on a known cloud (https, no port, one path segment for the tenant); else None."""
    parts = urlsplit(url)
    if parts.scheme != "https" or parts.port is not None or parts.query or parts.fragment:
        return None
    host = (parts.hostname or "").lower()
    if host not in KNOWN_LOGIN_HOSTS or not parts.path.endswith(_DISCOVERY_SUFFIX):
        return None
    tenant = parts.path[1 : -len(_DISCOVERY_SUFFIX)]
    if not tenant or "/" in tenant:
        return None
    base = f"https://{host}/{tenant}"
    return {
        "issuer": f"{base}/v2.0",
        "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
        "token_endpoint": f"{base}/oauth2/v2.0/token",
        "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
    }


class _MsalHttpClient(httpx.Client):
    """The httpx client msal sends its requests through.

    msal passes a certificate's client assertion as bytes inside its form dict, and httpx would encode
    bytes values as their repr ("b'eyJ...'"), which Entra rejects: decode them first. msal's tenant
    discovery on a known cloud is answered without a request (`known_openid_configuration`).
    """

    def get(self, url: Any, *args: Any, **kwargs: Any) -> httpx.Response:
        known = known_openid_configuration(str(url))
        if known is not None:
            return httpx.Response(200, json=known, request=httpx.Request("GET", str(url)))
        return super().get(url, *args, **kwargs)

    def post(self, *args: Any, **kwargs: Any) -> httpx.Response:
        data = kwargs.get("data")
        if isinstance(data, dict):
            kwargs["data"] = {k: v.decode("ascii") if isinstance(v, bytes) else v for k, v in data.items()}
        return super().post(*args, **kwargs)


def client_credential(settings: GraphSettings) -> str | dict[str, Any]:
    """msal's `client_credential` for the configured secret or certificate (reads the certificate file).

    A PEM file must hold the private key and its certificate; msal then signs assertions with PS256 and the
    certificate's SHA-256 thumbprint. A .pfx/.p12 file is handed to msal as a path.
    """
    if settings.client_secret is not None and settings.client_secret.get_secret_value():
        return settings.client_secret.get_secret_value()
    path = Path(settings.certificate_path)
    passphrase = settings.certificate_password.get_secret_value() if settings.certificate_password else None
    if path.suffix.lower() in {".pfx", ".p12"}:
        credential: dict[str, Any] = {"private_key_pfx_path": str(path)}
    else:
        try:
            pem = path.read_bytes()
            certificate = x509.load_pem_x509_certificate(pem)
        except (OSError, ValueError) as exc:
            raise GraphCredentialError(
                f"cannot read a PEM certificate from {path}: {exc}", setting="graph.certificate_path"
            ) from exc
        if not any(marker in pem for marker in _PEM_KEY_MARKERS):
            raise GraphCredentialError(
                f"{path} holds no private key; put the key and the certificate in one PEM file",
                setting="graph.certificate_path",
            )
        credential = {
            "private_key": pem.decode("ascii"),
            "public_certificate": certificate.public_bytes(serialization.Encoding.PEM).decode("ascii"),
        }
    if passphrase:
        credential["passphrase"] = passphrase
    return credential


def _setting_for(error: str, description: str) -> str:
    """Pure: which configuration key an Entra token error points at."""
    if error == "invalid_tenant" or "AADSTS90002" in description:
        return "graph.tenant_id"
    if error == "unauthorized_client" or "AADSTS700016" in description:
        return "graph.client_id"
    if error in ("invalid_scope", "invalid_resource") or "AADSTS500011" in description:
        # The scope is Graph's origin (from base_url) + "/.default": an unknown resource means base_url does
        # not name Graph (a login host or another service given as base_url, say).
        return "graph.base_url"
    if error == "invalid_client":
        return "graph.client_secret / graph.certificate_path"
    return "graph.tenant_id / graph.client_id and the credential"


TOKEN_LEFT_S = 300.0
"""msal hands out a cached token while more than this is left of it (5 minutes), and so does
`MsalTokenProvider.token` without asking msal."""


class MsalTokenProvider(AccessTokenProvider):
    """App-only Graph tokens from msal, handed only to the configured Graph host over https.

    msal runs in a worker thread, and every Graph request asks for a token. While the token msal last gave
    has more than TOKEN_LEFT_S left, by msal's own measure (`expires_in`, against the wall clock as msal
    counts it), it is handed out again without the thread hop: under a busy event loop (a page of new
    users being mapped) that hop waited for the interpreter lock, and the request for the next page went
    out only once the mapping was done. `invalidate` forgets it with msal's cache.
    """

    def __init__(self, settings: GraphSettings, *, transport: httpx.BaseTransport | None = None) -> None:
        """`transport` replaces the network for msal's login requests (tests: an in-process emulator)."""
        self._settings = settings
        self._authority = f"{settings.authority_host}/{settings.tenant_id}"
        self._scopes = [f"{settings.graph_origin}/.default"]
        graph_host = urlsplit(settings.base_url).hostname or ""
        self._allowed = AllowedHostsValidator([graph_host])
        self._credential = client_credential(settings)
        context = ssl.create_default_context(cafile=settings.ca_bundle or None)
        self._http = _MsalHttpClient(
            verify=context,
            trust_env=False,
            transport=transport,
            timeout=httpx.Timeout(settings.timeout_s, connect=settings.connect_timeout_s),
        )
        self._app: msal.ConfidentialClientApplication | None = None
        self._held: tuple[str, float] | None = None
        """msal's last token and the epoch second until which `token` hands it out itself."""
        # A thread lock, taken in the worker thread: the provider may outlive one event loop (an engine
        # keeps it across cycles), and an asyncio.Lock is bound to the loop that first waited on it.
        self._lock = threading.Lock()

    async def get_authorization_token(
        self,
        uri: str,
        additional_authentication_context: dict[str, Any] = {},  # noqa: B006 (kiota's signature)
    ) -> str:
        """kiota's hook: a token for `uri`, or "" (no Authorization header) for a host we do not trust."""
        parts = urlsplit(uri)
        if not self._allowed.is_url_host_valid(uri):
            return ""
        if parts.scheme != "https":
            raise GraphCredentialError(f"refusing to send a Graph token over {parts.scheme}://")
        return await self.token()

    def get_allowed_hosts_validator(self) -> AllowedHostsValidator:
        """kiota's hook: the hosts that may receive our token (the Graph host only)."""
        return self._allowed

    async def token(self) -> str:
        """An access token: the one msal last gave while it has more than TOKEN_LEFT_S left, else msal's
        (from its cache when still valid)."""
        held = self._held
        if held is not None and time.time() < held[1]:
            return held[0]
        return await asyncio.to_thread(self._acquire_locked)

    async def invalidate(self) -> None:
        """Drop cached access tokens (after Graph rejected one), so the next call fetches a new one."""
        self._held = None
        await asyncio.to_thread(self._invalidate_locked)

    def _acquire_locked(self) -> str:
        with self._lock:
            return self._acquire()

    def _invalidate_locked(self) -> None:
        with self._lock:
            self._held = None  # again, under the lock: a token fetched meanwhile is the rejected one
            app = self._app
            if app is None:
                return
            cache = app.token_cache
            # A list first: removing entries while the search iterates the cache would fail.
            for token in list(cache.search(msal.TokenCache.CredentialType.ACCESS_TOKEN)):
                cache.remove_at(token)

    def close(self) -> None:
        """Close msal's HTTP connections."""
        self._http.close()

    def _acquire(self) -> str:
        try:
            app = self._app or self._build()
            result = app.acquire_token_for_client(scopes=self._scopes)
        except GraphCredentialError:
            raise
        except (httpx.HTTPError, ValueError) as exc:
            # ValueError: msal could not read the login endpoint's answer (not JSON, e.g. a proxy's page).
            host = self._settings.authority_host
            raise GraphUnavailable(
                f"cannot reach the Entra login endpoint {host}: {type(exc).__name__}",
                setting="graph.authority_host",
            ) from exc
        answer: dict[str, Any] = result if isinstance(result, dict) else {}
        token = answer.get("access_token")
        if isinstance(token, str) and token:
            left = answer.get("expires_in")  # seconds left, from msal's cache too
            if isinstance(left, int | float) and not isinstance(left, bool) and left > TOKEN_LEFT_S:
                self._held = (token, time.time() + left - TOKEN_LEFT_S)
            else:
                self._held = None
            return token
        error = str(answer.get("error", ""))
        description = str(answer.get("error_description", ""))
        # Entra's first line names the AADSTS code and the problem; the rest is trace and correlation IDs.
        reason = description.splitlines()[0] if description else "no reason given"
        raise GraphCredentialError(
            f"Entra refused a token: {shorten(reason)}",
            code=error,
            setting=_setting_for(error, description),
        )

    def _build(self) -> msal.ConfidentialClientApplication:
        # The constructor fetches the authority's openid-configuration, so it runs here, in the worker
        # thread, on first use rather than at start-up.
        try:
            self._app = msal.ConfidentialClientApplication(
                self._settings.client_id,
                client_credential=self._credential,
                authority=self._authority,
                instance_discovery=False,
                http_client=self._http,
            )
        except ValueError as exc:
            # msal says ValueError when the authority's discovery document cannot be had (unknown tenant,
            # wrong host) or the credential cannot be used (bad key, wrong passphrase).
            raise GraphCredentialError(
                f"msal could not set up the app for {self._authority}: {shorten(str(exc))}",
                setting="graph.authority_host / graph.tenant_id / the credential",
            ) from exc
        return self._app
