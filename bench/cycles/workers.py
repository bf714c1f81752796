"""The worker processes of bench/sync_cycles.py, each a fresh process measured on its own (started as
`sync_cycles.py --worker cycles|write-baseline`; each prints its figures as one JSON line): syncd's
`Engine.run_cycle`, and the bare aiohttp write loop the writes are held to."""

from __future__ import annotations

import asyncio
import contextlib
import cProfile
import os
import ssl
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

from cycles import memory
from cycles.common import Json, peak_rss_mb, ru_maxrss_mb
from cycles.gcpauses import GcPauses


def run_cycles_worker(config: str, cycles: Sequence[str]) -> Json:
    """Worker: `Engine.run_cycle` for each of `cycles` ("full"/"incremental") in this fresh process."""
    from syncd.config.loader import load_settings
    from syncd.config.logs import configure_logging
    from syncd.cycle.collector import collect_after_cycle, tune_collector
    from syncd.cycle.engine import Engine
    from syncd.store import Store

    configure_logging(level="warning", json=True)  # to stderr: stdout carries the figures
    # SYNCD_BENCH_RSS_STACKS, SYNCD_BENCH_TRACEMALLOC: what the cycles hold at their peak (cycles.memory).
    trace_dir = memory.start_from_environment()
    settings = load_settings(Path(config), {})  # no environment: SYNCD_* of the caller must not leak in
    tune_collector()  # as `syncd sync` and `syncd run` do once their settings are read
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
            name = f"{os.getpid()}-{number}-{cycle}"
            snapshots = (
                contextlib.nullcontext() if trace_dir is None else memory.PeakSnapshots(trace_dir, name)
            )
            if profiler is not None:
                profiler.enable()
            with GcPauses() as pauses, snapshots:
                result = asyncio.run(engine.run_cycle(full=full, trigger="bench"))
            if profiler is not None:
                profiler.disable()
            t1, c1 = time.monotonic(), time.process_time()
            collect_after_cycle()  # as the daemon does between cycles (outside the cycle's figures)
            if profiler is not None and profile_dir:
                profiler.dump_stats(Path(profile_dir) / f"{name}.prof")
            phase_cpu: dict[str, float] = dict(getattr(result, "phase_cpu_s", None) or {})
            phase_wall: dict[str, float] = dict(getattr(result, "phase_wall_s", None) or {})
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
                    "phase_wall_s": phase_wall,
                    "gc": pauses.figures(),
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
