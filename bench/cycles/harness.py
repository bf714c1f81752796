"""The harness of bench/sync_cycles.py (bench/scale.py and bench/rate_limit.py use it too): one size's
emulator children, the syncd configuration pointing at them, the scenarios (each in a fresh worker, its
requests tallied per cycle), the baselines and the floor.

The machines these run on are shared, and their speed moves by a fifth or more within the hour. So the
measurements that are cheap to repeat are repeated (`--repeats`, each run in a fresh process) and the least
of each is kept, on both sides of a target: the full no-change scenario, the floor's parts, the read
baseline and the bare write loop; the initial sync is repeated `--initial-repeats` times, each run on an
emptied database and SmartCommunicator account and followed by its own bare write loop. Every run's
figures are kept in the JSON, and the report prints them."""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from cycles.common import COMMAND, FLOORS, GRAPH_READ, ROOT, BenchError, Json, least
from cycles.emulators import Child, control, graph_location
from cycles.report import describe_cycle
from cycles.tallies import graph_kind, graph_reads, logged_events, smartcomm_kind, tally, writes_of

WORKER_TIMEOUT_S = 4 * 3600.0


def best_of(runs: Sequence[Json], by: str) -> Json:
    """A scenario run more than once, each in a fresh worker: cycle i of the result is the one with the least
    `by` ("cpu_s" or "wall_s") among the runs' cycles i, the worker's own figures are those of the run whose
    first cycle that is, and "repeats" lists, per cycle, every run's CPU, wall, apply-phase CPU and writes."""
    if not runs:
        raise BenchError("no scenario runs to take the best of")
    out = dict(min(runs, key=lambda run: run["cycles"][0][by]))
    count = len(out["cycles"])
    out["cycles"] = [min((run["cycles"][i] for run in runs), key=lambda c: c[by]) for i in range(count)]
    out["best_by"] = by
    out["repeats"] = [
        {
            "cpu_s": [run["cycles"][i]["cpu_s"] for run in runs],
            "wall_s": [run["cycles"][i]["wall_s"] for run in runs],
            "apply_cpu_s": [run["cycles"][i]["phase_cpu_s"].get("apply") for run in runs],
            "writes": [sum(run["cycles"][i]["writes"].values()) for run in runs],
        }
        for i in range(count)
    ]
    return out


def run_name(name: str, run: int, times: int) -> str:
    """A repeated scenario's name for run `run` (from 0) of `times`: "b (full, no change), run 2 of 3"."""
    return f"{name}, run {run + 1} of {times}" if times > 1 else name


class Harness:
    """One size's emulators, configuration and scenarios."""

    def __init__(self, args: argparse.Namespace, users: int, directory: Path) -> None:
        self.args = args
        self.users = users
        self.directory = directory
        self.latency_s = args.latency_ms / 1000
        self.env = {**os.environ, "PYTHONPATH": str(ROOT)}
        self.children: list[Child] = []
        self.registries: Json = {}

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
# The churn scenario patches a third of 1% of the tenant: 3,334 at 1,000,000, over the default guards.
max_offboard = 1000000
max_update = 1000000
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
            [str(COMMAND), "--worker", "cycles", "--config", str(config), "--cycles", ",".join(cycles)],
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
        self.registries = {
            "registered_tenants": [graph["tenant_id"]],
            "ten_dlc_numbers": graph.pop("ten_dlc_numbers"),
        }
        control(smartcomm, "PUT", "/registries", self.registries)
        config = self.config(graph, smartcomm)
        if not baselines:
            return self.scenarios(config, graph, smartcomm) | {"tenant_built_s": graph["built_s"]}
        spare = self.start(
            "SmartCommunicator (write baseline)",
            ["--serve", "smartcomm", "--dir", str(self.directory / "sc2-ca")],
        )
        # The bare-aiohttp baseline measures HTTP, not registries: every tenant and number goes.
        control(spare, "PUT", "/registries", {"registered_tenants": None, "ten_dlc_numbers": None})

        posts, repeats = min(n, 5000), args.repeats
        print(
            f"  baseline: bare aiohttp, {posts:,} POSTs at concurrency {args.concurrency},"
            f" {repeats} runs (the least kept) ...",
            flush=True,
        )
        loops: list[Json] = []
        for _ in range(repeats):
            self.empty_spare(spare)  # the loop's numbers would clash with the run before's
            loops.append(self.write_loop("write baseline", spare, posts))
            print(
                f"    {loops[-1]['cpu_per_post_s'] * 1e3:.3f} ms CPU per POST, "
                f"wall {loops[-1]['wall_s']:.2f} s, statuses {loops[-1]['statuses']}",
                flush=True,
            )
        write_baseline = least(loops, "cpu_per_post_s", "cpu_s", "wall_s")
        print(
            "  baseline: http.client + json.loads over the member pages"
            f" ({repeats + 1} runs, the first dropped, the least of the rest kept) ...",
            flush=True,
        )
        where = graph_location(graph)
        reads: list[Json] = []
        for _ in range(repeats + 1):  # the first warms the emulator's page cache and is dropped
            control(graph, "DELETE", "/requests")
            reads.append(
                self.python("read baseline", [str(GRAPH_READ), "--child", "baseline", "--where", where])
            )
            reads[-1]["graph"] = tally(control(graph, "GET", "/requests"), graph_kind)
            print(
                f"    {reads[-1]['cpu_s']:.3f} s CPU, wall {reads[-1]['wall_s']:.2f} s, "
                f"{reads[-1]['users']:,} users, Graph {reads[-1]['graph']['by_kind']}",
                flush=True,
            )
        read_baseline = least(reads[1:], "cpu_s", "wall_s")

        result = self.scenarios(config, graph, smartcomm, spare=spare)
        return result | {
            "tenant_built_s": graph["built_s"],
            "write_baseline": write_baseline,
            "read_baseline": read_baseline,
        }

    def floor(self, smartcomm: Json) -> Json:
        """The floor of a full cycle's reads besides the member pages (bench/floors.py), each part in a fresh
        process, `--repeats` + 1 times (the first dropped, the least of the rest kept): the agents list and
        our member rows."""
        where = json.dumps(
            {k: smartcomm[k] for k in ("base_url", "ca_path", "customer_id", "username", "password")}
        )
        lists: list[Json] = []
        rows_runs: list[Json] = []
        for _ in range(self.args.repeats + 1):  # the first warms caches and is dropped
            lists.append(
                self.python("floor: agents list", [str(FLOORS), "--child", "agents-list", "--where", where])
            )
            rows_runs.append(
                self.python(
                    "floor: member rows",
                    [str(FLOORS), "--child", "sqlite", "--db", str(self.directory / "syncd.db")],
                )
            )
        parts: Json = {"agents_list": least(lists[1:], "cpu_s"), "member_rows": least(rows_runs[1:], "cpu_s")}
        agents, rows = parts["agents_list"], parts["member_rows"]
        print(
            f"    floor: agents list {agents['cpu_s']:.3f} s CPU ({agents['items']:,} agents),"
            f" member rows {rows['cpu_s']:.3f} s CPU ({rows['items']:,} rows)",
            flush=True,
        )
        return parts

    def write_loop(self, what: str, spare: Json, posts: int) -> Json:
        """The bare aiohttp write loop in a fresh worker (`--worker write-baseline`): `posts` new agents
        POSTed to the `spare` SmartCommunicator emulator at the configured concurrency."""
        return self.python(
            what,
            [
                str(COMMAND), "--worker", "write-baseline", "--where", json.dumps(spare),
                "--posts", str(posts), "--concurrency", str(self.args.concurrency),
            ],
        )  # fmt: skip

    def empty_spare(self, spare: Json) -> None:
        """The write baseline's emulator without agents (a loop's numbers would clash with the last's)."""
        control(spare, "POST", "/reset")
        # /reset restores the registries: open them (else every POST gets 400) and set the latency again.
        control(spare, "PUT", "/registries", {"registered_tenants": None, "ten_dlc_numbers": None})
        control(spare, "PUT", "/faults", {"latency_s": self.latency_s})

    def empty_account(self, smartcomm: Json) -> None:
        """Before an initial sync's next run: no agents in the account (its registries and latency as
        set up), and no database."""
        control(smartcomm, "POST", "/reset")
        control(smartcomm, "PUT", "/registries", self.registries)
        control(smartcomm, "PUT", "/faults", {"latency_s": self.latency_s})
        for suffix in ("", "-wal", "-shm", "-journal"):
            (self.directory / f"syncd.db{suffix}").unlink(missing_ok=True)

    def bare_writes(self, spare: Json, posts: int) -> Json:
        """The bare aiohttp loop for `posts` POSTs (the initial sync's number of writes): its wall."""
        print(f"  baseline: bare aiohttp, {posts:,} POSTs (the initial sync's writes) ...", flush=True)
        self.empty_spare(spare)
        out = self.write_loop("bare writes", spare, posts)
        print(f"    wall {out['wall_s']:.2f} s, statuses {out['statuses']}", flush=True)
        return out

    def scenarios(self, config: Path, graph: Json, smartcomm: Json, *, spare: Json | None = None) -> Json:
        """Scenarios a-d; with a `spare` SmartCommunicator emulator, the floor and the bare loop of the
        initial sync's writes after scenario a."""
        args, n = self.args, self.users
        churn_count = math.ceil(args.churn * n)
        scenarios: Json = {}
        extra: Json = {}
        initial_runs: list[Json] = []
        bare_runs: list[Json] = []
        times = args.initial_repeats
        for run in range(times):
            if run:
                self.empty_account(smartcomm)
            name = run_name("a (initial sync)", run, times)
            initial_runs.append(self.scenario(name, config, ["full"], graph, smartcomm))
            if spare is not None:  # right after it: the machine's speed drifts within minutes
                writes = sum(initial_runs[-1]["cycles"][0]["writes"].values())
                bare_runs.append(self.bare_writes(spare, max(writes, 1)))
        scenarios["a_initial"] = best_of(initial_runs, "wall_s")
        if spare is not None:
            extra["bare_writes"] = least(bare_runs, "wall_s", "cpu_s", "cpu_per_post_s")
            extra["floor"] = self.floor(smartcomm)
        # Twice in one worker: the first is a fresh process (a `syncd sync --full`), the second what a
        # long-lived daemon's next full cycle costs (imports done, numbers already parsed once).
        times = args.repeats
        scenarios["b_full_nochange"] = best_of(
            [
                self.scenario(
                    run_name("b (full, no change)", run, times), config, ["full", "full"], graph, smartcomm
                )
                for run in range(times)
            ],
            "cpu_s",
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
