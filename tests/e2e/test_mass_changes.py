"""The max_update guard and a changed setting named, through the real `syncd` command with the defaults a user
gets (the default SQLite path `data/syncd.db`, default intervals): a `graph.default_region` edited from NO to
DK would renumber every agent; the cycle stops before any write (exit 3), names the setting, and `--force`
applies it. The guard's logic (its boundary, the percentage forms) is tested in
tests/cycle/test_mass_changes.py.
"""

from __future__ import annotations

import json
import re

from tests.e2e.conftest import World


def use_defaults(world: World, *, region: str) -> None:
    """The world's configuration with the default database and [sync] defaults but max_update = 3."""
    text = world.config.read_text()
    text = re.sub(r"\[database\]\nurl = .*\n", "", text)
    text = re.sub(r"\[sync\]\n(.+\n)+", "[sync]\nmax_update = 3\n", text)
    text = re.sub(r'default_region = ".*"\n', "", text)
    text = text.replace("[graph]\n", f'[graph]\ndefault_region = "{region}"\n')
    world.config.write_text(text)


def test_a_default_region_that_would_renumber_everyone_is_stopped_named_and_forced(world: World) -> None:
    ids = [world.add_user(f"user{i}", f"22 12 34 {i:02d}") for i in range(5)]
    # National numbers: which country they are in depends on graph.default_region. The account has both
    # forms registered (tests/registry.py registers only numbers that are valid without a region).
    world.smartcomm.register_numbers([f"+{cc}221234{i:02d}" for cc in ("47", "45") for i in range(5)])
    use_defaults(world, region="NO")
    first = world.run("sync")
    assert first.code == 0, first.stdout + first.stderr
    assert "settings" not in first.stdout  # nothing to compare with yet
    assert {phone for phone, _ in world.agents().values()} == {f"+47221234{i:02d}" for i in range(5)}
    assert (world.config.parent / "data" / "syncd.db").is_file()
    world.smartcomm.clear_requests()

    use_defaults(world, region="DK")
    stopped = world.run("sync")
    assert stopped.code == 3, stopped.stdout + stopped.stderr
    assert world.writes() == []
    assert 'settings   changed since the last cycle: graph.default_region "NO" -> "DK"' in stopped.stdout
    assert "STOPPED by the max_update guard: 5 updates exceed sync.max_update = 3; nothing was changed." in (
        stopped.stdout
    )
    assert "Changed fields: phone number 5, UPN 0, consistency GUID 0." in stopped.stdout
    assert "phone number +4722123400 -> +4522123400" in stopped.stdout
    assert 'changed since the last cycle: graph.default_region "NO" -> "DK"; if that was not meant' in (
        stopped.stdout
    )
    events = [json.loads(line) for line in stopped.stderr.splitlines() if line.startswith("{")]
    assert [e["settings"] for e in events if e["event"] == "sync.settings_changed"] == [
        ["graph.default_region"]
    ]

    status = world.run("status", "--json").json()
    last = status["runs"][0]  # type: ignore[index]
    assert (last["outcome"], last["settings_changed"]) == (
        "guard",
        [{"key": "graph.default_region", "from": "NO", "to": "DK"}],
    )

    forced = world.run("sync", "--force", "--json")
    assert forced.code == 0, forced.stderr
    report = forced.json()
    assert report["settings_changed"] == [{"key": "graph.default_region", "from": "NO", "to": "DK"}]
    assert report["outcomes"] == {"update": {"ok": 5}}
    assert sorted(path.lstrip("/") for method, path, _ in world.writes() if method == "PATCH") == sorted(ids)
    assert {phone for phone, _ in world.agents().values()} == {f"+45221234{i:02d}" for i in range(5)}
