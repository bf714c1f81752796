"""The fixes `syncd check` prints, each one sentence an admin can act on, and the Microsoft Graph facts they
rest on: which application permissions grant what syncd reads (docs/spec/graph-and-msal.md, "Permissions").

Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable

MEMBER_READ = "GroupMember.Read.All"
"""The least privileged application permission that lists a group's members (and reads the group)."""
USER_READ = "User.Read.All"
"""The least privileged application permission that reads the users' properties."""
HIDDEN_MEMBERS = "Member.Read.Hidden"
"""Needed on top of MEMBER_READ for groups whose membership is hidden."""
TEAMS_READ = "TeamsTelephoneNumber.Read.All"
"""The least privileged application permission that lists the Teams number assignments."""

GRANTS_MEMBERS = frozenset(
    {
        MEMBER_READ,
        "Group.Read.All",
        "GroupMember.ReadWrite.All",
        "Group.ReadWrite.All",
        "Directory.Read.All",
        "Directory.ReadWrite.All",
    }
)
"""Every application permission that lets an app list group members."""
GRANTS_USERS = frozenset({USER_READ, "User.ReadWrite.All", "Directory.Read.All", "Directory.ReadWrite.All"})
"""Every application permission that lets an app read users' properties."""
GRANTS_TEAMS = frozenset({TEAMS_READ, "TeamsTelephoneNumber.ReadWrite.All"})
"""Every application permission that lets an app list the Teams number assignments."""


def missing_permissions(roles: Collection[str], *, uses_teams: bool) -> list[str]:
    """Pure: the least privileged permissions syncd needs that `roles` (an access token's app roles) grant
    nothing equivalent to, in the order they matter."""
    needed = [(MEMBER_READ, GRANTS_MEMBERS), (USER_READ, GRANTS_USERS)]
    if uses_teams:
        needed.append((TEAMS_READ, GRANTS_TEAMS))
    return [name for name, granted_by in needed if not granted_by & set(roles)]


def grant(permissions: Iterable[str], *, otherwise: str = "") -> str:
    """Pure: the sentence telling an admin to grant application permissions with admin consent."""
    names = list(permissions)
    plural = "s" if len(names) > 1 else ""
    sentence = (
        "in Entra admin center > App registrations > (syncd's app) > API permissions, add the Microsoft "
        f"Graph application permission{plural} {' and '.join(names)} and select Grant admin consent"
    )
    return sentence + (f", {otherwise}" if otherwise else "")


def set_key(key: str, what: str) -> str:
    """Pure: the sentence telling an admin which key to set, and to what."""
    return f"set {key} to {what}"


ENTRA_FIXES = {
    "graph.tenant_id": set_key(
        "graph.tenant_id", "the Directory (tenant) ID shown on Entra admin center > Overview"
    ),
    "graph.client_id": set_key(
        "graph.client_id",
        "the Application (client) ID of syncd's app registration, registered in the tenant graph.tenant_id",
    ),
    "graph.client_secret / graph.certificate_path": (
        "set graph.client_secret (or client_secret_file) to the secret's Value, not its Secret ID, or make a "
        "new one under the app registration's Certificates & secrets; with graph.certificate_path, upload "
        "that certificate there"
    ),
    "graph.base_url": set_key(
        "graph.base_url", "the Graph endpoint of the tenant's cloud (https://graph.microsoft.com/v1.0)"
    ),
    "graph.authority_host": (
        "check graph.authority_host (https://login.microsoftonline.com, or your cloud's login host), the "
        "network path to it (proxy, firewall) and graph.ca_bundle"
    ),
}
"""The fix for each setting an Entra login error points at (`syncd.graph.auth`)."""

GRAPH_UNREACHABLE = (
    "check graph.base_url, the network path to it (proxy, firewall) and graph.ca_bundle, then run the check "
    "again"
)

SMARTCOMM_CREDENTIALS = (
    "set smartcomm.username and smartcomm.password (or password_file) to the API user's, and make sure that "
    "user has API access in the IntelePeer Customer Portal"
)
SMARTCOMM_CUSTOMER = set_key(
    "smartcomm.customer_id",
    "the customer ID these credentials belong to (Customer Portal: Enterprise Settings > SFTP Settings)",
)
SMARTCOMM_UNREACHABLE = (
    "check smartcomm.base_url, the network path to it (proxy, firewall) and smartcomm.ca_bundle, then run "
    "the check again"
)

DATABASE_UNREACHABLE = (
    "check database.url (host, port, database, user and password) and that the server accepts connections "
    "from this host"
)
DATABASE_NEWER = "upgrade syncd to the version that wrote this database (or point database.url at another)"
DATABASE_BEHIND = "run `syncd db upgrade` (every syncd command that writes migrates it at start, too)"
DATABASE_READ_ONLY = (
    "give syncd's user write access to the database (the SQLite file and its folder, or INSERT and CREATE on "
    "the PostgreSQL schema), or point database.url at one it may write"
)

ADMIN_BEARER_FIX = (
    "set admin.token_file (or admin.token) to a random value of at least 32 characters, e.g. from "
    "`openssl rand -hex 32`, to use syncd resync and the status page"
)
ADMIN_PORT_FIX = "stop what listens there, or set admin.listen to a free host:port (e.g. 127.0.0.1:8081)"


def config_fix(key: str) -> str:
    """Pure: the fix for a configuration error about `key` ("" for the whole file)."""
    if not key:
        return "correct the config file, or the path that --config or SYNCD_CONFIG gives, as the message says"
    section, _, name = key.partition(".")
    if not name:
        return f"correct the section [{section}] as the message says"
    env = f"SYNCD_{section.upper()}__{name.upper()}"
    return f"correct {key} as the message says (in the config file's [{section}] section, or {env})"
