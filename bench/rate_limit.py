"""Benchmark (run by hand, never by the test suite): an initial sync into a SmartCommunicator account with a
rate limit, with the adaptive write concurrency and with a fixed one.

    .venv/bin/python bench/rate_limit.py [--onboardings 5000] [--limits 20 200] [--concurrency 32]
                                         [--latency-ms 20] [--json-out bench/results/rate_limit.json]

The Graph emulator (one group of --onboardings users, each with a valid number: every one is an onboarding)
and the SmartCommunicator emulator run in child processes of their own over HTTPS, both answering after
--latency-ms (logins excepted). For each limit L, the SmartCommunicator emulator's token bucket is set to
L requests per second with a burst of L (one second's worth; `PUT /_emulator/rate_limit`), and the account
is emptied; then one initial sync (`Engine.run_cycle(full=True)`, sync.concurrency = --concurrency) runs
in a fresh worker process on a fresh SQLite file, twice: with the adaptive concurrency (the default) and
with it off (`Engine(write_pacing=None)`: a fixed --concurrency, as before).

Figures per run, from what the emulator received during the cycle (its request log; the agents-list GET
before the writes excluded): the agent requests and how many were answered 429, the writes accepted, the
throughput (accepted writes / seconds from the first agent request to the last accepted one), the users
onboarded (applied POSTs) and onboarded more than once, the cycle's exit code, failures and error, and the
concurrency it ended at. Targets (adaptive run; the fixed run is printed beside, not judged):
  - throughput >= 0.9 x L;
  - at most 2% of the agent requests answered 429;
  - every user onboarded, none twice.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

from cycles.common import ROOT, BenchError, interrupted, wait_for_parent
from cycles.emulators import Child, control
from cycles.harness import Harness
from cycles.tallies import smartcomm_kind

DEFAULT_JSON_OUT = "bench/results/rate_limit.json"
Json = dict[str, Any]


# --- children and workers ----------------------------------------------------------------------------------


def serve_graph(users: int, directory: Path) -> None:
    """Child: a Graph emulator with one group of `users` users, each with a valid businessPhones number."""
    import base64

    from syncd.emulators.graph import (
        DEFAULT_CLIENT_ID,
        DEFAULT_CLIENT_SECRET,
        DEFAULT_TENANT_ID,
        GraphEmulator,
        serve_graph_https,
    )
    from syncd.emulators.server import TestCA
    from syncd.emulators.tenant import DOMAIN, _format, _number

    emulator = GraphEmulator()
    ids = emulator.add_users(
        {
            "upn": f"rate.limit{i}@{DOMAIN}",
            "display_name": f"Rate Limit {i}",
            "business_phones": [_format(_number(i), 1)],
            "on_premises_immutable_id": base64.b64encode(uuid.UUID(int=i + 1).bytes_le).decode(),
        }
        for i in range(users)
    )
    group = emulator.add_group(display_name="SmartCommunicator agents")
    emulator.add_members(group, ids)
    with serve_graph_https(emulator, ca=TestCA(directory)) as server:
        info = {
            "authority_host": server.authority_host,
            "base_url": server.base_url,
            "ca_path": str(server.ca_path),
            "tenant_id": DEFAULT_TENANT_ID,
            "client_id": DEFAULT_CLIENT_ID,
            "secret": DEFAULT_CLIENT_SECRET,
            "group_id": group,
        }
        print(json.dumps(info), flush=True)
        wait_for_parent()


def cycle_worker(config: str, adaptive: bool) -> Json:
    """Worker: one full cycle in this fresh process, adaptive or at a fixed concurrency."""
    import structlog

    from syncd.config.loader import load_settings
    from syncd.config.logs import configure_logging
    from syncd.core.pacing import PacingTuning
    from syncd.cycle.engine import Engine
    from syncd.store import Store

    configure_logging(level="info", json=True)  # info: the pace events are counted
    settings = load_settings(Path(config), {})
    store = Store(settings.database.url)
    try:
        store.upgrade()
        engine = Engine(settings, store, write_pacing=PacingTuning() if adaptive else None)
        with structlog.testing.capture_logs() as logs:  # the events are counted, not printed
            t0, c0 = time.monotonic(), time.process_time()
            result = asyncio.run(engine.run_cycle(full=True, trigger="bench"))
            t1, c1 = time.monotonic(), time.process_time()
        asyncio.run(engine.aclose())
    finally:
        store.close()
    events = Counter(str(e["event"]) for e in logs)
    pace = [e for e in logs if e["event"] == "sync.write_pace"]
    return {
        "t0": t0,
        "t1": t1,
        "wall_s": t1 - t0,
        "cpu_s": c1 - c0,
        "exit_code": result.exit_code,
        "error": result.error,
        "outcomes": result.outcomes,
        "failures": len(result.failures),
        "failure_kinds": dict(Counter(f.category for f in result.failures)),
        "write_concurrency": result.write_concurrency,
        "lowest_concurrency": pace[0]["lowest"] if pace else result.write_concurrency,
        "events": {k: v for k, v in sorted(events.items()) if "pace" in k or "retry" in k or "fail" in k},
    }


# --- the harness -------------------------------------------------------------------------------------------


def run_one(harness: Harness, graph: Json, smartcomm: Json, limit: int, adaptive: bool, n: int) -> Json:
    args = harness.args
    label = f"{'adaptive' if adaptive else f'fixed {args.concurrency}'} @ {limit} req/s"
    print(f"  {label}: {n:,} onboardings ...", flush=True)
    control(smartcomm, "POST", "/reset")  # no agents, an empty log, no faults, no rate limit
    # This bench measures pacing, not registries: every tenant and number counts as registered.
    control(smartcomm, "PUT", "/registries", {"registered_tenants": None, "ten_dlc_numbers": None})
    control(smartcomm, "PUT", "/faults", {"latency_s": harness.latency_s})
    control(smartcomm, "PUT", "/rate_limit", {"rate_per_s": limit, "burst": limit})
    directory = harness.directory / f"{limit}-{'adaptive' if adaptive else 'fixed'}"
    directory.mkdir(parents=True)
    harness.directory = directory  # config() writes syncd.toml and the database here
    config = harness.config(graph, smartcomm)
    out = harness.python(
        label,
        [__file__, "--worker", "--config", str(config), *([] if adaptive else ["--fixed"])],
    )
    log: list[Json] = control(smartcomm, "GET", "/requests")
    agents: list[Json] = control(smartcomm, "GET", "/agents")
    during = [
        r for r in log if out["t0"] <= r["at"] <= out["t1"] and smartcomm_kind(r) not in ("login", "list")
    ]
    throttled = sum(1 for r in during if r["status"] == 429)
    accepted = [r for r in during if r["status"] is not None and r["status"] < 400]
    writes = [r for r in accepted if r["method"] in ("POST", "PATCH", "DELETE")]
    span = (writes[-1]["at"] - during[0]["at"]) if writes else 0.0
    applied = Counter(
        str(r["body"]["user_object_id"])
        for r in log
        if r["method"] == "POST" and r["applied"] and isinstance(r["body"], dict)
    )
    figures = {
        "limit_per_s": limit,
        "adaptive": adaptive,
        "requests": len(during),
        "throttled": throttled,
        "throttled_share": throttled / len(during) if during else 0.0,
        "accepted_writes": len(writes),
        "span_s": span,
        "throughput_per_s": len(writes) / span if span > 0 else 0.0,
        "onboarded": len(applied),
        "onboarded_twice": sum(1 for c in applied.values() if c > 1),
        "active_agents": sum(1 for a in agents if a["status"] == "active"),
        "statuses": dict(Counter(str(r["status"]) for r in during)),
    }
    kept = ("wall_s", "cpu_s", "exit_code", "error", "outcomes", "failures", "failure_kinds")
    figures |= {k: out[k] for k in (*kept, "write_concurrency", "lowest_concurrency", "events")}
    print(
        f"    {figures['throughput_per_s']:.1f} writes/s, {throttled}/{len(during)} answered 429"
        f" ({figures['throttled_share']:.1%}), onboarded {len(applied):,}"
        f" (twice: {figures['onboarded_twice']}), exit {out['exit_code']}, wall {out['wall_s']:.1f} s,"
        f" ended at concurrency {out['write_concurrency']}"
        + (f", error: {out['error']}" if out["error"] else ""),
        flush=True,
    )
    return figures


def targets(runs: list[Json], n: int) -> list[Json]:
    rows: list[Json] = []
    by = {(r["limit_per_s"], r["adaptive"]): r for r in runs}
    for limit in sorted({r["limit_per_s"] for r in runs}):
        a, f = by[(limit, True)], by.get((limit, False))

        def row(
            name: str,
            figure: float,
            bound: float,
            passed: bool,
            fixed: float | None,
            unit: str,
            limit: int = limit,
        ) -> None:
            ratio = figure / bound if bound else (0.0 if figure == 0 else float("inf"))
            rows.append(
                {"target": f"{limit} req/s: {name}", "figure": figure, "bound": bound, "ratio": ratio,
                 "pass": passed, "fixed": fixed, "unit": unit}
            )  # fmt: skip

        row(
            "throughput >= 0.9 x limit",
            a["throughput_per_s"],
            0.9 * limit,
            a["throughput_per_s"] >= 0.9 * limit,
            None if f is None else f["throughput_per_s"],
            "req/s",
        )
        row(
            "429 answers <= 2% of requests",
            100 * a["throttled_share"],
            2.0,
            a["throttled_share"] <= 0.02,
            None if f is None else 100 * f["throttled_share"],
            "%",
        )
        row(
            f"users onboarded == {n:,}",
            a["onboarded"],
            n,
            a["onboarded"] == n,
            None if f is None else f["onboarded"],
            "users",
        )
        row(
            "users onboarded twice == 0",
            a["onboarded_twice"],
            0,
            a["onboarded_twice"] == 0,
            None if f is None else f["onboarded_twice"],
            "users",
        )
    return rows


def print_report(runs: list[Json], rows: list[Json], args: argparse.Namespace) -> None:
    print(
        f"\n--- rate limits: {args.onboardings:,} onboardings, sync.concurrency {args.concurrency},"
        f" latency {args.latency_ms:g} ms, burst = one second's worth ---"
    )
    print(f"{'run':<22} {'req/s':>8} {'429s':>7} {'share':>7} {'onboarded':>9} {'twice':>5} {'wall s':>7}"
          f" {'CPU s':>6} {'exit':>4} {'conc.':>5}  pace events / error")  # fmt: skip
    for r in runs:
        name = f"{r['limit_per_s']} req/s " + ("adaptive" if r["adaptive"] else f"fixed {args.concurrency}")
        events = ", ".join(f"{k} {v}" for k, v in r["events"].items())
        print(
            f"{name:<22} {r['throughput_per_s']:>8.1f} {r['throttled']:>7} {r['throttled_share']:>7.1%}"
            f" {r['onboarded']:>9,} {r['onboarded_twice']:>5} {r['wall_s']:>7.1f} {r['cpu_s']:>6.1f}"
            f" {r['exit_code']:>4} {r['write_concurrency'] if r['write_concurrency'] is not None else '-':>5}"
            f"  {events}{(' | ' + r['error']) if r['error'] else ''}"
        )
    print(f"\n{'target (adaptive)':<48} {'figure':>10} {'limit':>10} {'unit':<6} {'fig/lim':>7}  result"
          f"  {'fixed ' + str(args.concurrency):>10}")  # fmt: skip
    for r in rows:
        fixed = "" if r["fixed"] is None else f"{r['fixed']:>10.2f}"
        print(
            f"{r['target']:<48} {r['figure']:>10.2f} {r['bound']:>10.2f} {r['unit']:<6} {r['ratio']:>7.2f}  "
            f"{'PASS' if r['pass'] else 'FAIL'}  {fixed}"
        )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--onboardings", type=int, default=5000)
    parser.add_argument("--limits", type=int, nargs="+", default=[20, 200])
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--no-fixed", action="store_true", help="skip the fixed-concurrency runs")
    parser.add_argument("--json-out", default=DEFAULT_JSON_OUT)
    parser.add_argument("--serve-graph", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--fixed", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--config", default="", help=argparse.SUPPRESS)
    parser.add_argument("--dir", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.serve_graph:
        with contextlib.suppress(KeyboardInterrupt):
            serve_graph(args.onboardings, Path(args.dir))
        return 0
    if args.worker:
        print(json.dumps(cycle_worker(args.config, adaptive=not args.fixed)))
        return 0

    signal.signal(signal.SIGTERM, interrupted)
    with tempfile.TemporaryDirectory(prefix="syncd-bench-rate-") as tmp:
        harness = Harness(args, args.onboardings, Path(tmp))
        try:
            serve = [
                "--serve-graph",
                "--onboardings",
                str(args.onboardings),
                "--dir",
                str(Path(tmp) / "graph-ca"),
            ]
            graph_child = Child("Graph", serve, harness.env, script=Path(__file__))  # this script's Graph
            harness.children.append(graph_child)
            graph = graph_child.ready()
            smartcomm = harness.start(
                "SmartCommunicator", ["--serve", "smartcomm", "--dir", str(Path(tmp) / "sc")]
            )
            control(graph, "PUT", "/faults", {"latency_s": harness.latency_s})
            print(f"=== {args.onboardings:,} onboardings against rate limits {args.limits} ===", flush=True)
            runs = []
            base = harness.directory
            for limit in args.limits:
                for adaptive in (True, False) if not args.no_fixed else (True,):
                    harness.directory = base
                    runs.append(run_one(harness, graph, smartcomm, limit, adaptive, args.onboardings))
        except BenchError as exc:
            print(f"\nrate_limit: {exc}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            print("\nrate_limit: interrupted; emulators stopped", file=sys.stderr)
            return 130
        finally:
            harness.stop()
    rows = targets(runs, args.onboardings)
    print_report(runs, rows, args)
    out = Path(args.json_out)
    out = out if out.is_absolute() else ROOT / out
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"args": vars(args), "runs": runs, "targets": rows}, indent=2, default=str))
    print(f"figures written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
