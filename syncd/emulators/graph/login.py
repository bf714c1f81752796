"""Entra login in the Graph emulator: OpenID discovery, the v2.0 token endpoint for client credentials
(a client secret or a certificate-signed client assertion) with Entra's AADSTS errors, and the HS256 access
tokens it issues and Graph checks (signature, expiry, revocation, audience).

Login and Graph are different hosts, as `login.microsoftonline.com` and `graph.microsoft.com` are: a token is
issued for the resource its scope names (`<resource>/.default`), which must be Graph's
(`GraphEmulator.graph_resource`, the origin Graph is served at) or another resource the tenant knows
(`ARM_RESOURCE`); Graph accepts only tokens whose audience is Graph.
"""

from __future__ import annotations

import hmac
import math
import secrets
import time
from urllib.parse import urlsplit

from syncd.emulators.common import b64url, encode_json, sign_hs256, verify_hs256
from syncd.emulators.graph.credentials import (
    ARM_RESOURCE,
    JWT_BEARER,
    _App,
    _assertion_problem,
    _basic_credentials,
    _same_resource,
    _scope_error,
    _scope_resource,
    _Token,
    _token_audiences,
)
from syncd.emulators.graph.state import _DirectoryState
from syncd.emulators.graph.wire import (
    _ENTRA_JSON,
    _entra_error,
    _form,
    _graph_error,
    _Incoming,
    _Rejected,
    _Reply,
)

_TOKEN_MESSAGE = "Access token has expired or is not yet valid."  # noqa: S105 - an error message


class _Login(_DirectoryState):
    """The Entra endpoints, and the access tokens they issue for Graph."""

    # Set by `GraphEmulator.__init__`, declared here so that this mixin type-checks on its own.
    tenant_id: str
    graph_resource: str | None
    _key: bytes

    def _known_resource(self, requested: str) -> str | None:
        """The resource a scope names as this tenant knows it (Graph or `ARM_RESOURCE`), else None."""
        for resource in (self.graph_resource, ARM_RESOURCE):
            if resource is not None and _same_resource(requested, resource):
                return resource.rstrip("/")
        return None

    def _is_graph_resource(self, resource: str) -> bool:
        return self.graph_resource is not None and _same_resource(resource, self.graph_resource)

    # --- access tokens ----------------------------------------------------------------------------------

    def _issue_token(self, app: _App, resource: str, *, certificate: bool) -> dict[str, object]:
        now = time.time()
        lifetime = self.token_lifetime_s
        # exp rounds up, so a client renewing ahead of `exp` never sees a 401 for a fractional lifetime.
        expires = math.ceil(now + lifetime)
        jti = b64url(secrets.token_bytes(16))
        issuer = f"https://sts.windows.net/{self.tenant_id}/"
        # Graph's application roles are for Graph: a token for another resource carries none of them.
        roles = app.roles if self._is_graph_resource(resource) else frozenset()
        payload: dict[str, object] = {
            "aud": resource,
            "iss": issuer,
            "iat": int(now),
            "nbf": int(now),
            "exp": expires,
            "app_displayname": app.display_name,
            "appid": app.client_id,
            "appidacr": "2" if certificate else "1",
            "idp": issuer,
            "idtyp": "app",
            "oid": app.service_principal_id,
            "sub": app.service_principal_id,
            "tid": self.tenant_id,
            "uti": jti,
            "ver": "1.0",
            "jti": jti,
        }
        if roles:  # Entra leaves the claim out when no role is granted
            payload["roles"] = sorted(roles)
        self._tokens[jti] = _Token(app.client_id, roles, resource, float(expires))
        expires_in = max(1, int(lifetime))
        return {
            "token_type": "Bearer",
            "expires_in": expires_in,
            "ext_expires_in": expires_in,
            "access_token": sign_hs256(self._key, payload),
        }

    def _token_id(self, authorization: str | None) -> str | None:
        """The jti of a bearer token this emulator signed (whatever its expiry), else None."""
        if authorization is None:
            return None
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        payload = verify_hs256(self._key, token.strip())
        if payload is None:
            return None
        jti = payload.get("jti")
        return jti if isinstance(jti, str) and jti in self._tokens else None

    def _authenticate(self, incoming: _Incoming) -> _Token:
        """The valid token presented, or _Rejected with Graph's 401."""
        jti = self._token_id(incoming.authorization)
        token = self._tokens.get(jti) if jti is not None else None
        message = _TOKEN_MESSAGE
        if token is not None and not token.revoked and time.time() < token.expires_at:
            if self._is_graph_resource(token.audience):
                return token
            message = "Access token validation failure. Invalid audience."
        challenge = (
            'Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/oauth2/authorize", '
            'client_id="00000003-0000-0000-c000-000000000000"'
        )
        raise _Rejected(
            _graph_error(
                incoming, 401, "InvalidAuthenticationToken", message, (("www-authenticate", challenge),)
            )
        )

    # --- Entra login ------------------------------------------------------------------------------------

    def _handle_login(self, incoming: _Incoming) -> _Reply:
        segments = incoming.path.strip("/").split("/")
        tenant = segments[0]
        rest = [s.lower() for s in segments[1:]]
        if rest == ["oauth2", "v2.0", "token"]:
            return self._token_endpoint(incoming, tenant)
        if rest not in (
            ["v2.0", ".well-known", "openid-configuration"],
            [".well-known", "openid-configuration"],
            ["discovery", "v2.0", "keys"],
            ["discovery", "keys"],
        ):
            return _Reply(
                404,
                encode_json({"error": "not_found", "error_description": "Not Found"}),
                content_type=_ENTRA_JSON,
            )
        if incoming.method != "GET":
            return _entra_error(
                incoming, 400, "invalid_request", 900561, "The endpoint only accepts GET requests."
            )
        if tenant.lower() != self.tenant_id.lower():
            return self._unknown_tenant(incoming, tenant)
        if rest[0] == "discovery":
            # Graph tokens here are HS256 with a private key: there is no public key to publish.
            return _Reply(200, encode_json({"keys": []}), content_type=_ENTRA_JSON)
        return _Reply(
            200,
            encode_json(self._openid_configuration(incoming, v2=rest[0] == "v2.0")),
            content_type=_ENTRA_JSON,
        )

    def _unknown_tenant(self, incoming: _Incoming, tenant: str) -> _Reply:
        return _entra_error(
            incoming,
            400,
            "invalid_tenant",
            90002,
            f"Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing "
            "into the correct cloud. Check with your subscription administrator, this may happen if there "
            "are no active subscriptions for the tenant.",
        )

    def _openid_configuration(self, incoming: _Incoming, *, v2: bool) -> dict[str, object]:
        base = f"{incoming.origin}/{self.tenant_id}"
        oauth = f"{base}/oauth2/v2.0" if v2 else f"{base}/oauth2"
        issuer = f"{base}/v2.0" if v2 else f"https://sts.windows.net/{self.tenant_id}/"
        host = urlsplit(self.graph_resource).netloc if self.graph_resource else "graph.microsoft.com"
        return {
            "token_endpoint": f"{oauth}/token",
            "token_endpoint_auth_methods_supported": [
                "client_secret_post",
                "private_key_jwt",
                "client_secret_basic",
            ],
            "jwks_uri": f"{base}/discovery/v2.0/keys" if v2 else f"{base}/discovery/keys",
            "response_modes_supported": ["query", "fragment", "form_post"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "issuer": issuer,
            "request_uri_parameter_supported": False,
            "userinfo_endpoint": f"{incoming.origin}/oidc/userinfo",
            "authorization_endpoint": f"{oauth}/authorize",
            "device_authorization_endpoint": f"{oauth}/devicecode",
            "http_logout_supported": True,
            "frontchannel_logout_supported": True,
            "end_session_endpoint": f"{oauth}/logout",
            "claims_supported": [
                "sub",
                "iss",
                "cloud_instance_name",
                "cloud_instance_host_name",
                "cloud_graph_host_name",
                "msgraph_host",
                "aud",
                "exp",
                "iat",
                "auth_time",
                "acr",
                "nonce",
                "preferred_username",
                "name",
                "tid",
                "ver",
                "at_hash",
                "c_hash",
                "email",
            ],
            "kerberos_endpoint": f"{base}/kerberos",
            "tenant_region_scope": "NA",
            "cloud_instance_name": "microsoftonline.com",
            "cloud_graph_host_name": "graph.windows.net",
            "msgraph_host": host,
            "rbac_url": "https://pas.windows.net",
        }

    def _token_endpoint(self, incoming: _Incoming, tenant: str) -> _Reply:
        if incoming.method != "POST":
            return _entra_error(
                incoming,
                400,
                "invalid_request",
                900561,
                f"The endpoint only accepts POST, OPTIONS requests. Received a {incoming.method} request.",
            )
        if tenant.lower() != self.tenant_id.lower():
            return self._unknown_tenant(incoming, tenant)
        pairs = _form(incoming.body)
        names = [name for name, _ in pairs]
        for name in names:
            if names.count(name) > 1:
                return _entra_error(
                    incoming,
                    400,
                    "invalid_request",
                    9000411,
                    f"The request is not properly formatted. The parameter '{name}' is duplicated.",
                )
        form = dict(pairs)
        basic_id, basic_secret = _basic_credentials(incoming.authorization)

        def missing(name: str) -> _Reply:
            return _entra_error(
                incoming,
                400,
                "invalid_request",
                900144,
                f"The request body must contain the following parameter: '{name}'.",
            )

        grant_type = form.get("grant_type")
        if not grant_type:
            return missing("grant_type")
        if grant_type != "client_credentials":
            return _entra_error(
                incoming,
                400,
                "unsupported_grant_type",
                70003,
                f"The app requested an unsupported grant type '{grant_type}'.",
            )
        client_id = form.get("client_id") or basic_id
        if not client_id:
            return missing("client_id")
        app = self._apps.get(client_id.lower())
        if app is None:
            return _entra_error(
                incoming,
                400,
                "unauthorized_client",
                700016,
                f"Application with identifier '{client_id}' was not found in the directory "
                f"'{self.tenant_id}'. This can happen if the application has not been installed by the "
                "administrator of the tenant or consented to by any user in the tenant. You may have sent "
                "your authentication request to the wrong tenant.",
            )
        scope = form.get("scope")
        if not scope:
            return missing("scope")
        scope_error = _scope_error(scope)
        if scope_error is not None:
            code, message = scope_error
            return _entra_error(incoming, 400, "invalid_scope", code, message)
        requested = _scope_resource(scope)
        resource = self._known_resource(requested)
        if resource is None:
            return _entra_error(
                incoming,
                400,
                "invalid_resource",
                500011,
                f"The resource principal named {requested} was not found in the tenant named "
                f"{self.tenant_id}. This can happen if the application has not been installed by the "
                "administrator of the tenant or consented to by any user in the tenant. You might have sent "
                "your authentication request to the wrong tenant.",
            )

        secret = form.get("client_secret", basic_secret)
        assertion_type = form.get("client_assertion_type")
        assertion = form.get("client_assertion")
        if secret is not None and (assertion is not None or assertion_type is not None):
            return _entra_error(
                incoming,
                401,
                "invalid_client",
                7000218,
                "Send either 'client_assertion' or 'client_secret', not both.",
            )
        if assertion is not None or assertion_type is not None:
            if assertion_type != JWT_BEARER:
                return _entra_error(
                    incoming,
                    401,
                    "invalid_client",
                    700027,
                    f"Client assertion type '{assertion_type}' is not supported; use '{JWT_BEARER}'.",
                )
            if not assertion:
                return missing("client_assertion")
            audiences = _token_audiences(incoming.origin, tenant, self.tenant_id)
            problem = _assertion_problem(app, assertion, audiences)
            if problem is not None:
                return _entra_error(incoming, 401, "invalid_client", 700027, problem)
            body = self._issue_token(app, resource, certificate=True)
        elif secret is not None:
            # Always compared, in constant time, as a real service should.
            ok = app.secret is not None and hmac.compare_digest(secret.encode(), app.secret.encode())
            if not ok:
                return _entra_error(
                    incoming,
                    401,
                    "invalid_client",
                    7000215,
                    "Invalid client secret provided. Ensure the secret being sent in the request is the "
                    "client secret value, not the client secret ID, for a secret added to app "
                    f"'{app.client_id}'.",
                )
            body = self._issue_token(app, resource, certificate=False)
        else:
            return _entra_error(
                incoming,
                401,
                "invalid_client",
                7000218,
                "The request body must contain the following parameter: 'client_assertion' or "
                "'client_secret'.",
            )
        return _Reply(
            200,
            encode_json(body),
            (("cache-control", "no-store, no-cache"), ("pragma", "no-cache")),
            content_type=_ENTRA_JSON,
        )
