"""The Prometheus rules (`deploy/prometheus/syncd-rules.yml`) against a running daemon: every series they read
is on the `/metrics` of a real `syncd run` (the defaults a user gets, against both emulators), every
recording rule they read is defined, each expression reads well (`tests/promql.py`; `promtool check rules`
too where Prometheus is installed), and each alert has a summary, a description naming the `syncd` command
that explains it, and a runbook section in docs/alerts.md that its runbook_url points at.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.conftest import World
from tests.e2e.test_daemon import Daemon, wait_for
from tests.promql import is_duration, metric_names

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus" / "syncd-rules.yml"
RUNBOOK = ROOT / "docs" / "alerts.md"
RUNBOOK_BASE = "https://github.com/REPLACE-ORG/syncd/blob/main/docs/alerts.md#"
SEVERITIES = {"critical", "warning"}


def rules() -> list[dict[str, Any]]:
    document = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    assert set(document) == {"groups"}
    found = []
    for group in document["groups"]:
        assert set(group) == {"name", "rules"}, group.get("name")
        found += group["rules"]
    return found


def alerts() -> list[dict[str, Any]]:
    return [rule for rule in rules() if "alert" in rule]


def exported_names(text: str) -> set[str]:
    """The sample names of a /metrics page (`syncd_cycles_total`, `..._bucket`, ...)."""
    return {sample.name for family in text_string_to_metric_families(text) for sample in family.samples}


def anchors(markdown: str) -> set[str]:
    """GitHub's anchors of a page's headings: lower case, punctuation dropped, spaces as hyphens."""
    found = set()
    for heading in re.findall(r"^#{1,6} (.+)$", markdown, flags=re.M):
        found.add(re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-"))
    return found


def test_every_series_the_rules_read_is_on_a_running_daemons_metrics(
    world: World, daemons: list[Daemon]
) -> None:
    world.add_user("a", "+1 415 555 0001")
    daemons.append(daemon := Daemon(world, interval="1h", jitter=None))  # the default jitter, as users get
    wait_for(lambda: len(world.agents()) == 1, what="the first cycle")
    wait_for(
        lambda: 'syncd_cycles_total{outcome="ok"} 1.0' in httpx.get(f"{daemon.url}/metrics").text,
        what="the cycle in /metrics",
    )
    page = httpx.get(f"{daemon.url}/metrics").text
    exported = exported_names(page)
    recorded = {rule["record"] for rule in rules() if "record" in rule}
    read: set[str] = set()
    for rule in rules():
        read |= metric_names(rule["expr"])
    assert read - recorded <= exported, f"not on /metrics: {sorted(read - recorded - exported)}"
    assert {name for name in read if ":" in name} <= recorded  # every recording rule read is defined
    assert recorded <= read, f"recorded and never read: {sorted(recorded - read)}"
    # The series the alerts are measured by say what the daemon does.
    assert "syncd_leader 1.0" in page
    assert "syncd_sync_interval_seconds 3600.0" in page
    assert 'syncd_last_cycle_outcome{outcome="ok"} 1.0' in page
    assert daemon.stop()[0] == 0


def test_every_alert_says_what_it_means_and_where_its_runbook_is() -> None:
    runbook = RUNBOOK.read_text(encoding="utf-8")
    sections = anchors(runbook)
    names = [rule["alert"] for rule in alerts()]
    assert len(names) == len(set(names))
    for rule in alerts():
        name = rule["alert"]
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}, name
        assert is_duration(rule["for"]), name
        assert rule["labels"]["severity"] in SEVERITIES, name
        annotations = rule["annotations"]
        assert set(annotations) == {"summary", "description", "runbook_url"}, name
        assert "syncd status" in annotations["description"] or "syncd explain" in annotations["description"]
        assert annotations["runbook_url"] == RUNBOOK_BASE + name.lower(), name
        assert name.lower() in sections, f"docs/alerts.md has no section {name}"
        section = runbook.split(f"\n## {name}\n", 1)[1].split("\n## ", 1)[0]
        assert "syncd status" in section or "syncd explain" in section, name
    # ... and the runbook has a section for no alert that does not exist.
    documented = set(re.findall(r"^## (Syncd\w+)$", runbook, flags=re.M))
    assert documented == set(names)


def test_the_alerts_cover_what_operators_page_on() -> None:
    read = {rule["alert"]: metric_names(rule["expr"]) for rule in alerts()}
    recorded = {rule["record"]: metric_names(rule["expr"]) for rule in rules() if "record" in rule}

    def series(alert: str) -> set[str]:
        names = set(read[alert])
        for name in list(names):
            names |= recorded.get(name, set())
        return names

    assert "syncd_last_success_timestamp_seconds" in series("SyncdNoSuccessfulCycle")
    assert "syncd_sync_interval_seconds" in series("SyncdNoSuccessfulCycle")
    assert "syncd_quarantined" in series("SyncdQuarantined")
    assert "syncd_last_cycle_outcome" in series("SyncdStoppedByGuard")
    assert "syncd_operations_total" in series("SyncdWriteFailuresHigh")
    assert "syncd_deferred_users" in series("SyncdDeferredRetriesGrowing")
    assert "syncd_leader" in series("SyncdLeaderMissing") & series("SyncdTwoLeaders")
    assert "syncd_throttled_responses_total" in series("SyncdThrottled")
    assert "syncd_notifications_total" in series("SyncdWebhookFailing")
    # The leader's view: a standby runs no cycles, so what it shows of them is not the system's state.
    for alert in ("SyncdQuarantined", "SyncdStoppedByGuard"):
        assert "syncd_leader" in series(alert), alert


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool (Prometheus) is not installed")
def test_promtool_checks_the_rules() -> None:
    checked = subprocess.run(
        ["promtool", "check", "rules", str(RULES)],  # noqa: S607 - promtool from PATH
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(rules())} rules found" in checked.stdout
