"""The local checks of `syncd check`: the database (reachable, its schema revision, writable) and the admin
listener (its port free, its token set). Blocking (run in a thread); nothing is left behind: the database is
opened read-only but for one write that is rolled back, a database file that does not exist yet is not
created, and the port is bound and closed at once.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Any

import httpx

from syncd.config.service import MIN_TOKEN_LENGTH, AdminSettings
from syncd.config.show import hide_url_password
from syncd.config.tls import admin_trust_context
from syncd.service.check.fixes import (
    ADMIN_BEARER_FIX,
    ADMIN_PORT_FIX,
    DATABASE_BEHIND,
    DATABASE_NEWER,
    DATABASE_READ_ONLY,
    DATABASE_UNREACHABLE,
)
from syncd.service.check.model import Check, fail, ok, skip, warn
from syncd.service.daemon import AdminBindError, bind_admin
from syncd.store import Store, StoreError, UnusableDatabase
from syncd.store.schema import SchemaState

_REACHABLE = ("database", "database")
_SCHEMA = ("database_schema", "database schema")
_WRITABLE = ("database_writable", "database writable")
_LISTEN = ("admin_listen", "admin listener")
_ADMIN_TOKEN = ("admin_token", "admin token")

_HEALTH_TIMEOUT_S = 3.0


def database_checks(url: str) -> list[Check]:
    """Whether the database answers, is at this syncd's schema revision, and takes writes."""
    shown = hide_url_password(url)
    try:
        store = Store(url, read_only=True)
    except UnusableDatabase as exc:  # e.g. an SQLite folder that does not exist
        fix = "set database.url to a database in an existing folder (only the default data/ is created)"
        return [fail(*_REACHABLE, str(exc), fix), *_skipped("needs a reachable database")]
    except StoreError as exc:
        return [fail(*_REACHABLE, str(exc), DATABASE_UNREACHABLE), *_skipped("needs a reachable database")]
    with store:
        file = store.sqlite_file
        if file is not None and not file.exists():
            return _not_created_yet(file)
        try:
            state = store.schema_state()
        except StoreError as exc:
            return [
                fail(*_REACHABLE, str(exc), DATABASE_UNREACHABLE),
                *_skipped("needs a reachable database"),
            ]
    checks = [ok(*_REACHABLE, f"{shown} answered", url=shown), schema_check(state)]
    try:
        with Store(url) as writer:
            writer.probe_write()
    except StoreError as exc:
        checks.append(fail(*_WRITABLE, str(exc), DATABASE_READ_ONLY))
    else:
        checks.append(ok(*_WRITABLE, "a table and a row were written and rolled back"))
    return checks


def _skipped(reason: str) -> list[Check]:
    return [skip(*_SCHEMA, reason), skip(*_WRITABLE, reason)]


def _not_created_yet(file: Path) -> list[Check]:
    """An SQLite database the first start will create: its folder (or the default one's parent) must be
    writable."""
    folder = file.parent
    checks = [
        ok(*_REACHABLE, f"{file} does not exist yet: the first sync creates it", url=f"sqlite:///{file}"),
        ok(*_SCHEMA, "none yet: the first start creates the tables", revision=None),
    ]
    existing = folder if folder.is_dir() else folder.parent
    if os.access(existing, os.W_OK | os.X_OK):
        made = "" if existing == folder else f" (it creates {folder} too)"
        checks.append(ok(*_WRITABLE, f"syncd may create files in {existing}{made}"))
    else:
        checks.append(fail(*_WRITABLE, f"syncd may not create files in {existing}", DATABASE_READ_ONLY))
    return checks


def schema_check(state: SchemaState) -> Check:
    """Pure: the schema check from where the database's schema stands."""
    data: dict[str, Any] = {"revision": list(state.revisions), "head": state.head}
    if state.newer:
        detail = (
            f"at revision {', '.join(state.newer)}, which a newer syncd wrote (this one's is {state.head})"
        )
        return fail(*_SCHEMA, detail, DATABASE_NEWER, **data)
    if not state.revisions and not state.tables:
        return ok(*_SCHEMA, f"empty: the first start creates the tables at revision {state.head}", **data)
    if state.revisions == (state.head,):
        return ok(*_SCHEMA, f"at revision {state.head}, this syncd's", **data)
    at = ", ".join(state.revisions) or "none"
    return warn(*_SCHEMA, f"at revision {at}, this syncd's is {state.head}", DATABASE_BEHIND, **data)


def admin_checks(admin: AdminSettings) -> list[Check]:
    """Whether the admin listener could listen where `admin.listen` says, and has a token."""
    return [_listen_check(admin), _token_check(admin)]


def _listen_check(admin: AdminSettings) -> Check:
    try:
        bind_admin(admin.host, admin.port).close()
    except AdminBindError as exc:
        in_use = isinstance(exc.__cause__, OSError) and exc.__cause__.errno == errno.EADDRINUSE
        if in_use and _syncd_answers(admin):
            return ok(*_LISTEN, f"{admin.listen} is in use by a running syncd (its /healthz answered)")
        return fail(*_LISTEN, str(exc), ADMIN_PORT_FIX, listen=admin.listen)
    detail = f"{admin.listen} is free"
    if admin.host not in ("127.0.0.1", "::1", "localhost") and not admin.tls:
        fix = "set admin.tls_cert_path and admin.tls_key_path, or listen on 127.0.0.1 behind a TLS proxy"
        return warn(
            *_LISTEN, f"{detail}; it serves every interface over plain http", fix, listen=admin.listen
        )
    return ok(*_LISTEN, detail, listen=admin.listen)


def _syncd_answers(admin: AdminSettings) -> bool:
    host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(admin.host, admin.host)  # noqa: S104 - not binding
    scheme = "https" if admin.tls else "http"
    url = (
        f"{scheme}://[{host}]:{admin.port}/healthz"
        if ":" in host
        else f"{scheme}://{host}:{admin.port}/healthz"
    )
    verify = admin_trust_context(admin.tls_cert_path) if admin.tls else True
    try:
        response = httpx.get(url, timeout=_HEALTH_TIMEOUT_S, trust_env=False, verify=verify)
        return response.status_code == 200 and response.json() == {"status": "ok"}
    except (httpx.HTTPError, ValueError, OSError):
        return False


def _token_check(admin: AdminSettings) -> Check:
    if admin.token is None:
        detail = "not set: /resync, /status and the status page refuse every request"
        return warn(*_ADMIN_TOKEN, detail, ADMIN_BEARER_FIX, length=0)
    length = len(admin.token.get_secret_value().strip())
    detail = f"set, {length} characters (at least {MIN_TOKEN_LENGTH})"
    return ok(*_ADMIN_TOKEN, detail, length=length)
