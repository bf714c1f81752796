"""The `syncd` command line: sync (and its dry run), status, history, explain, relink, run, resync, check,
config, db upgrade, demo, emulate.

Exit codes (scripts depend on them): 0 every in-scope user converged; 1 some operations failed or the cycle
could not run (the rest still applied); 2 configuration or usage error; 3 stopped by a safety guard
(nothing offboarded). Human output goes to stdout, logs to stderr; `--json` prints one JSON object.

On a terminal, `status` and `history` draw tables and a sync draws a progress bar (`syncd.cli.terminal`,
with rich, imported only then); piped or redirected, they print plain lines.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TextIO

from syncd import __version__
from syncd.core.exits import EXIT_CONFIG, EXIT_FAILURES
from syncd.reports.history_flags import add_arguments as add_history_arguments

if TYPE_CHECKING:
    from syncd.config.settings import Settings
    from syncd.store import Store

READ_ONLY_COMMANDS = frozenset({"status", "history", "explain"})
"""Commands that only read the database: they never migrate it nor write, so they work on a read-only file."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="syncd", description="Keeps IntelePeer SmartCommunicator agents in step with Entra ID groups."
    )
    parser.add_argument("--version", action="version", version=f"syncd {__version__}")
    parser.add_argument("--config", metavar="PATH", help="TOML configuration (default: $SYNCD_CONFIG)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    sync = sub.add_parser("sync", help="run one cycle now")
    sync.add_argument(
        "--dry-run", action="store_true", help="read both sides and print the plan; write nothing"
    )
    sync.add_argument(
        "--full", action="store_true", help="also compare with the remote agents list (repairs drift)"
    )
    sync.add_argument("--force", action="store_true", help="let this cycle pass the safety guards")
    sync.add_argument("--user", metavar="OBJECT_ID_OR_UPN", help="sync this one user now")
    sync.add_argument("--json", action="store_true", help="print one JSON object instead of a summary")

    status = sub.add_parser("status", help="last runs, counts, users needing attention")
    status.add_argument("--json", action="store_true")
    status.add_argument("--runs", type=int, default=10, help="how many runs to show (default 10)")

    history = sub.add_parser("history", help="the operations log (audit history), newest first")
    add_history_arguments(history)

    explain = sub.add_parser("explain", help="why is this person (not) an agent: all syncd knows of them")
    explain.add_argument("who", metavar="UPN_OBJECT_ID_OR_NUMBER", help="a UPN, an object ID or a number")
    explain.add_argument("--json", action="store_true", help="print one JSON object instead of text")

    relink = sub.add_parser(
        "relink", help="move the agent of object ID OLD to NEW (the same person re-created in Entra)"
    )
    relink.add_argument("old", metavar="OLD", help="the object ID whose agent moves (no longer in scope)")
    relink.add_argument("new", metavar="NEW", help="the object ID it moves to (in scope, without an agent)")
    relink.add_argument("--dry-run", action="store_true", help="check and print the PATCH; send nothing")
    relink.add_argument(
        "--no-transfer-data",
        action="store_true",
        help="send transfer_data false: the agent moves without its data (calls, conversations)",
    )
    relink.add_argument("--json", action="store_true", help="print one JSON object instead of text")

    sub.add_parser("run", help="the daemon: sync on a schedule, serve the admin API, resync on demand")

    resync = sub.add_parser("resync", help="ask the running daemon for a cycle now (via its admin API)")
    resync.add_argument("--full", action="store_true", help="a full cycle (compare with the remote list)")
    resync.add_argument("--wait", action="store_true", help="wait for the cycle; exit with its exit code")
    resync.add_argument("--force", action="store_true", help="let that cycle pass the safety guards")

    check = sub.add_parser(
        "check",
        help="check the configuration, Entra and Graph, SmartCommunicator, the database and the admin "
        "listener, writing nothing; 0 when all pass, 2 when one fails",
    )
    check.add_argument("--json", action="store_true", help="print one JSON object instead of the checklist")

    config = sub.add_parser("config", help="the configuration: its effective values, or its JSON Schema")
    config_sub = config.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    show = config_sub.add_parser(
        "show", help="the effective configuration and where each value came from; secrets as ***"
    )
    show.add_argument("--json", action="store_true", help="print one JSON object instead of TOML")
    config_sub.add_parser("schema", help="a JSON Schema of syncd.toml, for editors")

    db = sub.add_parser("db", help="database maintenance")
    db_sub = db.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    db_sub.add_parser("upgrade", help="apply migrations (also done at every start)")

    demo = sub.add_parser("demo", help="run the main job against the built-in emulators")
    demo.add_argument("--debug", action="store_true", help="show the traceback if the demo fails")

    emulate = sub.add_parser("emulate", help="serve the Graph and SmartCommunicator emulators over HTTPS")
    emulate.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    emulate.add_argument("--login-port", type=int, default=8442, help="Entra login port (0: any free)")
    emulate.add_argument("--graph-port", type=int, default=8443, help="Graph emulator port (0: any free)")
    emulate.add_argument("--smartcomm-port", type=int, default=9443, help="SmartComm port (0: any free)")
    emulate.add_argument("--hostname", action="append", metavar="NAME", help="extra certificate name")
    emulate.add_argument("--state-dir", default="emulators", help="CA, config, db (default ./emulators)")
    emulate.add_argument("--users", type=int, default=200, help="users in the tenant (default 200)")
    emulate.add_argument("--seed", type=int, default=1, help="tenant seed (default 1)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the process exit code."""
    args = build_parser().parse_args(argv)
    if args.command == "emulate":
        from syncd.emulators import demo

        return demo.emulate_main(args)
    if args.command == "demo":
        from syncd.emulators import demo

        return demo.run_demo(debug=args.debug)
    if args.command in ("check", "config"):
        from syncd.cli import setup_commands

        if args.command == "check":
            return setup_commands.run_check(args.config, as_json=args.json)
        return setup_commands.run_config(
            args.config, args.config_command, as_json=getattr(args, "json", False)
        )
    # Imported once the command line is read: `--help` and usage errors need none of them, and the settings
    # (pydantic), the store (SQLAlchemy) and the logs are most of a command's start-up.
    with _collector_paused():
        from syncd.config.loader import ConfigError, config_path, load_settings
        from syncd.config.logs import configure_logging
        from syncd.store import Store, StoreError, UnusableDatabase

    try:
        settings = load_settings(config_path(args.config, os.environ), os.environ)
    except ConfigError as exc:
        print(f"syncd: configuration error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    configure_logging(
        level=settings.log.level,
        json=None if settings.log.format == "auto" else settings.log.format == "json",
    )
    if args.command == "resync":
        return _resync(settings, full=args.full, wait=args.wait, force=args.force)
    if args.command in ("run", "sync", "relink"):
        try:  # a daemon without either side would only fail every interval: say so now
            settings.require_graph()
            settings.require_smartcomm()
        except ConfigError as exc:
            print(f"syncd: configuration error: {exc}", file=sys.stderr)
            return EXIT_CONFIG
        # The modules the cycles run on (msgraph-sdk's thousands of classes among them) are imported first, so
        # that the collector freezes them with the rest (syncd.cycle.collector).
        if args.command == "run":
            import syncd.service.daemon
        else:
            import syncd.cycle.engine  # noqa: F401
        from syncd.cycle.collector import tune_collector

        tune_collector()
    try:
        store = Store(settings.database.url, read_only=args.command in READ_ONLY_COMMANDS)
        try:
            if store.read_only:
                store.check_schema()  # says so (exit 2) when the schema is behind or newer
            else:
                store.upgrade()
            if args.command == "db":
                print(f"database at revision {store.current_revision()}")
                return 0
            if args.command == "status":
                return _status(store, args, offboard_grace_s=settings.sync.offboard_grace_s)
            if args.command == "history":
                return _history(store, args)
            if args.command == "run":
                return _run(settings, store)
            if args.command == "explain":
                return _explain(settings, store, args)
            if args.command == "relink":
                return _relink(settings, store, args)
            assert args.command == "sync", args.command
            return _sync(settings, store, args)
        finally:
            store.close()
    except UnusableDatabase as exc:  # the message says what to do: a retry would not help
        print(f"syncd: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except StoreError as exc:
        print(f"syncd: database error: {exc}", file=sys.stderr)
        return EXIT_FAILURES
    except ConfigError as exc:
        print(f"syncd: configuration error: {exc}", file=sys.stderr)
        return EXIT_CONFIG


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while a command imports what it needs, then exempt what the imports
    made from later collections (`gc.freeze`), and resume it.

    Modules, classes, SQLAlchemy's tables and the settings models pydantic builds live as long as the
    process: walking them finds nothing to free, yet at start-up the collector walks them several times (a
    full collection alone walks every object imported so far), about a tenth of `syncd status`. What the
    command makes afterwards is collected as before.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if enabled:
            gc.enable()


def _run(settings: Settings, store: Store) -> int:
    import asyncio

    from syncd.service.daemon import AdminBindError, AlreadyRunning, Daemon, DaemonError

    try:
        return asyncio.run(Daemon(settings, store).run())
    except AlreadyRunning as exc:
        if exc.holder_role == "sync":
            advice = "not starting the daemon while that cycle runs; start it again once the sync has ended"
        else:
            advice = "not starting a second daemon on this database"
        print(f"syncd: {exc}; {advice}", file=sys.stderr)
        return EXIT_FAILURES
    except DaemonError as exc:
        print(f"syncd: {exc}; the daemon stopped", file=sys.stderr)
        return EXIT_FAILURES
    except AdminBindError as exc:
        print(f"syncd: {exc}", file=sys.stderr)
        return EXIT_FAILURES


def _explain(settings: Settings, store: Store, args: argparse.Namespace) -> int:
    """`syncd explain`: 0 when everything could be read, 1 for an unknown person or a section that could
    not be read (the rest is still printed), 2 for a configuration error or a query that is no UPN, object
    ID or number (a usage error: nothing was looked up)."""
    import asyncio

    from syncd.config.loader import ConfigError
    from syncd.core.text import printable
    from syncd.reports.explain import PersonNotFound, QueryNotUnderstood, explain_person, render_text

    try:
        settings.require_graph()
        settings.require_smartcomm()
    except ConfigError as exc:
        print(f"syncd: configuration error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    try:
        explanation = asyncio.run(explain_person(settings, store, args.who))
    except PersonNotFound as exc:
        # The message may quote what Graph or the user gave: shown, never obeyed by the terminal.
        print(f"syncd: {printable(str(exc))}", file=sys.stderr)
        return EXIT_CONFIG if isinstance(exc, QueryNotUnderstood) else EXIT_FAILURES
    if args.json:
        print(json.dumps(explanation.to_json(), sort_keys=True))
    else:
        sys.stdout.write(render_text(explanation))
    return EXIT_FAILURES if explanation.errors else 0


def _relink(settings: Settings, store: Store, args: argparse.Namespace) -> int:
    """`syncd relink OLD NEW`: 0 moved (or, with --dry-run, would move), 1 SmartCommunicator failed or the
    answer was lost, 2 refused (why is printed) or a configuration error; under the instance lock, as a
    sync (a dry run takes none)."""
    if args.dry_run:
        return _relink_locked(settings, store, args)
    from syncd.service.daemon import AlreadyRunning, instance_lock

    try:
        with instance_lock(store, settings.database.url, "sync"):
            return _relink_locked(settings, store, args)
    except AlreadyRunning as exc:
        print(f"syncd: {exc}: a cycle or the daemon is running; try again once it has ended", file=sys.stderr)
        return EXIT_FAILURES


def _relink_locked(settings: Settings, store: Store, args: argparse.Namespace) -> int:
    import asyncio

    from syncd.cycle.engine import Engine, RelinkResult
    from syncd.reports.summary import print_relink

    engine = Engine(settings, store)

    async def relink() -> RelinkResult:
        try:
            return await engine.relink(
                args.old, args.new, dry_run=args.dry_run, transfer_data=not args.no_transfer_data
            )
        finally:
            await engine.aclose()

    result = asyncio.run(relink())
    if args.json:
        print(json.dumps(result.to_json(), sort_keys=True))
    else:
        print_relink(result, sys.stderr if result.outcome in ("refused", "error") else sys.stdout)
    return result.exit_code


def _resync(settings: Settings, *, full: bool, wait: bool, force: bool = False) -> int:
    """POST /resync to the daemon named by admin.listen (0.0.0.0 and :: mean this machine)."""
    import httpx

    from syncd.config.tls import admin_trust_context

    admin = settings.admin
    host, port = admin.host, admin.port
    host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)  # noqa: S104 - mapping, not binding
    scheme = "https" if admin.tls else "http"
    url = f"{scheme}://[{host}]:{port}/resync" if ":" in host else f"{scheme}://{host}:{port}/resync"
    token = settings.admin.token.get_secret_value() if settings.admin.token else ""
    if not token:
        message = "admin.token (or admin.token_file) is not configured; the daemon refuses resync without one"
        print(f"syncd: {message}", file=sys.stderr)
        return EXIT_CONFIG
    try:
        response = httpx.post(
            url,
            json={"full": full, "force": force},
            params={"wait": "true"} if wait else None,
            headers={"Authorization": f"Bearer {token}"},
            timeout=None if wait else 10.0,
            trust_env=False,
            # The listener's own certificate is trusted beside the system store (a self-signed one works).
            verify=admin_trust_context(admin.tls_cert_path) if admin.tls else True,
        )
    except httpx.HTTPError as exc:
        print(
            f"syncd: cannot reach the daemon at {url}: {type(exc).__name__}; is `syncd run` running?",
            file=sys.stderr,
        )
        return EXIT_FAILURES
    if response.status_code in (401, 403):
        print(
            f"syncd: the daemon refused the request: {response.json().get('error', response.text)}",
            file=sys.stderr,
        )
        return EXIT_CONFIG
    forwarded = response.headers.get("x-syncd-forwarded-to")  # a standby asked the leader for us
    if response.status_code == 202:
        print(
            "resync queued"
            + (" (full)" if full else "")
            + (f" by the leader at {forwarded}" if forwarded else "")
        )
        return 0
    if response.status_code == 503 and '"leader"' in response.text:
        print(
            f"syncd: {url} is a standby and could not ask the leader; {_where_leader(response)}",
            file=sys.stderr,
        )
        return EXIT_FAILURES
    if response.status_code != 200:
        print(f"syncd: the daemon answered {response.status_code}: {response.text[:300]}", file=sys.stderr)
        return EXIT_FAILURES
    document = response.json()
    print(json.dumps(document, sort_keys=True))
    return int(document.get("exit_code", EXIT_FAILURES))


def _where_leader(response: Any) -> str:
    """Where a standby's answer says the leader is (PostgreSQL replicas; `syncd.service.leader`)."""
    try:
        leader = response.json().get("leader")
    except (ValueError, AttributeError):
        leader = None
    if not isinstance(leader, dict):
        return "no leader has said where it is yet"
    beat = leader.get("heartbeat_at")
    age = f", last heartbeat {time.time() - beat:.0f} s ago" if isinstance(beat, int | float) else ""
    return (
        f"the leader is {leader.get('admin_url')} (host {leader.get('host')}, pid {leader.get('pid')}{age})"
    )


def _sync(settings: Settings, store: Store, args: argparse.Namespace) -> int:
    if args.dry_run:
        return _sync_locked(settings, store, args)
    from syncd.service.daemon import AlreadyRunning, instance_lock

    try:
        with instance_lock(store, settings.database.url, "sync"):
            return _sync_locked(settings, store, args)
    except AlreadyRunning as exc:
        if exc.holder_role == "sync":
            advice = "another cycle is running on this database; try again once it has ended"
        else:
            advice = "ask the daemon for a cycle instead with `syncd resync [--full] [--force] --wait`"
        print(f"syncd: {exc}: {advice}", file=sys.stderr)
        return EXIT_FAILURES


def _sync_locked(settings: Settings, store: Store, args: argparse.Namespace) -> int:
    # Imported here: the cycle loads msgraph-sdk and the HTTP stack, which `status`, `history` and
    # `--help` do without.
    import asyncio

    from syncd.cycle.apply import Progress
    from syncd.cycle.engine import CycleResult, Engine
    from syncd.reports.summary import print_result
    from syncd.service.audit import write_audit_log
    from syncd.service.notify import send_after_cycle

    if not args.dry_run:
        store.interrupt_running_runs()  # a previous process that died mid-cycle left its run "running"
    engine = Engine(settings, store)

    async def one_cycle(progress: Progress | None) -> CycleResult:
        try:
            return await engine.run_cycle(
                trigger="cli",
                full=args.full,
                dry_run=args.dry_run,
                force=args.force,
                user=args.user,
                progress=progress,
            )
        finally:
            await engine.aclose()

    if args.json or not _on_terminal(sys.stderr):
        result = asyncio.run(one_cycle(None))
    else:
        from syncd.cli.terminal import ApplyProgress

        with ApplyProgress(sys.stderr) as progress:
            result = asyncio.run(one_cycle(progress))
    if args.json:
        print(json.dumps(result.to_json(), sort_keys=True))
    else:
        print_result(result, sys.stdout)
    if not args.dry_run and args.user is None:
        # After the run is recorded and shown; the webhook never changes the exit code.
        send_after_cycle(settings.notify, store, result)
    if not args.dry_run:
        # With --json, stdout holds the one result document: audit lines meant for stdout go to stderr.
        audit_stdout = sys.stderr if args.json else None
        write_audit_log(settings.notify.audit_log, store, result.run_id, stdout=audit_stdout)
    if not args.dry_run:
        _prune_history(settings, store)
    return result.exit_code


def _prune_history(settings: Settings, store: Store) -> None:
    """Retention without a daemon: prune once a day at the end of a sync; a failure does not fail the sync."""
    from syncd.reports.history import prune_if_due
    from syncd.store import StoreError

    try:
        prune_if_due(store, settings.sync.history_days)
    except StoreError as exc:
        print(f"syncd: pruning the history failed (the next sync tries again): {exc}", file=sys.stderr)


def _on_terminal(stream: TextIO) -> bool:
    """Whether `stream` is a terminal: only then is the output drawn (`syncd.cli.terminal` imported)."""
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # replaced or closed
        return False


def _status(store: Store, args: argparse.Namespace, *, offboard_grace_s: float) -> int:
    from syncd.reports.status import print_status

    if args.json or not _on_terminal(sys.stdout):
        return print_status(store, as_json=args.json, runs=args.runs, offboard_grace_s=offboard_grace_s)
    from syncd.cli import terminal
    from syncd.reports.status import status_report

    report = status_report(store, args.runs, offboard_grace_s=offboard_grace_s)
    return terminal.print_status(report, sys.stdout)


def _history(store: Store, args: argparse.Namespace) -> int:
    from syncd.reports.history import run_history

    table = None
    if args.format == "table" and _on_terminal(sys.stdout):
        from syncd.cli.terminal import history_table

        table = history_table(sys.stdout)
    try:
        return run_history(store, args, sys.stdout, sys.stderr, table=table)
    except BrokenPipeError:
        # `syncd history --format csv | head`: the reader has what it wanted. Point stdout at /dev/null so
        # the interpreter's final flush does not complain.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
