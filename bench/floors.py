"""The floor of a full cycle's reads, for bench/sync_cycles.py: the plainest code that reads what a full
cycle must read, each part in a fresh process of its own (run as `python bench/floors.py --child ...`).

A full cycle reads three things; their floors are
  - Graph's member pages: `http.client` + `json.loads` of the same transitive member pages
    (bench/graph_read.py's baseline, which sync_cycles.py runs already);
  - the SmartCommunicator agents list: `http.client` GET of the list + `json.loads` of its body
    (`--child agents-list`);
  - our records: a plain `sqlite3` fetch of the member rows (the columns `Store.load_recorded` reads) from
    the same database file (`--child sqlite`).
Each child prints one JSON line: wall and CPU seconds of the work alone (imports and interpreter start
excluded, as the cycles' own CPU is measured around `run_cycle`), how many items, peak RSS.
"""

from __future__ import annotations

import argparse
import http.client
import json
import resource
import sqlite3
import ssl
import sys
import time
import urllib.parse
from typing import Any

Json = dict[str, Any]

MEMBER_COLUMNS = (
    "object_id, status, agent_active, tenant_id, phone_number, upn_pushed, consistency_id, upn, skip_reason,"
    " detail, attempts, next_attempt_at, phone_source"
)
"""What `Store.load_recorded` selects (syncd/store/members.py, `_RECORDED_COLUMNS`)."""


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def agents_list(where: Json) -> Json:
    """Log in, GET the agents list, json.loads its body."""
    base = urllib.parse.urlsplit(where["base_url"])
    context = ssl.create_default_context(cafile=where["ca_path"])
    connection = http.client.HTTPSConnection(base.hostname or "127.0.0.1", base.port, context=context)
    wall, cpu = time.perf_counter(), time.process_time()
    credentials = json.dumps({"username": where["username"], "password": where["password"]})
    connection.request(
        "POST",
        "/rest/v1/authenticate",
        body=credentials,
        headers={"Content-Type": "application/json", "Accept": "application/json"},
    )
    token = json.loads(connection.getresponse().read())["token"]
    connection.request(
        "GET",
        f"/rest/v1/smartcomm/{where['customer_id']}/agents",
        headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
    )
    response = connection.getresponse()
    raw = response.read()
    items = json.loads(raw).get("data", []) if response.status == 200 else []
    result = {
        "items": len(items),
        "bytes": len(raw),
        "wall_s": time.perf_counter() - wall,
        "cpu_s": time.process_time() - cpu,
        "peak_rss_mb": _peak_rss_mb(),
    }
    connection.close()
    return result


def sqlite_rows(path: str) -> Json:
    """A plain sqlite3 fetch of every member row."""
    wall, cpu = time.perf_counter(), time.process_time()
    connection = sqlite3.connect(path)
    rows = connection.execute(f"SELECT {MEMBER_COLUMNS} FROM members").fetchall()  # noqa: S608 - constant
    connection.close()
    return {
        "items": len(rows),
        "wall_s": time.perf_counter() - wall,
        "cpu_s": time.process_time() - cpu,
        "peak_rss_mb": _peak_rss_mb(),
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--child", choices=["agents-list", "sqlite"], required=True)
    parser.add_argument("--where", default="", help="agents-list: the SmartCommunicator emulator, as JSON")
    parser.add_argument("--db", default="", help="sqlite: the database file")
    args = parser.parse_args()
    result = agents_list(json.loads(args.where)) if args.child == "agents-list" else sqlite_rows(args.db)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
