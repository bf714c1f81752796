"""Benchmark (run by hand, never by the test suite): whole sync cycles against both emulators.

    .venv/bin/python bench/sync_cycles.py [--users 10000 100000] [--latency-ms 20] [--concurrency 32]
                                          [--churn 0.01] [--graph-budget tenant|off]
                                          [--json-out bench/results/sync_cycles-{n}.json]
    .venv/bin/python bench/sync_cycles.py --read-1m      # only the read side of a full cycle, 1,000,000 users

For each --users size, the Entra + Graph emulator (a `build_tenant` tenant of that many users, pages of 999;
login and Graph on two hosts) and the SmartCommunicator emulator (the tenant and its numbers registered, as
`build_tenant` lists them) each run in a child process of their own (their CPU is not ours), over
HTTPS with a throw-away test CA, both answering every request after --latency-ms (the emulators' `Faults`
latency; their login endpoints are spared, as `Faults.auth_too` is off: Entra's token and SmartCommunicator's
/authenticate answer at once). Each scenario then runs `Engine.run_cycle` in a fresh worker process of its
own, all on one SQLite file, and measures that process only: wall and CPU time of each `run_cycle`, the
whole process's CPU (interpreter start and imports included), peak RSS, and the requests each emulator
received during each cycle, by kind (request logs cleared before each scenario, split by cycle time):

  a. initial sync       run_cycle(full=True) on an empty database and an empty SmartCommunicator
  b. full no-change     run_cycle(full=True) again: no writes expected
  c. incr. no-change    run_cycle(full=False) twice in one worker; the second is the one judged (the first may
                        still be setting up Graph delta links), both are printed
  d. churn              ceil(churn * N) users changed through the Graph emulator's control API (a third get a
                        new businessPhones number: PATCH; a third leave the group they are a direct member
                        of: DELETE; a third are new users in a nested group: POST), then run_cycle(full=False)

Baselines, measured in the same run, each in a fresh process:
  - writes: a bare `aiohttp.ClientSession` loop POSTing min(N, 5000) new agents (the body shape syncd sends,
    bearer token from /rest/v1/authenticate) at the same concurrency to a second SmartCommunicator emulator
    process with the same latency (so these agents never meet the scenarios): CPU per POST; then, after
    scenario a, the same loop for as many POSTs as the initial sync sent: its wall;
  - reads: `http.client` + `json.loads` over the same transitive member pages a full read fetches
    (bench/graph_read.py's baseline, run through its `--child baseline`): CPU and wall seconds;
  - the floor of a full cycle's reads (bench/floors.py), after scenario a: the member pages (the read
    baseline's CPU) + `http.client` and `json.loads` of the agents list body + a plain `sqlite3` fetch of
    the member rows `Store.load_recorded` reads;
  - latency bound of a cycle (printed, no longer judged): writes x latency / concurrency + pages x latency,
    where pages are the Graph requests (login excluded) plus SmartCommunicator agents-list GETs it sent.

Printed per size: the scenarios' figures, then each target beside its bound with the ratio and PASS/FAIL
(stated for 100,000 users; they are printed for every size):
  - initial sync: syncd's CPU per SmartCommunicator write (the cycle's "apply" phase CPU from
    `CycleResult.phase_cpu_s` when it has one, else the whole cycle's) <= 2x the bare aiohttp CPU per POST,
    and its wall time <= 1.1x (the bare loop's wall for the same writes + the bare read's wall);
  - full no-change: CPU of a fresh process's cycle <= 3x the floor, of the worker's second cycle (a daemon's
    next full cycle) <= 2x the floor; peak RSS of the worker <= 250 MB;
  - incremental no-change (second cycle): Graph requests other than login <= 3 per configured group, wall
    < 0.5 s;
  - churn: the writes SmartCommunicator received by method == the expected ones, and no transitiveMembers
    user page read.
With SYNCD_BENCH_PROFILE=<folder>, each worker cycle is profiled (cProfile; its CPU figures grow with it)
and dumped there as <pid>-<n>-<kind>.prof.
Graph throttles each app to the documented resource unit budget of the tenant's size (over 500 users: the
large tenant's 8,000 units per 10 s), answering 429 with Retry-After when it is spent; `--graph-budget off`
turns that off, to measure its effect. The 429s each cycle met are counted with its Graph requests.
Everything also goes to --json-out ("{n}" is replaced by the size; bench/results/ is git-ignored).
--read-1m times `GraphSource(settings).read()` on 1,000,000 users in a fresh process (wall, CPU, peak RSS,
bound 1 GB), beside the `json.loads` baseline, both through bench/graph_read.py's `--child` modes; figures
to the --json-out name with "-read" added (bench/results/sync_cycles-1000000-read.json).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import cProfile
import http.client
import json
import math
import os
import re
import resource
import signal
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.parse
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType
from typing import IO, Any

ROOT = Path(__file__).resolve().parents[1]
GRAPH_READ = Path(__file__).resolve().parent / "graph_read.py"
FLOORS = Path(__file__).resolve().parent / "floors.py"
DEFAULT_JSON_OUT = "bench/results/sync_cycles-{n}.json"
TARGET_USERS = 100_000
"""The size the targets are stated for (they are printed for every size)."""
READ_1M_USERS = 1_000_000
WORKER_TIMEOUT_S = 4 * 3600.0
CHILD_START_TIMEOUT_S = 1800.0

_SC_AGENTS = re.compile(r"^/rest/v1/smartcomm/[^/]+/agents(?:/([^/]+))?$")
_GRAPH_USER = re.compile(r"^/v1\.0/users/[^/]+$", re.IGNORECASE)
_GRAPH_GROUP_MEMBERS = re.compile(r"^/v1\.0/groups/[^/]+/members", re.IGNORECASE)

Json = dict[str, Any]


class BenchError(Exception):
    """The benchmark cannot go on; the message says why."""


def peak_rss_mb() -> float:
    """This process's peak RSS: VmHWM from /proc (Linux), else ru_maxrss.

    Not ru_maxrss where /proc has VmHWM: Linux keeps ru_maxrss across execve, and as subprocess starts its
    children with vfork, a worker's ru_maxrss starts at the harness's own peak (which holds the request logs
    of 100,000 writes); VmHWM belongs to the new process image only.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    return ru_maxrss_mb()


def ru_maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def wait_for_parent() -> None:
    """Block until the parent closes our stdin (or dies); Ctrl-C ends the wait quietly."""
    with contextlib.suppress(KeyboardInterrupt):
        sys.stdin.read()


# --- child processes: the emulators -------------------------------------------------------------------


def serve_graph(users: int, page_cap: int, directory: Path, churn_count: int, throttle: bool) -> None:
    """Child: the Graph emulator with a tenant of `users`; prints where it listens, the churn plan and the
    numbers SmartCommunicator must have registered."""
    from syncd.emulators.graph import (
        DEFAULT_CLIENT_ID,
        DEFAULT_CLIENT_SECRET,
        DEFAULT_TENANT_ID,
        GraphEmulator,
        serve_graph_https,
    )
    from syncd.emulators.server import TestCA
    from syncd.emulators.tenant import TenantSpec, build_tenant

    print(f"  graph emulator: building a tenant of {users:,} users ...", file=sys.stderr, flush=True)
    emulator = GraphEmulator(page_cap=page_cap, throttle=throttle)
    started = time.perf_counter()
    tenant = build_tenant(emulator, TenantSpec(users=users, seed=1))
    built_s = time.perf_counter() - started
    print(f"  graph emulator: tenant built in {built_s:.1f} s", file=sys.stderr, flush=True)
    churn = churn_plan(tenant, users, churn_count)
    churn_numbers = [number for _, number in churn["patch"]]
    churn_numbers += [phone for user in churn["new"] for phone in user["business_phones"]]
    info: Json = {
        "tenant_id": DEFAULT_TENANT_ID,
        "client_id": DEFAULT_CLIENT_ID,
        "secret": DEFAULT_CLIENT_SECRET,
        "group_id": tenant.top_group_id,
        "nested_group_ids": tenant.nested_group_ids,
        "built_s": round(built_s, 2),
        "teams": 0,
        "churn": churn,
        "ten_dlc_numbers": [*tenant.ten_dlc_numbers, *churn_numbers],
        "budget": emulator.budget() if throttle else None,
    }
    with serve_graph_https(emulator, ca=TestCA(directory)) as servers:
        info |= {
            "authority_host": servers.authority_host,
            "base_url": servers.base_url,
            "ca_path": str(servers.ca_path),
        }
        print(json.dumps(info), flush=True)
        wait_for_parent()


def churn_plan(tenant: Any, users: int, count: int) -> Json:
    """Which users the churn scenario changes and how (drawn from the tenant's structure, all in scope).

    - patch: users directly in the top group whose number comes from businessPhones, each with a new valid
      E.164 number found nowhere else in the tenant (numbers 0 .. 2N-1 of the tenant's sequence are taken);
    - remove: users who are a direct member of exactly one group (a nested one), with that group;
    - new: new users with a valid businessPhones number, to be added to the first nested group.
    """
    from syncd.emulators.tenant import DOMAIN, _format, _number

    n_remove = count // 3
    n_new = count // 3
    n_patch = count - n_remove - n_new
    nested: list[str] = tenant.nested_group_ids
    slots = len(nested) + 1
    special = set(
        tenant.no_phone_user_ids
        + tenant.bad_phone_user_ids
        + tenant.disabled_user_ids
        + tenant.extension_user_ids
    )
    fresh = 2 * users
    patch: list[list[str]] = []
    remove: list[list[str]] = []
    for i, user_id in enumerate(tenant.user_ids):
        if len(patch) >= n_patch and len(remove) >= n_remove:
            break
        # build_tenant: i % 10 in 7, 8 have a mobile phone only (out of scope with businessPhones);
        # slot 0 is the top group, slot k the k-th nested group; every 50th nested user is in the top too.
        if user_id in special or i % 10 in (7, 8):
            continue
        slot = i % slots
        if slot == 0 and len(patch) < n_patch:
            patch.append([user_id, _format(_number(fresh + len(patch)), 1)])
        elif slot != 0 and i % 50 != 1 and len(remove) < n_remove:
            remove.append([nested[slot - 1], user_id])
    if len(patch) < n_patch or len(remove) < n_remove:
        raise BenchError(f"the tenant has too few users for a churn of {count}")
    new = []
    for j in range(n_new):
        new.append(
            {
                "id": str(uuid.uuid4()),
                "upn": f"bench.newhire{j}@{DOMAIN}",
                "display_name": f"Bench Newhire {j}",
                "business_phones": [_format(_number(fresh + n_patch + j), 1)],
                "on_premises_immutable_id": base64.b64encode(uuid.uuid4().bytes).decode(),
            }
        )
    return {"patch": patch, "remove": remove, "new": new, "new_group": nested[0] if nested else None}


def serve_smartcomm(directory: Path) -> None:
    """Child: an empty SmartCommunicator emulator; prints where it listens."""
    from syncd.emulators.server import TestCA, serve_https
    from syncd.emulators.smartcomm import (
        DEFAULT_CUSTOMER_ID,
        DEFAULT_PASSWORD,
        DEFAULT_USERNAME,
        SmartCommEmulator,
    )

    emulator = SmartCommEmulator()
    with serve_https(emulator.app, ca=TestCA(directory)) as server:
        info = {
            "base_url": server.base_url,
            "ca_path": str(server.ca_path),
            "customer_id": DEFAULT_CUSTOMER_ID,
            "username": DEFAULT_USERNAME,
            "password": DEFAULT_PASSWORD,
        }
        print(json.dumps(info), flush=True)
        wait_for_parent()


# --- worker processes: syncd cycles and the write baseline -----------------------------------------------


def run_cycles_worker(config: str, cycles: Sequence[str]) -> Json:
    """Worker: `Engine.run_cycle` for each of `cycles` ("full"/"incremental") in this fresh process."""
    from syncd.config.loader import load_settings
    from syncd.config.logs import configure_logging
    from syncd.cycle.engine import Engine
    from syncd.store import Store

    configure_logging(level="warning", json=True)  # to stderr: stdout carries the figures
    settings = load_settings(Path(config), {})  # no environment: SYNCD_* of the caller must not leak in
    imports_rss_mb = peak_rss_mb()
    store = Store(settings.database.url)
    results: list[Json] = []
    try:
        store.upgrade()
        upgrade_rss_mb = peak_rss_mb()
        engine = Engine(settings, store)
        setup_cpu_s = time.process_time()
        setup_rss_mb = peak_rss_mb()
        profile_dir = os.environ.get("SYNCD_BENCH_PROFILE")  # a folder: one cProfile dump per cycle
        for number, cycle in enumerate(cycles, start=1):
            full = cycle == "full"
            profiler = cProfile.Profile() if profile_dir else None
            t0, c0 = time.monotonic(), time.process_time()
            if profiler is not None:
                profiler.enable()
            result = asyncio.run(engine.run_cycle(full=full, trigger="bench"))
            if profiler is not None:
                profiler.disable()
            t1, c1 = time.monotonic(), time.process_time()
            if profiler is not None and profile_dir:
                profiler.dump_stats(Path(profile_dir) / f"{os.getpid()}-{number}-{cycle}.prof")
            phase_cpu: dict[str, float] = dict(getattr(result, "phase_cpu_s", None) or {})
            results.append(
                {
                    "full": full,
                    "t0": t0,
                    "t1": t1,
                    "wall_s": t1 - t0,
                    "cpu_s": c1 - c0,
                    "peak_rss_mb": peak_rss_mb(),
                    "kind": result.kind,
                    "exit_code": result.exit_code,
                    "error": result.error,
                    "stopped_by": None if result.stopped_by is None else result.stopped_by.guard,
                    "planned": result.planned,
                    "outcomes": result.outcomes,
                    "unchanged": result.unchanged,
                    "failures": len(result.failures),
                    "first_failures": [
                        f"{f.action.value} {f.object_id}: {f.error}" for f in result.failures[:3]
                    ],
                    "phase_cpu_s": phase_cpu,
                }
            )
    finally:
        if "engine" in locals():
            asyncio.run(engine.aclose())
        store.close()
    return {
        "cycles": results,
        "setup_cpu_s": setup_cpu_s,
        "setup_rss_mb": setup_rss_mb,
        "imports_rss_mb": imports_rss_mb,
        "upgrade_rss_mb": upgrade_rss_mb,
        "process_cpu_s": time.process_time(),
        "peak_rss_mb": peak_rss_mb(),
        "ru_maxrss_mb": ru_maxrss_mb(),
    }


def write_baseline_worker(where: Json, posts: int, concurrency: int) -> Json:
    """Worker: a bare aiohttp loop POSTing `posts` new agents at `concurrency`; CPU per POST."""
    import aiohttp

    from syncd.emulators.graph import DEFAULT_TENANT_ID
    from syncd.emulators.tenant import DOMAIN, _format, _number

    # Bodies as syncd sends them (NewAgent.to_json), prepared before the clock starts: only HTTP is timed.
    bodies = [
        {
            "user_object_id": str(uuid.uuid4()),
            "tenant_id": DEFAULT_TENANT_ID,
            "phone_number": _format(_number(i), 1),
            "upn": f"bench.post{i}@{DOMAIN}",
            "consistency_id": str(uuid.uuid4()),
        }
        for i in range(posts)
    ]
    base = where["base_url"]
    agents_url = f"{base}/rest/v1/smartcomm/{where['customer_id']}/agents"
    statuses: dict[int, int] = {}

    async def run() -> tuple[float, float]:
        context = ssl.create_default_context(cafile=where["ca_path"])
        connector = aiohttp.TCPConnector(ssl=context, limit=concurrency)
        async with aiohttp.ClientSession(connector=connector) as session:
            credentials = {"username": where["username"], "password": where["password"]}
            async with session.post(f"{base}/rest/v1/authenticate", json=credentials) as response:
                token = (await response.json())["token"]
            headers = {
                "Authorization": f"Bearer {token}",
                "Accept": "application/json",
                "Content-Type": "application/json",
            }
            semaphore = asyncio.Semaphore(concurrency)

            async def one(body: Json) -> None:
                async with semaphore:
                    for attempt in range(3):
                        # A pooled connection the server closed meanwhile (its keep-alive ran out) is sent
                        # on again, as any client would; such drops are counted as "dropped".
                        try:
                            async with session.post(agents_url, json=body, headers=headers) as answer:
                                await answer.read()
                                statuses[answer.status] = statuses.get(answer.status, 0) + 1
                                return
                        except aiohttp.ClientConnectionError:
                            if attempt == 2:
                                raise
                            statuses[0] = statuses.get(0, 0) + 1

            wall, cpu = time.perf_counter(), time.process_time()
            await asyncio.gather(*(one(body) for body in bodies))
            return time.perf_counter() - wall, time.process_time() - cpu

    wall_s, cpu_s = asyncio.run(run())
    return {
        "posts": posts,
        "concurrency": concurrency,
        "statuses": {str(k) if k else "dropped": v for k, v in sorted(statuses.items())},
        "wall_s": wall_s,
        "cpu_s": cpu_s,
        "cpu_per_post_s": cpu_s / posts,
        "peak_rss_mb": peak_rss_mb(),
    }


# --- the harness: children, control API, request kinds -------------------------------------------------


class Child:
    """An emulator child process: started, its first stdout line read as JSON, stopped on exit."""

    def __init__(self, name: str, args: Sequence[str], env: dict[str, str]) -> None:
        self.name = name
        self.process: subprocess.Popen[str] = subprocess.Popen(
            [sys.executable, __file__, *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        self.info: Json = {}

    def ready(self) -> Json:
        """Wait for the child's first line (where it listens), as JSON."""
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            code = self.process.wait(timeout=CHILD_START_TIMEOUT_S)
            raise BenchError(
                f"the {self.name} emulator process ended (exit {code}) before it listened; see above"
            )
        self.info = json.loads(line)
        return self.info

    def stop(self) -> None:
        process = self.process
        if process.poll() is None:
            try:
                assert process.stdin is not None
                process.stdin.close()
                process.wait(timeout=15)
            except (subprocess.TimeoutExpired, OSError):
                process.terminate()
                try:
                    process.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        if process.stdout is not None:
            process.stdout.close()


def control(server: Json, method: str, path: str, body: object = None) -> Any:
    """A call to an emulator's control API (`/_emulator/...`, never in its request log)."""
    base = urllib.parse.urlsplit(server["base_url"])
    context = ssl.create_default_context(cafile=server["ca_path"])
    connection = http.client.HTTPSConnection(base.hostname or "127.0.0.1", base.port, context=context)
    try:
        payload = None if body is None else json.dumps(body)
        headers = {} if body is None else {"Content-Type": "application/json"}
        connection.request(method, f"/_emulator{path}", body=payload, headers=headers)
        response = connection.getresponse()
        raw = response.read()
        if response.status >= 400:
            raise BenchError(f"control {method} {path} answered {response.status}: {raw[:300]!r}")
        return json.loads(raw) if raw else None
    finally:
        connection.close()


def graph_kind(request: Json) -> str:
    path: str = request["path"]
    lowered = path.lower()
    if not lowered.startswith("/v1.0/"):
        return "login"
    if "/transitivemembers" in lowered:
        # transitiveMembers/graph.group lists a group's nested groups; graph.user (or no cast) are members.
        return "nested_group_pages" if lowered.rstrip("/").endswith("graph.group") else "member_pages"
    if lowered.startswith("/v1.0/groups/delta"):
        return "group_delta"
    if lowered.startswith("/v1.0/users/delta"):
        return "user_delta"
    if _GRAPH_USER.match(path):
        return "user_get"
    if _GRAPH_GROUP_MEMBERS.match(path):
        return "direct_member_pages"
    if "numberassignments" in lowered:
        return "teams"
    return "other"


def smartcomm_kind(request: Json) -> str:
    path: str = request["path"]
    if path == "/rest/v1/authenticate":
        return "login"
    match = _SC_AGENTS.match(path)
    method: str = request["method"]
    if match is None:
        return "other"
    if match.group(1) is None:
        return {"GET": "list", "POST": "POST"}.get(method, "other")
    return {"GET": "get_single", "PATCH": "PATCH", "DELETE": "DELETE"}.get(method, "other")


def tally(requests: Sequence[Json], kind: Callable[[Json], str]) -> Json:
    counts: dict[str, int] = {}
    errors = throttled = 0
    others: list[str] = []
    for request in requests:
        k = kind(request)
        counts[k] = counts.get(k, 0) + 1
        status = request.get("status")
        if status is None or status >= 400:
            errors += 1
        throttled += status == 429
        if k == "other" and len(others) < 5:
            others.append(f"{request['method']} {request['path']}")
    return {
        "by_kind": dict(sorted(counts.items())),
        "total": len(requests),
        "errors": errors,
        "throttled": throttled,
        "others": others,
    }


def logged_events(stderr: str) -> dict[str, int]:
    """Warnings and errors a worker logged (syncd logs JSON lines to stderr), by level and event."""
    events: dict[str, int] = {}
    for line in stderr.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and entry.get("level") in ("warning", "error", "critical"):
            key = f"{entry['level']}:{entry.get('event')}"
            events[key] = events.get(key, 0) + 1
    return dict(sorted(events.items()))


def writes_of(smartcomm: Json) -> dict[str, int]:
    kinds = smartcomm["by_kind"]
    return {method: kinds.get(method, 0) for method in ("POST", "PATCH", "DELETE")}


def graph_reads(graph: Json) -> int:
    """Graph requests other than login."""
    return sum(n for kind, n in graph["by_kind"].items() if kind != "login")


class Harness:
    """One size's emulators, configuration and scenarios."""

    def __init__(self, args: argparse.Namespace, users: int, directory: Path) -> None:
        self.args = args
        self.users = users
        self.directory = directory
        self.latency_s = args.latency_ms / 1000
        self.env = {**os.environ, "PYTHONPATH": str(ROOT)}
        self.children: list[Child] = []

    def start(self, name: str, args: Sequence[str]) -> Json:
        child = Child(name, args, self.env)
        self.children.append(child)  # before anything can fail: stop() ends it whatever happens next
        info = child.ready()
        control(info, "PUT", "/faults", {"latency_s": self.latency_s})
        return info

    def stop(self) -> None:
        for child in reversed(self.children):
            child.stop()
        self.children.clear()

    def python(self, what: str, args: Sequence[str]) -> Json:
        """Run a fresh worker process; its last stdout line is the JSON result."""
        try:
            done = subprocess.run(
                [sys.executable, *args],
                capture_output=True,
                text=True,
                env=self.env,
                timeout=WORKER_TIMEOUT_S,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise BenchError(f"{what}: worker timed out after {WORKER_TIMEOUT_S:.0f} s") from exc
        lines = done.stdout.strip().splitlines()
        if done.returncode != 0 or not lines:
            tail = "\n".join(done.stderr.strip().splitlines()[-40:])
            raise BenchError(f"{what}: worker failed (exit {done.returncode}); stderr tail:\n{tail}")
        result: Json = json.loads(lines[-1])
        result["logged"] = logged_events(done.stderr)
        return result

    def config(self, graph: Json, smartcomm: Json) -> Path:
        q = json.dumps  # a JSON string is a valid TOML basic string
        path = self.directory / "syncd.toml"
        database = f"sqlite:///{self.directory / 'syncd.db'}"
        concurrency = self.args.concurrency
        path.write_text(
            f"""[database]
url = {q(database)}

[graph]
tenant_id = {q(graph["tenant_id"])}
client_id = {q(graph["client_id"])}
client_secret = {q(graph["secret"])}
authority_host = {q(graph["authority_host"])}
base_url = {q(graph["base_url"] + "/v1.0")}
group_ids = [{q(graph["group_id"])}]
ca_bundle = {q(graph["ca_path"])}

[smartcomm]
base_url = {q(smartcomm["base_url"])}
customer_id = {smartcomm["customer_id"]}
username = {q(smartcomm["username"])}
password = {q(smartcomm["password"])}
ca_bundle = {q(smartcomm["ca_path"])}
max_connections = {max(32, concurrency)}

[sync]
max_offboard = 1000000
concurrency = {concurrency}

[log]
level = "warning"
format = "json"
""",
            encoding="utf-8",
        )
        return path

    def scenario(self, name: str, config: Path, cycles: Sequence[str], graph: Json, smartcomm: Json) -> Json:
        """One scenario in a fresh worker: figures per cycle, with the requests each emulator got then."""
        print(f"  scenario {name}: {', '.join(cycles)} ...", flush=True)
        for server in (graph, smartcomm):
            control(server, "DELETE", "/requests")
        out = self.python(
            f"scenario {name}",
            [__file__, "--worker", "cycles", "--config", str(config), "--cycles", ",".join(cycles)],
        )
        graph_log: list[Json] = control(graph, "GET", "/requests")
        smartcomm_log: list[Json] = control(smartcomm, "GET", "/requests")
        inside = 0
        for cycle in out["cycles"]:
            t0, t1 = cycle["t0"], cycle["t1"]
            g = [r for r in graph_log if t0 <= r["at"] <= t1]
            s = [r for r in smartcomm_log if t0 <= r["at"] <= t1]
            inside += len(g) + len(s)
            cycle["graph"] = tally(g, graph_kind)
            cycle["smartcomm"] = tally(s, smartcomm_kind)
            cycle["writes"] = writes_of(cycle["smartcomm"])
            cycle["bound"] = self.bound(cycle)
            print(f"    {describe_cycle(cycle)}", flush=True)
        out["requests_outside_cycles"] = len(graph_log) + len(smartcomm_log) - inside
        return out

    def bound(self, cycle: Json) -> Json:
        writes = sum(cycle["writes"].values())
        graph_pages = graph_reads(cycle["graph"])
        list_pages = cycle["smartcomm"]["by_kind"].get("list", 0)
        latency, concurrency = self.latency_s, self.args.concurrency
        seconds = writes * latency / concurrency + (graph_pages + list_pages) * latency
        return {
            "writes": writes,
            "graph_pages": graph_pages,
            "smartcomm_list_pages": list_pages,
            "latency_s": latency,
            "concurrency": concurrency,
            "seconds": seconds,
        }

    def churn(self, graph: Json) -> dict[str, int]:
        """Apply the churn plan through the Graph control API; the writes it should cause."""
        plan = graph["churn"]
        for user_id, number in plan["patch"]:
            control(graph, "PATCH", f"/users/{user_id}", {"business_phones": [number]})
        by_group: dict[str, list[str]] = {}
        for group_id, user_id in plan["remove"]:
            by_group.setdefault(group_id, []).append(user_id)
        for group_id, user_ids in by_group.items():
            control(graph, "DELETE", "/members", {"group_id": group_id, "member_ids": user_ids})
        if plan["new"]:
            created = control(graph, "POST", "/users", plan["new"])["ids"]
            control(graph, "POST", "/members", {"group_id": plan["new_group"], "member_ids": created})
        return {"POST": len(plan["new"]), "PATCH": len(plan["patch"]), "DELETE": len(plan["remove"])}

    def run(self, *, baselines: bool = True) -> Json:
        """Every scenario; with `baselines`, the bare write loops, the read baseline and the floor too."""
        args, n = self.args, self.users
        churn_count = math.ceil(args.churn * n)
        print(
            f"\n=== {n:,} users: latency {args.latency_ms:g} ms, concurrency {args.concurrency} ===",
            flush=True,
        )
        graph = self.start(
            "Graph",
            [
                "--serve", "graph", "--users", str(n), "--page-cap", "999",
                "--dir", str(self.directory / "graph-ca"), "--churn-count", str(churn_count),
                "--graph-budget", args.graph_budget,
            ],
        )  # fmt: skip
        budget = graph.get("budget")
        print(f"  Graph budget: {f'{budget:,} units per 10 s' if budget else 'off'}", flush=True)
        smartcomm = self.start(
            "SmartCommunicator", ["--serve", "smartcomm", "--dir", str(self.directory / "sc-ca")]
        )
        # The account as the customer set it up: the tenant and every number of the directory registered.
        registries = {
            "registered_tenants": [graph["tenant_id"]],
            "ten_dlc_numbers": graph.pop("ten_dlc_numbers"),
        }
        control(smartcomm, "PUT", "/registries", registries)
        config = self.config(graph, smartcomm)
        if not baselines:
            return self.scenarios(config, graph, smartcomm) | {"tenant_built_s": graph["built_s"]}
        spare = self.start(
            "SmartCommunicator (write baseline)",
            ["--serve", "smartcomm", "--dir", str(self.directory / "sc2-ca")],
        )
        # The bare-aiohttp baseline measures HTTP, not registries: every tenant and number goes.
        control(spare, "PUT", "/registries", {"registered_tenants": None, "ten_dlc_numbers": None})

        posts = min(n, 5000)
        print(f"  baseline: bare aiohttp, {posts:,} POSTs at concurrency {args.concurrency} ...", flush=True)
        write_baseline = self.python(
            "write baseline",
            [
                __file__, "--worker", "write-baseline", "--where", json.dumps(spare),
                "--posts", str(posts), "--concurrency", str(args.concurrency),
            ],
        )  # fmt: skip
        print(
            f"    {write_baseline['cpu_per_post_s'] * 1e3:.3f} ms CPU per POST, "
            f"wall {write_baseline['wall_s']:.2f} s, statuses {write_baseline['statuses']}",
            flush=True,
        )
        print("  baseline: http.client + json.loads over the member pages (twice, the second kept) ...")
        where = json.dumps(
            {
                k: graph[k]
                for k in (
                    "authority_host",
                    "base_url",
                    "ca_path",
                    "group_id",
                    "tenant_id",
                    "client_id",
                    "secret",
                    "teams",
                )
            }
        )
        read_baseline: Json = {}
        for _ in range(2):
            control(graph, "DELETE", "/requests")
            read_baseline = self.python(
                "read baseline", [str(GRAPH_READ), "--child", "baseline", "--where", where]
            )
        read_baseline["graph"] = tally(control(graph, "GET", "/requests"), graph_kind)
        print(
            f"    {read_baseline['cpu_s']:.3f} s CPU, wall {read_baseline['wall_s']:.2f} s, "
            f"{read_baseline['users']:,} users, Graph {read_baseline['graph']['by_kind']}",
            flush=True,
        )

        result = self.scenarios(config, graph, smartcomm, spare=spare)
        return result | {
            "tenant_built_s": graph["built_s"],
            "write_baseline": write_baseline,
            "read_baseline": read_baseline,
        }

    def floor(self, smartcomm: Json) -> Json:
        """The floor of a full cycle's reads besides the member pages (bench/floors.py), each in a fresh
        process, twice (the second kept): the agents list and our member rows."""
        where = json.dumps(
            {k: smartcomm[k] for k in ("base_url", "ca_path", "customer_id", "username", "password")}
        )
        parts: Json = {}
        for _ in range(2):
            parts["agents_list"] = self.python(
                "floor: agents list", [str(FLOORS), "--child", "agents-list", "--where", where]
            )
            parts["member_rows"] = self.python(
                "floor: member rows",
                [str(FLOORS), "--child", "sqlite", "--db", str(self.directory / "syncd.db")],
            )
        agents, rows = parts["agents_list"], parts["member_rows"]
        print(
            f"    floor: agents list {agents['cpu_s']:.3f} s CPU ({agents['items']:,} agents),"
            f" member rows {rows['cpu_s']:.3f} s CPU ({rows['items']:,} rows)",
            flush=True,
        )
        return parts

    def bare_writes(self, spare: Json, posts: int) -> Json:
        """The bare aiohttp loop for `posts` POSTs (the initial sync's number of writes): its wall."""
        print(f"  baseline: bare aiohttp, {posts:,} POSTs (the initial sync's writes) ...", flush=True)
        control(spare, "POST", "/reset")  # no agents from the first loop (their numbers would clash)
        control(spare, "PUT", "/faults", {"latency_s": self.latency_s})
        out = self.python(
            "bare writes",
            [
                __file__, "--worker", "write-baseline", "--where", json.dumps(spare),
                "--posts", str(posts), "--concurrency", str(self.args.concurrency),
            ],
        )  # fmt: skip
        print(f"    wall {out['wall_s']:.2f} s, statuses {out['statuses']}", flush=True)
        return out

    def scenarios(self, config: Path, graph: Json, smartcomm: Json, *, spare: Json | None = None) -> Json:
        """Scenarios a-d; with a `spare` SmartCommunicator emulator, the floor and the bare loop of the
        initial sync's writes after scenario a."""
        args, n = self.args, self.users
        churn_count = math.ceil(args.churn * n)
        scenarios: Json = {}
        scenarios["a_initial"] = self.scenario("a (initial sync)", config, ["full"], graph, smartcomm)
        extra: Json = {}
        if spare is not None:
            extra["floor"] = self.floor(smartcomm)
            writes = sum(scenarios["a_initial"]["cycles"][0]["writes"].values())
            extra["bare_writes"] = self.bare_writes(spare, max(writes, 1))
        # Twice in one worker: the first is a fresh process (a `syncd sync --full`), the second what a
        # long-lived daemon's next full cycle costs (imports done, numbers already parsed once).
        scenarios["b_full_nochange"] = self.scenario(
            "b (full, no change)", config, ["full", "full"], graph, smartcomm
        )
        scenarios["c_incr_nochange"] = self.scenario(
            "c (incremental, no change)", config, ["incremental", "incremental"], graph, smartcomm
        )
        expected = self.churn(graph)
        print(f"  churn applied in Graph: {churn_count} users, expecting {expected}", flush=True)
        scenarios["d_churn"] = self.scenario(
            "d (churn, incremental)", config, ["incremental"], graph, smartcomm
        )
        scenarios["d_churn"]["expected_writes"] = expected
        return {
            "users": n,
            "latency_ms": args.latency_ms,
            "concurrency": args.concurrency,
            "churn": args.churn,
            "churn_users": churn_count,
            "groups": 1,
            "graph_budget_units_per_10s": graph.get("budget"),
            "login_latency": "none (Faults.auth_too is off: login endpoints answer without the latency)",
            "scenarios": scenarios,
        } | extra


# --- reporting -------------------------------------------------------------------------------------------


def describe_cycle(cycle: Json) -> str:
    writes = cycle["writes"]
    phases = cycle["phase_cpu_s"]
    phase_text = " phases " + ", ".join(f"{k} {v:.2f}" for k, v in phases.items()) if phases else ""
    error = f" error={cycle['error']!r}" if cycle["error"] else ""
    stop = f" stopped_by={cycle['stopped_by']}" if cycle["stopped_by"] else ""
    return (
        f"{cycle['kind']}: exit {cycle['exit_code']}, wall {cycle['wall_s']:.2f} s,"
        f" CPU {cycle['cpu_s']:.2f} s, writes POST {writes['POST']} PATCH {writes['PATCH']}"
        f" DELETE {writes['DELETE']}{phase_text}{error}{stop}"
    )


def fmt_kinds(kinds: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in kinds.items()) or "none"


def targets(result: Json) -> list[Json]:
    """Each target: figure, bound, ratio figure/bound, pass."""
    n = result["users"]
    stated = "" if n == TARGET_USERS else f" (target stated for {TARGET_USERS:,})"
    scenarios = result["scenarios"]
    initial = scenarios["a_initial"]["cycles"][0]
    full = scenarios["b_full_nochange"]["cycles"][0]
    incremental = scenarios["c_incr_nochange"]["cycles"][-1]
    churn = scenarios["d_churn"]["cycles"][0]
    rows: list[Json] = []

    def row(name: str, figure: float, bound: float, unit: str, passed: bool, note: str = "") -> None:
        ratio = figure / bound if bound else (0.0 if figure == 0 else math.inf)
        rows.append(
            {"target": name, "figure": figure, "bound": bound, "unit": unit, "ratio": ratio, "pass": passed}
            | ({"note": note} if note else {})
        )

    writes = sum(initial["writes"].values())
    apply_cpu = initial["phase_cpu_s"].get("apply")
    basis = "apply-phase CPU" if apply_cpu is not None else "whole-cycle CPU (no phase_cpu_s['apply'])"
    per_write = (apply_cpu if apply_cpu is not None else initial["cpu_s"]) / max(writes, 1)
    per_post = result["write_baseline"]["cpu_per_post_s"]
    row(
        "writes: CPU per write (a) <= 2x bare aiohttp",
        per_write * 1e3,
        2 * per_post * 1e3,
        "ms",
        writes > 0 and per_write <= 2 * per_post,
        f"{basis} / {writes} writes; bare aiohttp {per_post * 1e3:.3f} ms/POST",
    )
    bound = initial["bound"]
    bare, read = result["bare_writes"], result["read_baseline"]
    fair = bare["wall_s"] + read["wall_s"]
    row(
        "initial sync wall <= 1.1x (bare write loop + bare read)" + stated,
        initial["wall_s"],
        1.1 * fair,
        "s",
        initial["wall_s"] <= 1.1 * fair,
        f"bound {fair:.2f} s = bare aiohttp loop of the same {bare['posts']:,} writes {bare['wall_s']:.2f} s"
        f" + http.client/json.loads read {read['wall_s']:.2f} s; the latency bound (emulators costing"
        f" nothing) would be {bound['seconds']:.2f} s",
    )
    floor = result["floor"]
    parts = {
        "member pages": read["cpu_s"],
        "agents list": floor["agents_list"]["cpu_s"],
        "member rows": floor["member_rows"]["cpu_s"],
    }
    total = sum(parts.values())
    floor_note = "floor " + " + ".join(f"{k} {v:.3f}" for k, v in parts.items()) + f" = {total:.3f} s CPU"
    row(
        "full no-change CPU <= 3x floor (fresh process)" + stated,
        full["cpu_s"],
        3 * total,
        "s",
        full["cpu_s"] <= 3 * total,
        floor_note + "; the worker's first cycle",
    )
    warm = scenarios["b_full_nochange"]["cycles"][-1]
    row(
        "full no-change CPU <= 2x floor (a daemon's second)" + stated,
        warm["cpu_s"],
        2 * total,
        "s",
        warm["cpu_s"] <= 2 * total,
        "the second full cycle in the same worker process",
    )
    row(
        "full no-change peak RSS <= 250 MB" + stated,
        full["peak_rss_mb"],
        250,
        "MB",
        full["peak_rss_mb"] <= 250,
        "whole worker process after its first cycle, imports included",
    )
    reads = graph_reads(incremental["graph"])
    allowed = 3 * result["groups"]
    row(
        "incremental no-change: Graph requests <= 3 per group",
        reads,
        allowed,
        "req",
        reads <= allowed,
        f"second cycle, login excluded: {fmt_kinds(incremental['graph']['by_kind'])}",
    )
    row(
        "incremental no-change wall < 0.5 s",
        incremental["wall_s"],
        0.5,
        "s",
        incremental["wall_s"] < 0.5,
        "second cycle",
    )
    expected = scenarios["d_churn"]["expected_writes"]
    got = churn["writes"]
    row(
        "churn: writes == expected",
        sum(got.values()),
        sum(expected.values()),
        "writes",
        got == expected,
        f"got {got}, expected {expected}",
    )
    pages = churn["graph"]["by_kind"].get("member_pages", 0)
    row(
        "churn: no unchanged member page read",
        pages,
        0,
        "pages",
        pages == 0,
        f"transitiveMembers user pages; Graph: {fmt_kinds(churn['graph']['by_kind'])}",
    )
    return rows


def print_report(result: Json, rows: list[Json], out: IO[str]) -> None:
    n = result["users"]
    print(
        f"\n--- {n:,} users (latency {result['latency_ms']:g} ms, concurrency {result['concurrency']}) ---",
        file=out,
    )
    print(
        f"{'scenario':<22} {'wall s':>8} {'cyc CPU s':>9} {'proc CPU s':>10} {'RSS MB':>7} "
        f"{'bound s':>8} {'POST':>6} {'PATCH':>6} {'DEL':>6}  exit",
        file=out,
    )
    labels = {
        "a_initial": ["a initial (full)"],
        "b_full_nochange": ["b full no-change", "b ... again (daemon)"],
        "c_incr_nochange": ["c incr no-change #1", "c incr no-change #2"],
        "d_churn": ["d churn (incr)"],
    }
    for key, names in labels.items():
        scenario = result["scenarios"][key]
        for index, (name, cycle) in enumerate(zip(names, scenario["cycles"], strict=True)):
            proc = f"{scenario['process_cpu_s']:.2f}" if index == len(names) - 1 else ""
            w = cycle["writes"]
            print(
                f"{name:<22} {cycle['wall_s']:>8.2f} {cycle['cpu_s']:>9.2f} {proc:>10}"
                f" {cycle['peak_rss_mb']:>7.0f} {cycle['bound']['seconds']:>8.2f}"
                f" {w['POST']:>6} {w['PATCH']:>6} {w['DELETE']:>6}  "
                f"{cycle['exit_code']}{' ' + cycle['error'] if cycle['error'] else ''}",
                file=out,
            )
    print("requests per cycle (Graph | SmartCommunicator), phase CPU:", file=out)
    for key, names in labels.items():
        scenario = result["scenarios"][key]
        for name, cycle in zip(names, scenario["cycles"], strict=True):
            phases = cycle["phase_cpu_s"]
            phase_text = (
                ", ".join(f"{k} {v:.2f}" for k, v in phases.items()) if phases else "n/a (no phase_cpu_s)"
            )
            others = cycle["graph"]["others"] + cycle["smartcomm"]["others"]
            print(
                f"  {name:<20} {fmt_kinds(cycle['graph']['by_kind'])}"
                f" | {fmt_kinds(cycle['smartcomm']['by_kind'])}"
                f" | errors {cycle['graph']['errors']}/{cycle['smartcomm']['errors']}"
                f" (Graph 429 {cycle['graph'].get('throttled', 0)}) | phases {phase_text}"
                + (f" | other: {others}" if others else ""),
                file=out,
            )
            b = cycle["bound"]
            print(
                f"  {'':<20} latency bound {b['seconds']:.2f} s = {b['writes']} writes x {b['latency_s']} s"
                f" / {b['concurrency']} + ({b['graph_pages']} Graph requests + {b['smartcomm_list_pages']}"
                f" agents-list GETs) x {b['latency_s']} s",
                file=out,
            )
        print(
            f"  {'':<20} worker: setup (imports, db upgrade) {scenario['setup_cpu_s']:.2f} s CPU,"
            f" whole process {scenario['process_cpu_s']:.2f} s CPU,"
            f" peak RSS {scenario['peak_rss_mb']:.0f} MB, logged {fmt_kinds(scenario['logged'])}",
            file=out,
        )
    wb, rb = result["write_baseline"], result["read_baseline"]
    print(
        f"baselines: bare aiohttp {wb['posts']:,} POSTs: {wb['cpu_per_post_s'] * 1e3:.3f} ms CPU/POST"
        f" ({wb['cpu_s']:.2f} s CPU, {wb['wall_s']:.2f} s wall, {wb['statuses']});"
        f" json.loads read: {rb['cpu_s']:.3f} s CPU, {rb['wall_s']:.2f} s wall, {rb['peak_rss_mb']:.0f} MB",
        file=out,
    )
    bare, floor = result["bare_writes"], result["floor"]
    agents, rows_ = floor["agents_list"], floor["member_rows"]
    print(
        f"           bare aiohttp, the initial sync's {bare['posts']:,} writes: {bare['wall_s']:.2f} s wall;"
        f" floor: agents list {agents['cpu_s']:.3f} s CPU ({agents['items']:,} agents,"
        f" {agents['bytes'] / 1e6:.1f} MB), member rows {rows_['cpu_s']:.3f} s CPU ({rows_['items']:,})",
        file=out,
    )
    print(f"\n{'target':<86} {'figure':>10} {'limit':>10} {'unit':<6} {'fig/lim':>7}  result", file=out)
    for r in rows:
        print(
            f"{r['target']:<86} {r['figure']:>10.3f} {r['bound']:>10.3f} {r['unit']:<6} {r['ratio']:>7.2f}  "
            f"{'PASS' if r['pass'] else 'FAIL'}",
            file=out,
        )
        if r.get("note"):
            print(f"{'':<4}{r['note']}", file=out)


# --- --read-1m ------------------------------------------------------------------------------------------


def run_read_1m(args: argparse.Namespace, directory: Path) -> int:
    harness = Harness(args, READ_1M_USERS, directory)
    try:
        print(
            f"=== read side of a full cycle, {READ_1M_USERS:,} users, latency {args.latency_ms:g} ms ===",
            flush=True,
        )
        started = time.perf_counter()
        graph = harness.start(
            "Graph",
            ["--serve", "graph", "--users", str(READ_1M_USERS), "--page-cap", "999", "--dir",
             str(directory / "graph-ca"), "--churn-count", "0"],
        )  # fmt: skip
        print(f"  emulator up after {time.perf_counter() - started:.1f} s", flush=True)
        where = json.dumps(
            {
                k: graph[k]
                for k in (
                    "authority_host",
                    "base_url",
                    "ca_path",
                    "group_id",
                    "tenant_id",
                    "client_id",
                    "secret",
                    "teams",
                )
            }
        )
        results: Json = {}
        for mode in ("baseline", "reader"):
            print(f"  {mode} ...", flush=True)
            control(graph, "DELETE", "/requests")
            results[mode] = harness.python(mode, [str(GRAPH_READ), "--child", mode, "--where", where])
            results[mode]["graph"] = tally(control(graph, "GET", "/requests"), graph_kind)
    finally:
        harness.stop()
    print(f"{'':10} {'users':>10} {'wall s':>8} {'CPU s':>8} {'peak RSS':>10}  Graph requests")
    for mode in ("baseline", "reader"):
        r = results[mode]
        print(
            f"{mode:10} {r['users']:>10,} {r['wall_s']:>8.2f} {r['cpu_s']:>8.2f} {r['peak_rss_mb']:>8.0f}MB  "
            f"{fmt_kinds(r['graph']['by_kind'])}"
        )
    reader = results["reader"]
    ok = reader["peak_rss_mb"] <= 1024
    print(
        f"reader peak RSS {reader['peak_rss_mb']:.0f} MB <= 1024 MB: {'PASS' if ok else 'FAIL'} "
        f"(ratio {reader['peak_rss_mb'] / 1024:.2f}); reader/baseline CPU "
        f"{reader['cpu_s'] / results['baseline']['cpu_s']:.2f}x"
    )
    out = Path(args.json_out.replace("{n}", f"{READ_1M_USERS}-read"))
    out = out if out.is_absolute() else ROOT / out
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"users": READ_1M_USERS, "latency_ms": args.latency_ms, **results}, indent=2))
    print(f"figures written to {out}")
    return 0


# --- entry point -----------------------------------------------------------------------------------------


def interrupted(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--users", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--churn", type=float, default=0.01)
    parser.add_argument(
        "--graph-budget",
        choices=["tenant", "off"],
        default="tenant",
        help="Graph's resource unit budget: the tenant size's (default) or none",
    )
    parser.add_argument("--json-out", default=DEFAULT_JSON_OUT, help='"{n}" is replaced by the size')
    parser.add_argument("--read-1m", action="store_true", help="only the 1,000,000-user read (separate mode)")
    # Internal: how the harness starts its children and workers.
    parser.add_argument("--serve", choices=["graph", "smartcomm"], help=argparse.SUPPRESS)
    parser.add_argument("--worker", choices=["cycles", "write-baseline"], help=argparse.SUPPRESS)
    parser.add_argument("--page-cap", type=int, default=999, help=argparse.SUPPRESS)
    parser.add_argument("--dir", default="", help=argparse.SUPPRESS)
    parser.add_argument("--churn-count", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--config", default="", help=argparse.SUPPRESS)
    parser.add_argument("--cycles", default="full", help=argparse.SUPPRESS)
    parser.add_argument("--where", default="", help=argparse.SUPPRESS)
    parser.add_argument("--posts", type=int, default=5000, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.serve:
        with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C reaches the children too: the parent reports
            if args.serve == "graph":
                throttle = args.graph_budget != "off"
                serve_graph(args.users[0], args.page_cap, Path(args.dir), args.churn_count, throttle)
            else:
                serve_smartcomm(Path(args.dir))
        return 0
    if args.worker == "cycles":
        print(json.dumps(run_cycles_worker(args.config, args.cycles.split(","))))
        return 0
    if args.worker == "write-baseline":
        print(json.dumps(write_baseline_worker(json.loads(args.where), args.posts, args.concurrency)))
        return 0

    signal.signal(signal.SIGTERM, interrupted)  # like Ctrl-C: the finally blocks stop every child
    with tempfile.TemporaryDirectory(prefix="syncd-bench-") as tmp:
        try:
            if args.read_1m:
                return run_read_1m(args, Path(tmp))
            for n in args.users:
                harness = Harness(args, n, Path(tmp) / f"n{n}")
                try:
                    result = harness.run()
                finally:
                    harness.stop()
                rows = targets(result)
                result["targets"] = rows
                print_report(result, rows, sys.stdout)
                out = Path(args.json_out.replace("{n}", str(n)))
                out = out if out.is_absolute() else ROOT / out
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_text(json.dumps(result, indent=2, default=str), encoding="utf-8")
                print(f"figures written to {out}", flush=True)
        except BenchError as exc:
            print(f"\nsync_cycles: {exc}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            print("\nsync_cycles: interrupted; emulators stopped", file=sys.stderr)
            return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
