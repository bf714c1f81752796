"""The fault soak: seeded directory churn and faults on both emulators, with `kill -9` of `syncd sync`.

Each cycle applies a seeded batch of changes to the Graph emulator (joiners, leavers, rejoiners, phone
changes, UPN renames), sets random faults on both emulators (latency, 503s, 429s with Retry-After, dropped
connections, writes applied and then dropped, token lifetimes of a few seconds), runs `syncd sync` as a
subprocess and, in a seeded share of cycles, kills it with SIGKILL the moment its k-th write (k = 1..3,
seeded) reaches SmartCommunicator. Then the faults stop, two clean cycles run (the second one full) and the
invariants are checked from the emulators' request logs and state and from our operations log:

1. the remote active agents equal what the soak's own log of the directory says they should be
   (tests/soak/directory.py, not syncd's mapping);
2. no object is onboarded (an applied POST) while an earlier agent for it is still active;
3. no applied DELETE hits an object that was in scope at the start of the cycle that sent it;
4. every write the emulator applied was made under an operation in our log for the same object and a
   matching action, recorded before it; no operation is left pending.

`python -m tests.soak.runner --cycles 200 --seed 7` (`make soak`) prints a summary and exits 1 on violations.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from syncd.emulators.common import Faults, ScriptedFault
from syncd.emulators.graph import DEFAULT_TENANT_ID, GraphEmulator, GraphServers, serve_graph_https
from syncd.emulators.server import RunningServer, TestCA, serve_https
from syncd.emulators.smartcomm import AUTH_PATH, SmartCommEmulator
from syncd.store import Store
from tests.soak.directory import AgentKey, Directory

ROOT = Path(__file__).resolve().parents[2]
AGENTS_MARK = "/agents"
WRITE_METHODS = {"POST": "onboard", "PATCH": "update", "DELETE": "offboard"}
# Which of our actions may send which write: an onboard that finds the agent already there adopts it
# (GET, then PATCH what differs); an update that finds it gone onboards it again (POST).
COMPATIBLE = {"POST": {"onboard", "update"}, "PATCH": {"update", "onboard"}, "DELETE": {"offboard"}}
# Our operations are timed by the syncd process's wall clock, the emulator's requests by ours: same host.
CLOCK_TOLERANCE_S = 0.05


# --- what the checkers read ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Write:
    """A write request the SmartCommunicator emulator received (POST/PATCH/DELETE on agents)."""

    seq: int
    at: float
    """Wall-clock epoch seconds of its arrival."""
    method: str
    object_id: str
    applied: bool
    status: int | None = None
    fault: str | None = None


@dataclass(frozen=True)
class Operation:
    """One row of our operations log."""

    object_id: str
    action: str
    outcome: str
    created_at: float
    settled_at: float | None


@dataclass(frozen=True)
class CycleWindow:
    """One `syncd sync` process: when it ran and who was in scope at its start."""

    index: int
    started: float
    ended: float
    in_scope: frozenset[str]
    killed: bool = False


# --- the invariant checkers (pure) --------------------------------------------------------------------


def check_converged(remote: Mapping[str, AgentKey], desired: Mapping[str, AgentKey]) -> list[str]:
    """Invariant 1: the remote active agents are exactly the desired state."""
    violations = []
    for object_id in sorted(desired.keys() - remote.keys()):
        violations.append(f"converged: {object_id} should be an agent {desired[object_id]} but is not")
    for object_id in sorted(remote.keys() - desired.keys()):
        violations.append(f"converged: {object_id} is an active agent {remote[object_id]} out of scope")
    for object_id in sorted(remote.keys() & desired.keys()):
        if remote[object_id] != desired[object_id]:
            violations.append(
                f"converged: {object_id} is {remote[object_id]}, should be {desired[object_id]}"
            )
    return violations


def check_no_double_onboard(writes: Iterable[Write], initially_active: Iterable[str] = ()) -> list[str]:
    """Invariant 2: no applied POST for an object whose earlier agent is still active."""
    active = set(initially_active)
    violations = []
    for write in sorted(writes, key=lambda w: w.seq):
        if not write.applied:
            continue
        if write.method == "POST":
            if write.object_id in active:
                violations.append(
                    f"double onboard: request #{write.seq} created {write.object_id} again while active"
                )
            active.add(write.object_id)
        elif write.method == "DELETE":
            active.discard(write.object_id)
    return violations


def check_no_in_scope_offboard(writes: Iterable[Write], cycles: Sequence[CycleWindow]) -> list[str]:
    """Invariant 3: no applied DELETE for an object in scope at the start of the cycle that sent it.

    A DELETE outside every cycle's window cannot be attributed and is a violation too.
    """
    violations = []
    for write in writes:
        if write.method != "DELETE" or not write.applied:
            continue
        cycle = next((c for c in cycles if c.started <= write.at <= c.ended), None)
        if cycle is None:
            violations.append(f"offboard: request #{write.seq} for {write.object_id} outside every cycle")
        elif write.object_id in cycle.in_scope:
            violations.append(
                f"in-scope offboard: request #{write.seq} in cycle {cycle.index} deleted {write.object_id}, "
                "in scope at the cycle's start"
            )
    return violations


def check_writes_logged(writes: Iterable[Write], operations: Sequence[Operation]) -> list[str]:
    """Invariant 4: each applied write was made under an operation of ours for that object with a matching
    action (the latest one recorded before the write), and no operation is left pending."""
    by_object: dict[str, list[Operation]] = {}
    for op in sorted(operations, key=lambda o: o.created_at):
        by_object.setdefault(op.object_id, []).append(op)
    violations = []
    for write in writes:
        if not write.applied or write.method not in COMPATIBLE:
            continue
        before = [
            op for op in by_object.get(write.object_id, []) if op.created_at <= write.at + CLOCK_TOLERANCE_S
        ]
        if not before:
            violations.append(
                f"unlogged write: request #{write.seq} {write.method} {write.object_id} has no operation"
            )
        elif before[-1].action not in COMPATIBLE[write.method]:
            violations.append(
                f"unlogged write: request #{write.seq} {write.method} {write.object_id} was made under no "
                f"matching operation (latest: {before[-1].action})"
            )
    for op in operations:
        if op.outcome == "pending" or op.settled_at is None:
            violations.append(f"pending operation: {op.action} {op.object_id} never settled")
    return violations


# --- the soak ------------------------------------------------------------------------------------------


@dataclass
class SoakOptions:
    cycles: int = 200
    seed: int = 7
    users: int = 300
    kill_share: float = 0.2
    churn: int = 12
    """Directory changes per cycle, at most (drawn 1..churn)."""
    verbose: bool = False


@dataclass
class SoakReport:
    cycles: int = 0
    kills: int = 0
    planned_kills: int = 0
    """Cycles drawn to be killed; a cycle that finishes before its k-th write is not."""
    exit_codes: Counter[int] = field(default_factory=Counter)
    changes: Counter[str] = field(default_factory=Counter)
    operations: Counter[str] = field(default_factory=Counter)
    faults: Counter[str] = field(default_factory=Counter)
    requests: Counter[str] = field(default_factory=Counter)
    violations: list[str] = field(default_factory=list)
    duration_s: float = 0.0

    def render(self) -> str:
        def counts(counter: Counter[str] | Counter[int]) -> str:
            return ", ".join(f"{k}={v}" for k, v in sorted(counter.items(), key=str)) or "none"

        lines = [
            f"soak: {self.cycles} cycles (+2 clean), {self.kills} kill -9 ({self.planned_kills} drawn), "
            f"{self.duration_s:.0f} s",
            f"  exit codes:  {counts(self.exit_codes)}",
            f"  churn:       {counts(self.changes)}",
            f"  operations:  {sum(self.operations.values())} ({counts(self.operations)})",
            f"  faults:      {sum(self.faults.values())} ({counts(self.faults)})",
            f"  requests:    {counts(self.requests)}",
            f"  violations:  {len(self.violations)}",
        ]
        lines.extend(f"    - {v}" for v in self.violations)
        return "\n".join(lines)


def remote_agents(smartcomm: SmartCommEmulator) -> dict[str, AgentKey]:
    return {
        str(a["user_object_id"]): (
            str(a["phone_number"]),
            None if a["upn"] is None else str(a["upn"]),
            None if a["consistency_id"] is None else str(a["consistency_id"]),
            str(a["tenant_id"]),
        )
        for a in smartcomm.agents()
        if a["status"] == "active"
    }


def emulator_writes(smartcomm: SmartCommEmulator, wall_offset: float) -> list[Write]:
    writes = []
    for r in smartcomm.requests:
        if r.method not in WRITE_METHODS or AGENTS_MARK not in r.path:
            continue
        if r.method == "POST":
            body = r.body if isinstance(r.body, dict) else {}
            object_id = str(body.get("user_object_id", ""))
        else:
            if r.query.get("key_id", "user_object_id") != "user_object_id":
                continue  # syncd writes by object ID; any other key would be someone else's request
            object_id = r.path.rsplit("/", 1)[-1]
        writes.append(Write(r.seq, r.at + wall_offset, r.method, object_id, r.applied, r.status, r.fault))
    return writes


def our_operations(database: Path) -> list[Operation]:
    with Store(f"sqlite:///{database}") as store:
        records = store.operations(limit=10**9)
    return [
        Operation(r.object_id, r.action.value, r.outcome.value, r.created_at, r.settled_at) for r in records
    ]


def write_config(path: Path, graph: GraphServers, smartcomm: RunningServer, group: str) -> None:
    path.write_text(
        f"""
[database]
url = "sqlite:///{path.parent / "syncd.db"}"

[graph]
tenant_id = "{DEFAULT_TENANT_ID}"
client_id = "{_graph_default("DEFAULT_CLIENT_ID")}"
client_secret = "{_graph_default("DEFAULT_CLIENT_SECRET")}"
authority_host = "{graph.authority_host}"
base_url = "{graph.graph_url}"
group_ids = ["{group}"]
ca_bundle = "{graph.ca_path}"
retry_delay_s = 0

[smartcomm]
base_url = "{smartcomm.base_url}"
customer_id = {_smartcomm_default("DEFAULT_CUSTOMER_ID")}
username = "{_smartcomm_default("DEFAULT_USERNAME")}"
password = "{_smartcomm_default("DEFAULT_PASSWORD")}"
ca_bundle = "{smartcomm.ca_path}"
backoff_initial_s = 0.05
backoff_max_s = 0.5

[sync]
max_offboard = 100000
concurrency = 4
retry_initial = 0.01
retry_max = 0.01
quarantine_failure_share = 1

[log]
format = "json"
""",
        encoding="utf-8",
    )


def _graph_default(name: str) -> object:
    from syncd.emulators import graph

    return getattr(graph, name)


def _smartcomm_default(name: str) -> object:
    from syncd.emulators import smartcomm

    return getattr(smartcomm, name)


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYNCD_")}
    env["PYTHONPATH"] = str(ROOT)
    return env


@contextmanager
def _emulators(
    workdir: Path, seed: int
) -> Iterator[tuple[GraphEmulator, GraphServers, SmartCommEmulator, RunningServer]]:
    graph = GraphEmulator(seed=seed)
    smartcomm = SmartCommEmulator(seed=seed, registered_tenants=[DEFAULT_TENANT_ID])
    ca = TestCA(workdir / "ca")
    with ExitStack() as stack:
        graph_server = stack.enter_context(serve_graph_https(graph, ca=ca))
        sc_server = stack.enter_context(serve_https(smartcomm.app, ca=ca))
        yield graph, graph_server, smartcomm, sc_server


class Soak:
    def __init__(self, options: SoakOptions, workdir: Path) -> None:
        self.options = options
        self.workdir = workdir
        # Reproducible, not secret; a string seed, so it never repeats the tenant builder's draws.
        self.rng = random.Random(f"soak:{options.seed}")
        self.report = SoakReport()
        self.windows: list[CycleWindow] = []
        self.config = workdir / "syncd.toml"
        self._expected: dict[str, AgentKey] = {}
        """The agents expected at the start of the previous cycle."""

    def run(self) -> SoakReport:
        started = time.monotonic()
        with _emulators(self.workdir, self.options.seed) as (graph, graph_server, smartcomm, sc_server):
            self.graph, self.smartcomm = graph, smartcomm
            directory = Directory(graph, self.rng, self.options.users, self.options.seed, smartcomm)
            write_config(self.config, graph_server, sc_server, directory.top)
            # The monotonic clock of the emulators' logs, turned into wall-clock time like our database's.
            wall_offset = time.time() - time.monotonic()
            for index in range(self.options.cycles):
                if index > 0:
                    directory.churn(self.rng.randint(1, self.options.churn), self.report.changes)
                self._set_faults()
                kill = index > 0 and self.rng.random() < self.options.kill_share
                self._cycle(index, directory, kill=kill)
            self._clear_faults()
            self._cycle(self.options.cycles, directory, kill=False)
            self._cycle(self.options.cycles + 1, directory, kill=False, full=True)
            self._check(directory, wall_offset)
        self.report.duration_s = time.monotonic() - started
        return self.report

    def _set_faults(self) -> None:
        rng = self.rng
        self.smartcomm.faults = Faults(
            latency_s=rng.choice([0.0, 0.005, 0.02]),
            error_rate=rng.uniform(0.0, 0.08),
            throttle_rate=rng.uniform(0.0, 0.04),
            retry_after_s=1.0,
            drop_rate=rng.uniform(0.0, 0.05),
        )
        self.graph.faults = Faults(
            latency_s=rng.choice([0.0, 0.002]),
            error_rate=rng.uniform(0.0, 0.1),
            throttle_rate=rng.uniform(0.0, 0.05),
            retry_after_s=1.0,
            drop_rate=rng.uniform(0.0, 0.05),
        )
        self.smartcomm.token_lifetime_s = rng.uniform(2.0, 5.0)
        self.graph.token_lifetime_s = rng.uniform(2.0, 5.0)
        # Writes applied whose answer is lost, and late answers: the cases only a scripted fault gives.
        for _ in range(rng.randint(0, 2)):
            method = rng.choice(["POST", "PATCH", "DELETE"])
            self.smartcomm.inject(ScriptedFault("drop_after", method=method, path_contains=AGENTS_MARK))
        if rng.random() < 0.3:
            self.smartcomm.inject(
                ScriptedFault("delay_after", method="POST", path_contains=AGENTS_MARK, delay_s=0.3)
            )

    def _clear_faults(self) -> None:
        self.smartcomm.faults = Faults()
        self.graph.faults = Faults()
        self.smartcomm.token_lifetime_s = 86400.0
        self.graph.token_lifetime_s = 3600.0
        # Scripted faults not consumed yet must not hit the clean cycles.
        with self.smartcomm._lock:
            self.smartcomm._injector._scripted.clear()

    def _cycle(self, index: int, directory: Directory, *, kill: bool, full: bool = False) -> None:
        expected = directory.expected()
        in_scope = frozenset(expected)
        changes = sum(
            expected.get(key) != self._expected.get(key) for key in expected.keys() | self._expected.keys()
        )
        self._expected = expected
        args = [sys.executable, "-m", "syncd", "--config", str(self.config), "sync", "--json"]
        if full:
            args.append("--full")
        seen = len(self.smartcomm.requests)
        started = time.time()
        process = subprocess.Popen(
            args,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=_env(),
            cwd=self.workdir,
        )
        killed = False
        if kill:
            # Longer latency, so writes are in flight when it dies: it is killed the moment the k-th write
            # of this process arrives (k no more than the people whose agent should change, so it comes).
            self.smartcomm.faults.latency_s = self.rng.uniform(0.05, 0.15)
            nth = self.rng.randint(1, max(1, min(3, changes)))
            self.report.planned_kills += 1
            deadline = time.monotonic() + 60
            while process.poll() is None and time.monotonic() < deadline:
                if (
                    sum(
                        r.method in WRITE_METHODS and AGENTS_MARK in r.path
                        for r in self.smartcomm.requests[seen:]
                    )
                    >= nth
                ):
                    os.kill(process.pid, signal.SIGKILL)
                    killed = True
                    self.report.kills += 1
                    break
                time.sleep(0.02)  # each look copies the whole log: not too often
        try:
            stdout, stderr = process.communicate(timeout=300)
        except subprocess.TimeoutExpired:
            process.kill()
            stdout, stderr = process.communicate()
            self.report.violations.append(f"cycle {index}: syncd did not finish in 300 s")
        ended = time.time()
        code = process.returncode
        self.report.exit_codes[code] += 1
        if index < self.options.cycles:
            self.report.cycles += 1
        self.windows.append(CycleWindow(index, started, ended, in_scope, killed))
        if self.options.verbose:
            print(f"cycle {index}: exit {code}{' (killed)' if killed else ''}", file=sys.stderr, flush=True)
        if not killed and code not in (0, 1):
            # 2 (configuration) or 3 (a guard) never belongs in this soak; a traceback is a bug.
            self.report.violations.append(f"cycle {index}: exit {code}: {stderr.decode()[-2000:]}")
        if index >= self.options.cycles and code != 0:
            self.report.violations.append(
                f"clean cycle {index}: exit {code}: {stdout.decode()[-2000:]} {stderr.decode()[-1000:]}"
            )

    def _check(self, directory: Directory, wall_offset: float) -> None:
        report = self.report
        writes = emulator_writes(self.smartcomm, wall_offset)
        operations = our_operations(self.workdir / "syncd.db")
        report.violations += check_converged(remote_agents(self.smartcomm), directory.expected())
        report.violations += check_no_double_onboard(writes)
        report.violations += check_no_in_scope_offboard(writes, self.windows)
        report.violations += check_writes_logged(writes, operations)
        report.operations.update(f"{op.action}/{op.outcome}" for op in operations)
        for emulator_name, requests in (
            ("smartcomm", self.smartcomm.requests),
            ("graph", self.graph.requests),
        ):
            report.requests[emulator_name] = len(requests)
            report.faults.update(
                f"{emulator_name}:{r.fault}" for r in requests if r.fault not in (None, "latency")
            )
        # Tokens live 2-5 s during the faults: each login after the first of a process is a renewal.
        report.requests["smartcomm_logins"] = sum(1 for r in self.smartcomm.requests if r.path == AUTH_PATH)
        report.requests["graph_token_requests"] = sum(1 for r in self.graph.requests if "/oauth2/" in r.path)
        report.requests["unauthorized_401"] = sum(1 for r in self.smartcomm.requests if r.status == 401)


def run_soak(options: SoakOptions, workdir: Path | None = None) -> SoakReport:
    if workdir is not None:
        return Soak(options, workdir).run()
    with tempfile.TemporaryDirectory(prefix="syncd-soak-") as tmp:
        return Soak(options, Path(tmp)).run()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--cycles", type=int, default=200)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--users", type=int, default=300)
    parser.add_argument("--kill-share", type=float, default=0.2)
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)
    options = SoakOptions(
        cycles=args.cycles, seed=args.seed, users=args.users, kill_share=args.kill_share, verbose=args.verbose
    )
    report = run_soak(options)
    print(f"seed {args.seed}")
    print(report.render())
    return 1 if report.violations else 0


if __name__ == "__main__":
    sys.exit(main())
