"""`syncd demo` and `syncd emulate`: the main job against the built-in emulators, with nothing to set up.

`syncd demo` (what `make demo` runs) starts the Entra + Graph and SmartCommunicator emulators in this process
over HTTPS on loopback (a throw-away CA and SQLite file in a temporary directory), fills Graph with a
realistic tenant, plants one number conflict, runs two cycles with changes to the groups between them, and
prints what each cycle did followed by the `syncd status` table.

`syncd emulate` serves the same emulators until SIGINT or SIGTERM and writes a complete syncd configuration
pointing at them, so `syncd sync` or `syncd run` can be tried from another terminal or container.

The emulators are test infrastructure: the CLI imports this module lazily, only for these two commands, so
no other command loads them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import signal
import sys
import tempfile
import threading
import traceback
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from pydantic import SecretStr

from syncd.config.logs import configure_logging
from syncd.config.settings import (
    DatabaseSettings,
    GraphSettings,
    LogSettings,
    Settings,
    SmartCommSettings,
    SyncSettings,
)
from syncd.core.limits import Limit
from syncd.core.model import TEAMS, DesiredState, Member
from syncd.cycle.engine import CycleResult, Engine
from syncd.emulators.graph import (
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    DEFAULT_TENANT_ID,
    GraphEmulator,
    GraphServers,
    serve_graph_https,
)
from syncd.emulators.server import RunningServer, TestCA, serve_https
from syncd.emulators.smartcomm import (
    DEFAULT_CUSTOMER_ID,
    DEFAULT_PASSWORD,
    DEFAULT_USERNAME,
    SmartCommEmulator,
)
from syncd.emulators.tenant import DOMAIN, BuiltTenant, TenantSpec, build_tenant
from syncd.graph.source import GraphSource
from syncd.reports.status import print_status
from syncd.reports.summary import describe_change
from syncd.store import Store

if TYPE_CHECKING:
    from starlette.types import ASGIApp

__all__ = ["DemoError", "demo_settings", "emulate", "emulate_config", "emulate_main", "run_demo"]

DEMO_USERS = 200
DEMO_SEED = 1
DEMO_TEAMS_SHARE = 0.5
CONFLICT_HOLDER_ID = "0f4e8c2a-6b1d-4c3e-9a7f-5d2b8e1c4a90"
"""Object ID of the agent that already holds one member's number (someone who left, never offboarded)."""

_NEW_HIRES = (("Maya", "Thompson"), ("Jamal", "Whitaker"), ("Sofia", "Lindqvist"))
_RENAMED_LAST_NAME = "Whitfield"
_FREE_NUMBER_PREFIX = "+1415555"  # 555-01xx: fictional numbers, but valid for phonenumbers
_WILDCARDS = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}  # noqa: S104 - mapped, not bound


class DemoError(Exception):
    """The demo could not show what it meant to: the message says what went wrong."""


# --- settings ---------------------------------------------------------------------------------------------


def demo_settings(
    graph: GraphServers, smartcomm: RunningServer, group_id: str, database_url: str
) -> Settings:
    """Settings for both emulators, with the values the end-to-end tests' `write_config` writes."""
    return Settings(
        database=DatabaseSettings(url=database_url),
        graph=GraphSettings(
            tenant_id=DEFAULT_TENANT_ID,
            client_id=DEFAULT_CLIENT_ID,
            client_secret=SecretStr(DEFAULT_CLIENT_SECRET),
            authority_host=graph.authority_host,
            base_url=graph.graph_url,
            group_ids=[group_id],
            ca_bundle=str(graph.ca_path),
            retry_delay_s=0,
            phone_source=["teams", "businessPhones", "mobilePhone"],
        ),
        smartcomm=SmartCommSettings(
            base_url=smartcomm.base_url,
            customer_id=DEFAULT_CUSTOMER_ID,
            username=DEFAULT_USERNAME,
            password=SecretStr(DEFAULT_PASSWORD),
            ca_bundle=str(smartcomm.ca_path),
            backoff_initial_s=0.05,
            backoff_max_s=0.2,
        ),
        sync=SyncSettings(max_offboard=Limit(count=10), concurrency=4),
        log=LogSettings(level="warning"),
    )


def emulate_config(
    *, login_url: str, graph_url: str, smartcomm_url: str, group_id: str, state_dir: Path, token_file: Path
) -> str:
    """Pure: the TOML text of a complete syncd configuration for the emulators `syncd emulate` serves."""

    def q(value: str) -> str:
        return json.dumps(value)  # a JSON string is a valid TOML basic string

    return f"""# Written by `syncd emulate`: syncd against the emulators it serves. The credentials below are
# the emulators' built-in test credentials; config/syncd.example.toml documents every key.

[database]
url = {q(f"sqlite:///{state_dir / 'syncd.db'}")}

[graph]
tenant_id = {q(DEFAULT_TENANT_ID)}
client_id = {q(DEFAULT_CLIENT_ID)}
client_secret = {q(DEFAULT_CLIENT_SECRET)}
authority_host = {q(login_url)}
base_url = {q(f"{graph_url}/v1.0")}
group_ids = [{q(group_id)}]
ca_bundle = {q(str(state_dir / "ca.pem"))}

[smartcomm]
base_url = {q(smartcomm_url)}
customer_id = {DEFAULT_CUSTOMER_ID}
username = {q(DEFAULT_USERNAME)}
password = {q(DEFAULT_PASSWORD)}
ca_bundle = {q(str(state_dir / "ca.pem"))}

[sync]
# Shorter than the defaults (15m, 24h), so `syncd run` shows something soon.
interval = "1m"
full_interval = "1h"
jitter = "5s"
max_offboard = 25
concurrency = 8

[admin]
listen = "127.0.0.1:8080"
token_file = {q(str(token_file))}

[log]
level = "info"
format = "auto"
"""


# --- syncd demo -------------------------------------------------------------------------------------------


@dataclass
class _Scenario:
    """The people the demo changes, chosen among the members in scope."""

    conflicted: Member
    removed: list[Member]
    renumbered: Member
    renamed: Member
    used_numbers: set[str] = field(default_factory=set)


def run_demo(*, debug: bool = False) -> int:
    """`syncd demo`: 0 when it ran through; 1 with a one-line reason (a traceback with `debug`) if not."""
    configure_logging(level="warning", json=None)  # stderr, so the story on stdout stays readable
    try:
        _demo()
    except KeyboardInterrupt:
        print("\nsyncd demo: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        sys.stdout.flush()
        if debug:
            traceback.print_exc()
        hint = "" if debug else " (`syncd demo --debug` shows the traceback)"
        reason = str(exc) if isinstance(exc, DemoError) else f"{type(exc).__name__}: {exc}"
        print(f"syncd demo: failed: {reason}{hint}", file=sys.stderr)
        return 1
    return 0


def _demo() -> None:
    graph, smartcomm = GraphEmulator(), SmartCommEmulator(registered_tenants=[DEFAULT_TENANT_ID])
    spec = TenantSpec(users=DEMO_USERS, seed=DEMO_SEED, teams_share=DEMO_TEAMS_SHARE)
    tenant = build_tenant(graph, spec, registry=smartcomm)
    with tempfile.TemporaryDirectory(prefix="syncd-demo-") as tmp:
        ca = TestCA(Path(tmp) / "ca")
        with (
            serve_graph_https(graph, ca=ca) as graph_server,
            serve_https(smartcomm.app, ca=ca) as smartcomm_server,
        ):
            settings = demo_settings(
                graph_server, smartcomm_server, tenant.top_group_id, f"sqlite:///{Path(tmp) / 'syncd.db'}"
            )
            print("syncd demo: both emulators run in this process, over HTTPS on loopback")
            print(f"  Entra ID login               {graph_server.authority_host}")
            print(f"  Microsoft Graph              {graph_server.base_url}")
            print(f"  SmartCommunicator            {smartcomm_server.base_url}")
            _print_tenant(tenant)

            scenario = _choose(tenant, asyncio.run(_read_desired(settings)))
            holder_number = scenario.conflicted.phone_number
            smartcomm.add_agent(
                user_object_id=CONFLICT_HOLDER_ID, tenant_id=DEFAULT_TENANT_ID, phone_number=holder_number
            )
            print(
                f"Planted conflict: SmartCommunicator already has an agent for object {CONFLICT_HOLDER_ID}"
                f"\n  holding {holder_number}, the number of {scenario.conflicted.upn}"
                f" ({scenario.conflicted.object_id})."
            )

            store = Store(settings.database.url)
            try:
                store.upgrade()
                _cycle("Cycle 1, the first sync", settings, store, smartcomm, scenario)
                print()
                print("Between the cycles, in Entra ID:")
                for line in _change_groups(graph, smartcomm, tenant, scenario):
                    print(f"  {line}")
                result = _cycle("Cycle 2, the next sync", settings, store, smartcomm, scenario)
                print(f"  changes   {len(result.changes)}, as planned and sent:")
                for change in result.changes:
                    print(f"    {describe_change(change)}")
                print()
                print("Status, as `syncd status` prints it:")
                sys.stdout.flush()
                print_status(store, as_json=False, runs=10)
            finally:
                store.close()


async def _read_desired(settings: Settings) -> DesiredState:
    """The members Graph reports, read once before the first cycle to choose whom the demo changes."""
    async with GraphSource(settings.require_graph()) as source:
        return await source.read()


def _print_tenant(tenant: BuiltTenant) -> None:
    print(
        f"Tenant: {len(tenant.user_ids)} users in the group {tenant.top_group_id}"
        f" and {len(tenant.nested_group_ids)} groups nested in it;"
        f"\n  {len(tenant.no_phone_user_ids)} without a phone, {len(tenant.bad_phone_user_ids)} with a bad"
        f" phone, {len(tenant.extension_user_ids)} with an extension, {len(tenant.disabled_user_ids)}"
        f" disabled, {len(tenant.non_user_ids)} members that are not users;"
        f"\n  {len(tenant.teams_numbers)} users have a Teams phone number (half of them not the one in"
        " businessPhones);\n  numbers come from Teams first, then businessPhones, then mobilePhone."
    )


def _choose(tenant: BuiltTenant, desired: DesiredState) -> _Scenario:
    in_scope = [desired.members[oid] for oid in tenant.user_ids if oid in desired.members]
    if len(in_scope) < 50:
        raise DemoError(f"the demo tenant has only {len(in_scope)} members in scope; expected at least 50")
    return _Scenario(
        conflicted=in_scope[5],
        removed=[in_scope[10], in_scope[20]],
        renumbered=next(m for m in in_scope[30:] if m.phone_source == TEAMS),
        renamed=in_scope[40],
        used_numbers={m.phone_number for m in desired.members.values()},
    )


def _free_number(scenario: _Scenario) -> tuple[str, str]:
    """A number nobody in the tenant has, as (E.164, the national form a person would type)."""
    for line in range(100, 200):
        e164 = f"{_FREE_NUMBER_PREFIX}{line:04d}"
        if e164 not in scenario.used_numbers:
            scenario.used_numbers.add(e164)
            return e164, f"(415) 555-{line:04d}"
    raise DemoError("no free demo phone number left")


def _change_groups(
    graph: GraphEmulator, smartcomm: SmartCommEmulator, tenant: BuiltTenant, scenario: _Scenario
) -> list[str]:
    """Add 3 users, remove 2, renumber one, rename one (their new numbers 10DLC registered, as the customer
    would); return what happened, in plain words."""
    groups = [tenant.top_group_id, *tenant.nested_group_ids]
    target = tenant.nested_group_ids[0] if tenant.nested_group_ids else tenant.top_group_id
    lines: list[str] = []
    joined: list[str] = []
    for first, last in _NEW_HIRES:
        upn = f"{first}.{last}@{DOMAIN}".lower()
        e164, typed = _free_number(scenario)
        smartcomm.register_numbers([e164])
        user_id = graph.add_user(upn=upn, display_name=f"{first} {last}", business_phones=[typed])
        graph.add_member(target, user_id)
        joined.append(f"{upn} ({e164})")
    lines.append(f"+ {len(joined)} new users joined a group nested in the configured one:")
    lines.extend(f"    {who}" for who in joined)
    for member in scenario.removed:
        left = 0
        for group_id in groups:
            try:
                graph.remove_member(group_id, member.object_id)
            except ValueError:  # not a direct member of this one
                continue
            left += 1
        if not left:
            raise DemoError(f"{member.upn} is a direct member of none of the configured groups")
    lines.append(
        f"- {len(scenario.removed)} users were removed from their groups: "
        + ", ".join(str(m.upn) for m in scenario.removed)
    )
    e164, _ = _free_number(scenario)
    smartcomm.register_numbers([e164])
    graph.unassign_number(tenant.teams_numbers[scenario.renumbered.object_id])
    graph.assign_number(e164, scenario.renumbered.object_id)
    lines.append(
        f"~ {scenario.renumbered.upn} got a new Teams number: {scenario.renumbered.phone_number} -> {e164}"
    )
    old_upn = str(scenario.renamed.upn)
    local, _, domain = old_upn.partition("@")
    new_upn = f"{local.split('.')[0]}.{_RENAMED_LAST_NAME.lower()}@{domain}"
    graph.update_user(scenario.renamed.object_id, upn=new_upn)
    lines.append(f"~ {old_upn} changed name; the new UPN is {new_upn}")
    lines.append(f"  (and {scenario.conflicted.upn} still has the number another agent holds)")
    return lines


def _people(n: int) -> str:
    return f"{n} user" if n == 1 else f"{n} users"


def _active_agents(smartcomm: SmartCommEmulator) -> int:
    return sum(1 for agent in smartcomm.agents() if agent["status"] == "active")


async def _run_cycle(engine: Engine) -> CycleResult:
    try:
        return await engine.run_cycle(trigger="demo")
    finally:
        await engine.aclose()


def _cycle(
    title: str, settings: Settings, store: Store, smartcomm: SmartCommEmulator, scenario: _Scenario
) -> CycleResult:
    before = _active_agents(smartcomm)
    result = asyncio.run(_run_cycle(Engine(settings, store)))
    after = _active_agents(smartcomm)
    name = title.partition(",")[0].lower()
    if result.error:
        raise DemoError(f"{name} could not run: {result.error}")
    if result.stopped_by is not None:
        raise DemoError(
            f"{name} was stopped by the {result.stopped_by.guard} guard: {result.stopped_by.message}"
        )
    print()
    failed = len(result.failures)
    verdict = f"{failed} write{'s' if failed != 1 else ''} failed"
    if result.deferred:
        verdict += f", {result.deferred} waiting for a retry (not converged yet)"
    print(f"{title}: run {result.run_id}, {result.kind}, {result.duration_s:.1f} s")
    print(f"  result    {verdict}: `syncd sync` would exit {result.exit_code}")
    print("  planned   " + ", ".join(f"{action} {n}" for action, n in result.planned.items()))
    applied = "; ".join(
        f"{action} " + ", ".join(f"{outcome} {n}" for outcome, n in sorted(result.outcomes[action].items()))
        for action in result.planned
        if action in result.outcomes
    )
    print(f"  applied   {applied or 'nothing to do'}")
    print(f"  unchanged {result.unchanged}")
    reasons = ", ".join(f"{reason} {n}" for reason, n in sorted(result.skipped.items()))
    print(f"  skipped   {sum(result.skipped.values())}" + (f" ({reasons})" if reasons else ""))
    print(
        "  numbers   in scope, by source: " + ", ".join(f"{k} {v}" for k, v in result.phone_sources.items())
    )
    conflicted = scenario.conflicted
    for failure in result.failures:
        label = "conflict" if failure.category == "conflict" else "failed"
        print(f"  {label:<9} {failure.upn} ({failure.object_id}): {failure.error}")
        if failure.object_id == conflicted.object_id:
            print(f"            (agent {CONFLICT_HOLDER_ID} holds {conflicted.phone_number})")
    if result.failures:
        print("            recorded for an admin and retried later with a growing backoff; nobody else waits")
    if result.deferred:
        print(
            f"  waiting   {_people(result.deferred)} whose last change failed, until the retry time"
            f" ({conflicted.upn}, the conflict of cycle 1)"
        )
    print(f"  agents    {before} active before, {after} active after (in the SmartCommunicator emulator)")
    return result


# --- syncd emulate ----------------------------------------------------------------------------------------


class _NamedCA(TestCA):
    """A TestCA whose server certificates also cover the `--hostname`s (e.g. "emulators" in compose)."""

    def __init__(self, directory: Path, hostnames: Sequence[str]) -> None:
        super().__init__(directory)
        self._hostnames = tuple(hostnames)

    def server_cert_files(self, *hostnames: str) -> tuple[Path, Path]:
        return super().server_cert_files(*hostnames, *self._hostnames)


def _url(host: str, port: int) -> str:
    return f"https://[{host}]:{port}" if ":" in host else f"https://{host}:{port}"


def _write_private(path: Path, text: str) -> None:
    """Write `text` readable by the owner only, replacing `path` at once (a reader never sees half)."""
    partial = path.with_name(f".{path.name}.partial")
    partial.unlink(missing_ok=True)
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as stream:
        stream.write(text)
    os.replace(partial, path)


@contextmanager
def _stop_on_signals(stop: threading.Event) -> Iterator[None]:
    def handler(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def emulate_main(args: argparse.Namespace) -> int:
    """`syncd emulate` from the CLI's parsed arguments."""
    return emulate(
        host=args.host,
        login_port=args.login_port,
        graph_port=args.graph_port,
        smartcomm_port=args.smartcomm_port,
        hostnames=args.hostname or [],
        state_dir=Path(args.state_dir),
        users=args.users,
        seed=args.seed,
    )


def emulate(
    *,
    host: str = "127.0.0.1",
    login_port: int = 8442,
    graph_port: int = 8443,
    smartcomm_port: int = 9443,
    hostnames: Sequence[str] = (),
    state_dir: Path = Path("emulators"),
    users: int = 200,
    seed: int = 1,
) -> int:
    """Serve both emulators over HTTPS until SIGINT/SIGTERM (then 0); 1 if they cannot start, 2 for bad
    arguments. Port 0 picks a free port; the configuration written names the real one."""
    configure_logging(level="warning", json=None)
    stop = threading.Event()
    with _stop_on_signals(stop):
        try:
            ports = (login_port, graph_port, smartcomm_port)
            _emulate(host, ports, list(hostnames), state_dir, users, seed, stop)
        except _UsageError as exc:
            print(f"syncd emulate: {exc}", file=sys.stderr)
            return 2
        except (DemoError, OSError) as exc:
            print(f"syncd emulate: {exc}", file=sys.stderr)
            return 1
    return 0


class _UsageError(Exception):
    pass


def _emulate(
    host: str,
    ports: tuple[int, int, int],
    hostnames: list[str],
    state_dir: Path,
    users: int,
    seed: int,
    stop: threading.Event,
) -> None:
    login_port, graph_port, smartcomm_port = ports
    for port in ports:
        if not 0 <= port <= 65535:
            raise _UsageError(f"port {port} is not 0..65535")
    graph, smartcomm = GraphEmulator(), SmartCommEmulator(registered_tenants=[DEFAULT_TENANT_ID])
    try:
        tenant = build_tenant(graph, TenantSpec(users=users, seed=seed), registry=smartcomm)
    except ValueError as exc:
        raise _UsageError(f"--users {users}: {exc}") from None
    state = state_dir.resolve()
    state.mkdir(parents=True, exist_ok=True)
    # The emulators start empty every time, so records of agents a previous session made would be wrong.
    stale = [state / name for name in ("syncd.db", "syncd.db-wal", "syncd.db-shm") if (state / name).exists()]
    for path in stale:
        path.unlink()
    ca = _NamedCA(state, hostnames)
    url_host = hostnames[0] if hostnames else _WILDCARDS.get(host, host)
    with ExitStack() as stack:
        # Login and Graph on two ports, as two hosts: a token is for Graph, and only Graph takes it.
        login_server = _start(stack, graph.login_app, host, login_port, ca, "Entra login")
        graph_server = _start(stack, graph.graph_app, host, graph_port, ca, "Graph")
        smartcomm_server = _start(stack, smartcomm.app, host, smartcomm_port, ca, "SmartCommunicator")
        token_file = state / "admin-token"
        _write_private(token_file, secrets.token_urlsafe(32) + "\n")
        config = state / "syncd.toml"
        login_url, graph_url = _url(url_host, login_server.port), _url(url_host, graph_server.port)
        smartcomm_url = _url(url_host, smartcomm_server.port)
        graph.graph_resource = graph_url
        _write_private(
            config,
            emulate_config(
                login_url=login_url,
                graph_url=graph_url,
                smartcomm_url=smartcomm_url,
                group_id=tenant.top_group_id,
                state_dir=state,
                token_file=token_file,
            ),
        )
        names = ", ".join(dict.fromkeys(("127.0.0.1", "localhost", "::1", host, *hostnames)))
        print("syncd emulate: serving the emulators until Ctrl+C or SIGTERM")
        for name, server, url in (
            ("Entra ID login", login_server, login_url),
            ("Microsoft Graph", graph_server, graph_url),
            ("SmartCommunicator", smartcomm_server, smartcomm_url),
        ):
            print(
                f"  {name:<27} {server.base_url}"
                + (f"  (the config says {url})" if url != server.base_url else "")
            )
        print(f"  tenant     {users} users (seed {seed}) in group {tenant.top_group_id}")
        print(f"  CA         {ca.ca_path}  (server certificates cover {names})")
        print(f"  config     {config}")
        print(f"  admin      token in {token_file}")
        if stale:
            print(f"  database   removed the previous {stale[0].name}: the emulators start empty")
        print("Try:")
        print(f"  syncd --config {config} sync --dry-run")
        print(f"  syncd --config {config} run")
        sys.stdout.flush()
        while not stop.wait(0.5):
            pass
        print("syncd emulate: stopping", flush=True)


def _start(stack: ExitStack, app: ASGIApp, host: str, port: int, ca: TestCA, name: str) -> RunningServer:
    try:
        return stack.enter_context(serve_https(app, ca=ca, host=host, port=port))
    except (OSError, RuntimeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise DemoError(f"cannot serve the {name} emulator on {host}:{port}: {reason}") from exc
