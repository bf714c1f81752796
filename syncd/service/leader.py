"""Leader election for `syncd run` replicas: who may run cycles, and where the one that does is.

SQLite: one daemon per database file, held by an flock (`daemon.instance_lock`); it is always the leader.

PostgreSQL: any number of replicas start. The one that holds a session advisory lock on a dedicated
autocommit connection is the leader and runs cycles; the others are standbys that try for the lock every
`leader_takeover/3` (at least MIN_POLL_S). The connection carries TCP keepalives on both ends (libpq's
`keepalives*` for our socket, the session's `tcp_keepalives_*` for the server's), sized from leader_takeover,
so the server ends a vanished leader's session, releasing the lock, about 2/3 of leader_takeover after the
host went away; a process that dies (even `kill -9`) closes its socket and releases the lock at once. The
leader checks its lock (on that connection) before each cycle and every poll period; when the check fails
or takes longer than a poll period, it steps down: the daemon cancels its cycle and schedule and becomes a
standby again. The lock is never held by two sessions, so two leaders never both pass their check.

The leader writes where it is to the kv table (key LEADER_KEY: host, pid, admin_url, since, heartbeat_at)
when it takes over and every poll period, so standbys can forward `POST /resync` to it and say where it is.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import os
import socket
import ssl
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

import httpx
import psycopg
import structlog
from sqlalchemy.engine import make_url

from syncd.config.settings import Settings
from syncd.config.tls import admin_trust_context
from syncd.store import Store, StoreError
from syncd.store.schema import LEADER_KEY, lock_key

log = structlog.get_logger("syncd.daemon")

MIN_POLL_S = 1.0
"""The shortest period between lock attempts and checks (seconds), whatever leader_takeover says."""

FORWARD_CONNECT_TIMEOUT_S = 2.0
"""How long a standby waits to connect to the leader's admin API when forwarding (seconds)."""

FORWARD_TIMEOUT_S = 5.0
"""How long a standby waits for the leader's answer to a forwarded resync without `?wait` (seconds)."""

FORWARD_WAIT_TIMEOUT_S = 3600.0
"""... and with `?wait`, which lasts as long as the leader's cycle (seconds)."""

FORWARDED_HEADER = "X-Syncd-Forwarded-By"
"""Marks a forwarded request: a replica never forwards one again (no loops on a stale kv entry)."""


class NotLeader(Exception):
    """This replica is a standby (or stopped leading): it runs no cycles."""


def poll_period_s(takeover_s: float) -> float:
    """Pure: how often a standby tries for the lock and a leader checks it and heartbeats (seconds)."""
    return max(MIN_POLL_S, takeover_s / 3)


def keepalive_settings(takeover_s: float) -> dict[str, int]:
    """Pure: TCP keepalive parameters (whole seconds, at least 1) for the lock connection, so that a peer
    gone silent is declared dead after idle + interval * count, about 2/3 of leader_takeover."""
    idle = max(1, int(takeover_s / 3))
    interval = max(1, int(takeover_s / 9))
    return {"idle": idle, "interval": interval, "count": 3}


def advertised_admin_url(host: str, port: int, hostname: str, *, tls: bool = False) -> str:
    """Pure: the admin API's URL as other replicas reach it: `http://<host>:<port>` from admin.listen
    (`https://` when the listener has TLS), with this machine's `hostname` for a wildcard address (0.0.0.0,
    ::, empty)."""
    if host in {"", "0.0.0.0", "::"}:  # noqa: S104 - naming, not binding
        host = hostname
    scheme = "https" if tls else "http"
    return f"{scheme}://[{host}]:{port}" if ":" in host else f"{scheme}://{host}:{port}"


class ForwardRefused(Exception):
    """A standby will not send the admin bearer to where the leader says it is; the message says why."""


def forward_refusal(url: str) -> str | None:
    """Pure: why a standby must not send the admin bearer to the leader's `admin_url`, or None when it may:
    over https, or over plain http only to a loopback address (127.0.0.0/8, ::1, localhost), where the token
    never crosses a network. A name is not resolved: only its spelling counts."""
    parts = urlsplit(url)
    host = (parts.hostname or "").rstrip(".")
    if parts.scheme == "https" and host:
        return None
    if parts.scheme == "http" and host:
        if host == "localhost":
            return None
        with contextlib.suppress(ValueError):
            if ipaddress.ip_address(host).is_loopback:
                return None
        return (
            f"not forwarded: the leader's admin API ({url}) is plain http to another host, which would send "
            "the admin token in clear; give the replicas TLS (admin.tls_cert_path, admin.tls_key_path) or "
            "send the request to the leader itself"
        )
    return f"not forwarded: the leader's admin_url ({url[:200]}) is not an http(s) URL"


# The bigint form of the lock shows in pg_locks as classid (high 32 bits), objid (low 32 bits), objsubid 1.
_HELD_SQL = (
    "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid() "
    "AND granted AND objsubid = 1 AND classid::bigint = %s AND objid::bigint = %s)"
)


class Leadership:
    """Whether this replica leads, and where the leader is. This base class is the SQLite case: the flock
    (held by the daemon) makes it the only daemon, so it leads from start to stop."""

    def __init__(self, settings: Settings, store: Store) -> None:
        self.settings = settings
        self.store = store
        self.poll_s = poll_period_s(settings.sync.leader_takeover_s)
        self.is_leader = False
        self.identity: dict[str, Any] = {
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "admin_url": advertised_admin_url(
                settings.admin.host, settings.admin.port, socket.gethostname(), tls=settings.admin.tls
            ),
            "since": None,
        }

    @property
    def takeover_delay_s(self) -> float:
        """How long a new leader waits before its first cycle (0 where no other leader can exist)."""
        return 0.0

    @property
    def role(self) -> str:
        """ "leader" or "standby"."""
        return "leader" if self.is_leader else "standby"

    async def run(
        self,
        stop: asyncio.Event,
        on_acquired: Callable[[], Awaitable[None]],
        on_lost: Callable[[], Awaitable[None]],
    ) -> None:
        """Lead until `stop` is set (calling `on_acquired` once)."""
        self.is_leader = True
        self.identity["since"] = time.time()
        log.info("daemon.leader_acquired", **self.identity)
        await on_acquired()
        await stop.wait()

    async def confirm(self) -> bool:
        """Whether this replica still leads (asked before each cycle)."""
        return self.is_leader

    async def leader(self) -> dict[str, Any] | None:
        """Where the leader is: this replica's identity when it leads, else the last the leader wrote."""
        if self.is_leader:
            return dict(self.identity)
        try:
            value = await asyncio.to_thread(self.store.get_value, LEADER_KEY)
        except StoreError:
            return None
        try:
            document = json.loads(value) if value else None
        except ValueError:
            return None
        return document if isinstance(document, dict) else None

    async def close(self) -> None:
        """Give the leadership up (after the last cycle drained)."""
        self.is_leader = False


class PostgresLeadership(Leadership):
    """The advisory lock on a dedicated connection with keepalives, polled by standbys."""

    def __init__(self, settings: Settings, store: Store) -> None:
        super().__init__(settings, store)
        self._connection: psycopg.AsyncConnection[Any] | None = None
        self._key: int | None = None
        self._lost = asyncio.Event()

    @property
    def takeover_delay_s(self) -> float:
        return 2 * self.poll_s

    async def _connect(self) -> psycopg.AsyncConnection[Any]:
        engine = self.store.engine
        _, params = engine.dialect.create_connect_args(make_url(self.settings.database.url))
        params.pop("context", None)
        # Ours win over the same options in database.url (passing both would be a TypeError).
        for option in ("keepalives", "keepalives_idle", "keepalives_interval", "keepalives_count"):
            params.pop(option, None)
        params.pop("tcp_user_timeout", None)
        keepalive = keepalive_settings(self.settings.sync.leader_takeover_s)
        params.setdefault("connect_timeout", max(2, int(self.poll_s)))
        user_timeout_ms = int(self.settings.sync.leader_takeover_s * 1000 * 2 / 3)
        connection = await psycopg.AsyncConnection.connect(
            **params,
            autocommit=True,  # never "idle in transaction": timeouts would drop the lock with the session
            keepalives=1,
            keepalives_idle=keepalive["idle"],
            keepalives_interval=keepalive["interval"],
            keepalives_count=keepalive["count"],
            tcp_user_timeout=user_timeout_ms,  # unacknowledged sends count as silence too
        )
        # The server's end of the socket: it ends the session of a host that vanished (releasing the lock).
        # Per session, so a database-wide default does not matter; idle timeouts must never drop the lock.
        try:
            for name, value in (
                ("tcp_keepalives_idle", keepalive["idle"]),
                ("tcp_keepalives_interval", keepalive["interval"]),
                ("tcp_keepalives_count", keepalive["count"]),
                ("tcp_user_timeout", user_timeout_ms),
                ("idle_session_timeout", 0),
                ("idle_in_transaction_session_timeout", 0),
            ):
                try:
                    await connection.execute("SELECT set_config(%s, %s, false)", [name, str(value)])
                except psycopg.errors.UndefinedObject:  # an older server lacks it (autocommit: no harm)
                    log.warning("daemon.lock_setting_unsupported", setting=name)
            if self._key is None:
                row = await (await connection.execute("SELECT current_schema()")).fetchone()
                self._key = lock_key(str(row[0]) if row and row[0] else "public")
        except BaseException:
            await connection.close()
            raise
        return connection

    async def _close_connection(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(connection.close(), timeout=self.poll_s)

    async def _try_acquire(self) -> bool:
        try:
            if self._connection is None or self._connection.closed:
                self._connection = await asyncio.wait_for(self._connect(), timeout=self.poll_s * 2)
            cursor = await asyncio.wait_for(
                self._connection.execute("SELECT pg_try_advisory_lock(%s)", [self._key]), timeout=self.poll_s
            )
            row = await cursor.fetchone()
            return bool(row and row[0])
        except Exception as exc:  # whatever it is, this replica stands by and tries again next period
            log.warning("daemon.lock_unavailable", error=f"{type(exc).__name__}: {exc}"[:300])
            await self._close_connection()
            return False

    async def confirm(self) -> bool:
        if not self.is_leader:
            return False
        connection = self._connection
        try:
            if connection is None or self._key is None:
                raise psycopg.OperationalError("no lock connection")
            held = connection.execute(_HELD_SQL, [self._key >> 32, self._key & 0xFFFFFFFF])
            cursor = await asyncio.wait_for(held, timeout=self.poll_s)
            row = await cursor.fetchone()
            if row and row[0]:
                return True
            reason = "the lock is no longer held by this session"
        except (psycopg.Error, OSError, TimeoutError) as exc:
            reason = f"{type(exc).__name__}: {exc}"[:300] or type(exc).__name__
        self.is_leader = False
        self._lost.set()
        log.error("daemon.leadership_lost", reason=reason, pid=os.getpid())
        await self._close_connection()
        return False

    async def _heartbeat(self) -> None:
        self.identity["heartbeat_at"] = time.time()
        try:
            # Bounded: a database that stopped answering must not hold up the lock checks.
            await asyncio.wait_for(
                asyncio.to_thread(self.store.set_value, LEADER_KEY, json.dumps(self.identity)), self.poll_s
            )
        except (StoreError, TimeoutError) as exc:  # the lock check decides leadership; a miss only ages it
            log.warning("daemon.heartbeat_failed", error=str(exc) or type(exc).__name__)

    async def run(
        self,
        stop: asyncio.Event,
        on_acquired: Callable[[], Awaitable[None]],
        on_lost: Callable[[], Awaitable[None]],
    ) -> None:
        """Stand by, lead, step down, ... until `stop` is set; returns still holding a lock it has (close()
        releases it after the daemon drained its cycle)."""
        announced = False
        while not stop.is_set():
            if self._lost.is_set():  # found by a check here or before a cycle: the daemon stands down first
                self._lost.clear()
                announced = False
                await on_lost()
            if not self.is_leader:
                if await self._try_acquire():
                    self.is_leader = True
                    self.identity["since"] = time.time()
                    await self._heartbeat()
                    log.info("daemon.leader_acquired", **self.identity)
                    try:
                        await on_acquired()
                    except Exception:  # cannot lead (the database away?): give the lock to another replica
                        log.exception("daemon.lead_failed")
                        self.is_leader = False
                        await self._close_connection()
                        await on_lost()
                elif not announced:
                    announced = True
                    log.info("daemon.standby", pid=os.getpid(), leader=await self.leader())
            elif await self.confirm():
                await self._heartbeat()
            else:
                continue
            waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self._lost.wait())]
            try:
                await asyncio.wait(waiters, timeout=self.poll_s, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiter in waiters:
                    waiter.cancel()

    async def close(self) -> None:
        if self.is_leader and self._connection is not None and self._key is not None:
            with contextlib.suppress(Exception):  # a dead connection has released the lock anyway
                await asyncio.wait_for(
                    self._connection.execute("SELECT pg_advisory_unlock(%s)", [self._key]),
                    timeout=self.poll_s,
                )
        self.is_leader = False
        await self._close_connection()


def leadership_for(settings: Settings, store: Store) -> Leadership:
    """The leadership of a daemon on this database: elected on PostgreSQL, sole on SQLite."""
    if make_url(settings.database.url).get_backend_name() == "postgresql":
        return PostgresLeadership(settings, store)
    return Leadership(settings, store)


async def forward_resync(
    leader: dict[str, Any] | None,
    *,
    own_url: str,
    authorization: str,
    body: bytes,
    wait: str | None,
    stale_after_s: float = 30.0,
    ca_file: str = "",
) -> tuple[int, dict[str, Any]] | None:
    """A standby's `POST /resync`, sent on to the leader's admin API with the same bearer, body and
    `?wait`: (status, the leader's JSON with "forwarded_to"), or None when the leader cannot be asked.

    Raises ForwardRefused, sending nothing, when the leader's URL is plain http to a host that is not
    loopback (`forward_refusal`). https is verified against the system's trust store plus `ca_file`
    (`syncd.config.tls.admin_trust_context`)."""
    url = leader.get("admin_url") if leader else None
    if not isinstance(url, str) or not url.startswith(("http://", "https://")) or url == own_url:
        return None
    refusal = forward_refusal(url)
    if refusal is not None:
        log.warning("daemon.forward_refused", leader=url[:200], reason=refusal)
        raise ForwardRefused(refusal)
    # A leader that stopped beating may be gone and its address reused: never send the bearer there.
    beat = leader.get("heartbeat_at") if leader else None
    if not isinstance(beat, int | float) or time.time() - beat > stale_after_s:
        log.warning("daemon.forward_skipped", leader=url, reason="the leader's heartbeat is stale")
        return None
    read_s = FORWARD_WAIT_TIMEOUT_S if wait is not None else FORWARD_TIMEOUT_S
    try:
        verify: ssl.SSLContext | bool = admin_trust_context(ca_file) if url.startswith("https://") else True
        async with httpx.AsyncClient(
            timeout=httpx.Timeout(read_s, connect=FORWARD_CONNECT_TIMEOUT_S), trust_env=False, verify=verify
        ) as client:
            response = await client.post(
                f"{url.rstrip('/')}/resync",
                content=body,
                params={"wait": wait} if wait is not None else None,
                headers={
                    "Authorization": authorization,
                    "Content-Type": "application/json",
                    FORWARDED_HEADER: own_url,
                },
            )
        document = response.json()
    except (httpx.HTTPError, ValueError, OSError) as exc:  # OSError: the trust file, TLS
        log.warning("daemon.forward_failed", leader=url, error=f"{type(exc).__name__}: {exc}"[:300])
        return None
    if response.status_code == 503 and isinstance(document, dict) and "leader" in document:
        return None  # it is a standby too (it stepped down): say where the leader was instead
    if not isinstance(document, dict):
        document = {"answer": document}
    document["forwarded_to"] = url
    return response.status_code, document


__all__ = [
    "ForwardRefused",
    "Leadership",
    "NotLeader",
    "PostgresLeadership",
    "advertised_admin_url",
    "forward_refusal",
    "forward_resync",
    "keepalive_settings",
    "leadership_for",
    "poll_period_s",
]
