"""Benchmark (run by hand): reading one large group through the Graph source vs. the plainest baseline.

    .venv/bin/python bench/graph_read.py [--users 100000] [--page-cap 999] [--teams-share 0.8]

The Graph emulator runs in its own process (its CPU is not ours) with a tenant of --users users in one
group. Each side is then measured in a fresh process of its own, so peak RSS is comparable:
- reader:   `GraphSource.read()` (real msal + msgraph-sdk, raw pages, mapping to Member/Skipped);
- baseline: `http.client` fetching the same pages (same $select, $top, headers) and `json.loads` on each,
            nothing else: the bound the read is held to.
Printed: wall time, CPU time, peak RSS and CPU per user for each, reader/baseline ratios, and the Graph
requests each side sent, by kind. With --teams-share, that share of the users has a Teams number: the reader
runs with phone_source = ["teams", "businessPhones", "mobilePhone"] and the baseline fetches (and parses)
the same number assignment pages as well.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import os
import resource
import ssl
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SELECT = "id,userPrincipalName,accountEnabled,onPremisesImmutableId,businessPhones"


def serve(users: int, page_cap: int, teams_share: float) -> None:
    """Child process: the Graph emulator over HTTPS with one group of `users`; prints where, then waits."""
    import tempfile

    from syncd.emulators.graph import (
        DEFAULT_CLIENT_ID,
        DEFAULT_CLIENT_SECRET,
        DEFAULT_TENANT_ID,
        GraphEmulator,
        serve_graph_https,
    )
    from syncd.emulators.server import TestCA
    from syncd.emulators.tenant import TenantSpec, build_tenant

    emulator = GraphEmulator(page_cap=page_cap)
    started = time.perf_counter()
    tenant = build_tenant(emulator, TenantSpec(users=users, seed=1, teams_share=teams_share))
    built_s = time.perf_counter() - started
    with (
        tempfile.TemporaryDirectory() as directory,
        serve_graph_https(emulator, ca=TestCA(Path(directory))) as server,
    ):
        print(
            json.dumps(
                {
                    "authority_host": server.authority_host,
                    "base_url": server.base_url,
                    "ca_path": str(server.ca_path),
                    "group_id": tenant.top_group_id,
                    "tenant_id": DEFAULT_TENANT_ID,
                    "client_id": DEFAULT_CLIENT_ID,
                    "secret": DEFAULT_CLIENT_SECRET,
                    "built_s": round(built_s, 2),
                    "teams": len(tenant.teams_numbers),
                }
            ),
            flush=True,
        )
        sys.stdin.read()


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure_reader(where: dict[str, Any]) -> dict[str, float]:
    from syncd.config.logs import configure_logging
    from syncd.config.settings import GraphSettings
    from syncd.graph.source import GraphSource

    configure_logging(level="warning", json=True)  # to stderr: stdout carries the figures

    settings = GraphSettings(
        tenant_id=where["tenant_id"],
        client_id=where["client_id"],
        client_secret=where["secret"],
        authority_host=where["authority_host"],
        base_url=where["base_url"] + "/v1.0",
        group_ids=[where["group_id"]],
        ca_bundle=where["ca_path"],
        phone_source=["teams", "businessPhones", "mobilePhone"] if where["teams"] else ["businessPhones"],
    )

    async def run() -> int:
        async with GraphSource(settings) as source:
            state = await source.read()
            return sum(state.group_counts.values())

    rss_before = peak_rss_mb()
    wall, cpu = time.perf_counter(), time.process_time()
    users = asyncio.run(run())
    return {
        "users": users,
        "wall_s": time.perf_counter() - wall,
        "cpu_s": time.process_time() - cpu,
        "peak_rss_mb": peak_rss_mb(),
        "rss_before_mb": rss_before,
    }


def measure_baseline(where: dict[str, Any]) -> dict[str, float]:
    base = urllib.parse.urlsplit(where["base_url"])
    context = ssl.create_default_context(cafile=where["ca_path"])
    connection = http.client.HTTPSConnection(base.hostname, base.port, context=context)
    rss_before = peak_rss_mb()
    wall, cpu = time.perf_counter(), time.process_time()
    form = urllib.parse.urlencode(
        {
            "grant_type": "client_credentials",
            "client_id": where["client_id"],
            "client_secret": where["secret"],
            "scope": where["base_url"] + "/.default",
        }
    )
    login_host = urllib.parse.urlsplit(where["authority_host"])
    login = http.client.HTTPSConnection(login_host.hostname, login_host.port, context=context)
    login.request(
        "POST",
        f"/{where['tenant_id']}/oauth2/v2.0/token",
        body=form,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    token = json.loads(login.getresponse().read())["access_token"]
    login.close()
    headers = {"Authorization": f"Bearer {token}", "ConsistencyLevel": "eventual"}
    if where["teams"]:
        teams_query = urllib.parse.urlencode(
            {
                "$filter": "assignmentStatus eq 'userAssigned' and assignmentCategory eq 'primary'",
                "$top": "1000",
            }
        )
        teams_path: str | None = (
            f"/v1.0/admin/teams/telephoneNumberManagement/numberAssignments?{teams_query}"
        )
        while teams_path:
            connection.request("GET", teams_path, headers={"Authorization": f"Bearer {token}"})
            teams_page = json.loads(connection.getresponse().read())
            teams_next = teams_page.get("@odata.nextLink")
            teams_path = None
            if teams_next:
                parts = urllib.parse.urlsplit(teams_next)
                teams_path = f"{parts.path}?{parts.query}"
    query = urllib.parse.urlencode({"$select": SELECT, "$top": "999", "$count": "true"})
    path: str | None = f"/v1.0/groups/{where['group_id']}/transitiveMembers/graph.user?{query}"
    users = 0
    while path:
        connection.request("GET", path, headers=headers)
        page = json.loads(connection.getresponse().read())
        users += len(page["value"])
        next_link = page.get("@odata.nextLink")
        path = None
        if next_link:
            parts = urllib.parse.urlsplit(next_link)
            path = f"{parts.path}?{parts.query}"
    connection.close()
    return {
        "users": users,
        "wall_s": time.perf_counter() - wall,
        "cpu_s": time.process_time() - cpu,
        "peak_rss_mb": peak_rss_mb(),
        "rss_before_mb": rss_before,
    }


def child(mode: str, where: str) -> None:
    location = json.loads(where)
    result = measure_reader(location) if mode == "reader" else measure_baseline(location)
    print(json.dumps(result))


def control(where: dict[str, Any], method: str, path: str) -> Any:
    """A call to the emulator's control API (not recorded in its request log)."""
    base = urllib.parse.urlsplit(where["base_url"])
    context = ssl.create_default_context(cafile=where["ca_path"])
    connection = http.client.HTTPSConnection(base.hostname, base.port, context=context)
    connection.request(method, f"/_emulator{path}")
    body = json.loads(connection.getresponse().read())
    connection.close()
    return body


def request_kinds(requests: list[dict[str, Any]]) -> dict[str, int]:
    """Requests by kind: member pages, Teams assignment pages, login (discovery and tokens)."""
    kinds: dict[str, int] = {}
    for request in requests:
        path = request["path"]
        kind = (
            "login"
            if not path.startswith("/v1.0/")
            else "teams"
            if "numberAssignments" in path
            else "members"
            if "/transitiveMembers" in path
            else "other"
        )
        kinds[kind] = kinds.get(kind, 0) + 1
    return kinds


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--page-cap", type=int, default=999)
    parser.add_argument("--teams-share", type=float, default=0.0)
    parser.add_argument("--child", choices=["reader", "baseline", "serve"])
    parser.add_argument("--where", default="")
    args = parser.parse_args()
    if args.child == "serve":
        serve(args.users, args.page_cap, args.teams_share)
        return
    if args.child:
        child(args.child, args.where)
        return

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    server = subprocess.Popen(
        [
            sys.executable,
            __file__,
            "--child",
            "serve",
            "--users",
            str(args.users),
            "--page-cap",
            str(args.page_cap),
            "--teams-share",
            str(args.teams_share),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert server.stdout is not None
        where = server.stdout.readline()
        location = json.loads(where)
        print(
            f"emulator: {args.users:,} users in one group, pages of {args.page_cap}, "
            f"{location['teams']:,} Teams numbers, tenant built in {location['built_s']} s"
        )
        results = {}
        requests: dict[str, dict[str, int]] = {}
        for mode in ("baseline", "reader", "baseline", "reader"):  # warm both once; keep the second run
            control(location, "DELETE", "/requests")
            out = subprocess.run(
                [sys.executable, __file__, "--child", mode, "--where", where],
                capture_output=True,
                text=True,
                env=env,
                check=True,
            )
            results[mode] = json.loads(out.stdout)
            requests[mode] = request_kinds(control(location, "GET", "/requests"))
    finally:
        server.stdin.close()  # type: ignore[union-attr]
        server.wait(timeout=30)

    print(f"{'':10} {'users':>8} {'wall s':>8} {'CPU s':>8} {'CPU/user':>10} {'peak RSS':>10}")
    for mode in ("baseline", "reader"):
        r = results[mode]
        print(
            f"{mode:10} {r['users']:>8,} {r['wall_s']:>8.2f} {r['cpu_s']:>8.2f} "
            f"{r['cpu_s'] / r['users'] * 1e6:>8.1f}us {r['peak_rss_mb']:>8.0f}MB"
        )
    b, r = results["baseline"], results["reader"]
    print(
        f"ratio reader/baseline: wall {r['wall_s'] / b['wall_s']:.2f}x, CPU {r['cpu_s'] / b['cpu_s']:.2f}x, "
        f"peak RSS {r['peak_rss_mb'] / b['peak_rss_mb']:.2f}x "
        f"(reader's RSS before reading: {r['rss_before_mb']:.0f} MB, imports included)"
    )
    for mode in ("baseline", "reader"):
        kinds = ", ".join(f"{kind} {n}" for kind, n in sorted(requests[mode].items()))
        print(f"Graph requests, {mode}: {kinds}")


if __name__ == "__main__":
    main()
