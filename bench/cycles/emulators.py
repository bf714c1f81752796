"""The emulator child processes of bench/sync_cycles.py: what runs in them (`serve_graph`, with the churn
plan, and `serve_smartcomm`, started as `sync_cycles.py --serve graph|smartcomm`), and the parent's side:
`Child`, which starts one and reads where it listens, and `control`, a call to an emulator's control API."""

from __future__ import annotations

import base64
import http.client
import json
import ssl
import subprocess
import sys
import time
import urllib.parse
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cycles.common import COMMAND, BenchError, Json, wait_for_parent

CHILD_START_TIMEOUT_S = 1800.0

GRAPH_LOCATION_KEYS = (
    "authority_host",
    "base_url",
    "ca_path",
    "group_id",
    "tenant_id",
    "client_id",
    "secret",
    "teams",
)
"""What bench/graph_read.py's `--child` modes take (`--where`) of the Graph child's first line."""


# --- in the child processes ------------------------------------------------------------------------------


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


# --- in the parent ---------------------------------------------------------------------------------------


class Child:
    """An emulator child process: started, its first stdout line read as JSON, stopped on exit.

    The child is `script` (bench/sync_cycles.py unless said otherwise) run with `args`."""

    def __init__(
        self, name: str, args: Sequence[str], env: dict[str, str], *, script: Path = COMMAND
    ) -> None:
        self.name = name
        self.process: subprocess.Popen[str] = subprocess.Popen(
            [sys.executable, str(script), *args],
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


def graph_location(graph: Json) -> str:
    """The Graph child's location as bench/graph_read.py's `--child` modes take it (`--where`)."""
    return json.dumps({k: graph[k] for k in GRAPH_LOCATION_KEYS})
