"""The status page of a real `syncd run`, seeded through the emulators, read by headless Chromium and httpx.

The seeded state: four onboarded agents, one user whose number another agent holds (failed, needing
attention; their UPN is markup, to show it arrives as text), two users out of scope (no phone, disabled),
and a second cycle stopped by the max_offboard guard (two people left the group, sync.max_offboard = 1).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.wait import WebDriverWait

from tests.browser import conftest
from tests.browser.conftest import ARTIFACTS
from tests.e2e.conftest import World
from tests.e2e.test_daemon import TOKEN, Daemon, wait_for

EVIL = "<script>alert(1)</script>"
FOREIGN_AGENT = "e2f19e0a-0490-41f4-8509-44a3390ae0b6"
SESSION_LABEL = b"syncd status page session v2"


def assert_session_value(value: str) -> None:
    """The cookie is "<issued_at>.<nonce>.<HMAC(token, label|issued_at|nonce)>": signed just now, never the
    token."""
    issued, nonce, mac = value.split(".")
    assert abs(int(issued) - time.time()) < 120
    signed = SESSION_LABEL + b"|" + issued.encode() + b"|" + nonce.encode()
    assert mac == hmac.new(TOKEN.encode(), signed, hashlib.sha256).hexdigest()
    assert TOKEN not in value


@dataclass
class Seeded:
    daemon: Daemon
    onboarded: list[str]
    conflicted: str


def status(daemon: Daemon) -> dict[str, Any]:
    answer = httpx.get(f"{daemon.url}/status", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5)
    assert answer.status_code == 200, answer.text
    document = answer.json()
    assert isinstance(document, dict)
    return document


def finished_runs(daemon: Daemon) -> int:
    return sum(r["outcome"] != "running" for r in status(daemon)["runs"])


def seed(world: World, daemons: list[Daemon]) -> Seeded:
    onboarded = [world.add_user(name, f"+1 415 555 01{i:02d}") for i, name in enumerate("abcd")]
    world.smartcomm.add_agent(
        user_object_id=FOREIGN_AGENT, tenant_id=world.graph.tenant_id, phone_number="+14155550199"
    )
    conflicted = world.add_user(EVIL, "+1 415 555 0199")  # the number is held: a per-user failure
    world.add_user("nophone", "")
    world.add_user("disabled", "+1 415 555 0150", account_enabled=False)
    daemons.append(daemon := Daemon(world, interval="1h", env={"SYNCD_SYNC__MAX_OFFBOARD": "1"}))
    wait_for(lambda: finished_runs(daemon) == 1, what="the first cycle")
    for object_id in onboarded[:2]:
        world.graph.remove_member(world.group, object_id)
    guarded = world.run("resync", "--wait", env=daemon.env)
    assert guarded.code == 3, guarded.stdout + guarded.stderr
    return Seeded(daemon, onboarded, conflicted)


# -- the browser ---------------------------------------------------------------------------------------


def counts(driver: webdriver.Chrome, key: str) -> dict[str, int]:
    """The count cells of one table on the page, read from the DOM (data-<key> and the cell's text)."""
    cells = driver.find_elements(By.CSS_SELECTOR, f"td[data-{key}]")
    return {str(cell.get_dom_attribute(f"data-{key}")): int(cell.text) for cell in cells}


def text(driver: webdriver.Chrome, element_id: str) -> str:
    return str(driver.find_element(By.ID, element_id).text)


def submit(driver: webdriver.Chrome, button: WebElement) -> None:
    """Click a form's button and wait for the page it leads to (the old one goes stale)."""
    html = driver.find_element(By.TAG_NAME, "html")
    button.click()

    def replaced(_: webdriver.Chrome) -> bool:
        # Stale, or (Chromium racing the navigation) "node does not belong to the document": either way gone.
        try:
            html.is_enabled()
        except WebDriverException:
            return True
        return False

    WebDriverWait(driver, 10).until(replaced)
    WebDriverWait(driver, 10).until(lambda d: d.execute_script("return document.readyState") == "complete")


def sign_in(driver: webdriver.Chrome, token: str) -> None:
    field = driver.find_element(By.NAME, "token")
    field.clear()
    field.send_keys(token)
    submit(driver, driver.find_element(By.CSS_SELECTOR, "form[action='/login'] button[type=submit]"))


@contextlib.contextmanager
def screen(driver: webdriver.Chrome, width: int, *, mobile: bool = False) -> Iterator[None]:
    """Lay the page out for a screen `width` CSS pixels wide (a phone's, with `mobile`), then restore."""
    metrics = {"width": width, "height": 800, "deviceScaleFactor": 1, "mobile": mobile}
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", metrics)
    try:
        yield
    finally:
        driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})


def full_page_png(driver: webdriver.Chrome, path: Path, *, width: int, mobile: bool = False) -> Path:
    """A screenshot of the whole page at `width`: the viewport is made as tall as the page, then shot."""
    with screen(driver, width, mobile=mobile):
        height = int(driver.execute_script("return document.documentElement.scrollHeight"))
        metrics = {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile}
        driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", metrics)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(driver.get_screenshot_as_png())
    return path


def rows(driver: webdriver.Chrome, selector: str) -> list[WebElement]:
    return list(driver.find_elements(By.CSS_SELECTOR, selector))


def test_the_admin_signs_in_and_reads_the_state(
    world: World, daemons: list[Daemon], browser: webdriver.Chrome
) -> None:
    seeded = seed(world, daemons)
    url = seeded.daemon.url

    browser.get(f"{url}/")
    assert browser.current_url == f"{url}/login"  # no session: sent to the form
    sign_in(browser, "not-the-token")
    assert browser.find_element(By.CSS_SELECTOR, "[role=alert]").text == "Wrong token."
    sign_in(browser, TOKEN)
    assert browser.current_url == f"{url}/"
    cookie = browser.get_cookie("syncd_session")
    assert cookie is not None
    assert (cookie["httpOnly"], cookie["sameSite"], cookie["path"], cookie["secure"]) == (
        True,
        "Strict",
        "/",
        False,
    )
    assert_session_value(cookie["value"])

    assert browser.title == "syncd status"
    assert text(browser, "daemon-state") == "idle"
    assert text(browser, "last-outcome") == "guard"
    health = browser.find_element(By.ID, "health")
    assert health.get_dom_attribute("data-state") == "guard"
    assert text(browser, "health-title") == "Stopped by a safety guard: max_offboard"
    assert text(browser, "health-detail").startswith("2 offboardings exceed sync.max_offboard = 1")

    assert text(browser, "managed-agents") == "4"
    assert counts(browser, "status") == {"active": 4, "failed": 1, "skipped": 2}
    assert counts(browser, "source") == {"businessPhones": 4}
    assert counts(browser, "reason") == {"disabled": 1, "no_phone": 1}

    assert text(browser, "attention-count") == "1"
    attention = rows(browser, "#attention tbody tr")
    assert len(attention) == 1
    row = attention[0]
    assert row.get_dom_attribute("data-object-id") == seeded.conflicted
    cells = row.find_elements(By.TAG_NAME, "td")
    assert cells[0].text == "failed"
    assert cells[1].text.splitlines() == [f"{EVIL}@contoso.com", seeded.conflicted]  # markup shown as text
    assert "TN is already registered" in cells[2].text
    assert cells[3].text == "1"
    link = row.find_element(By.CSS_SELECTOR, "a.explain")
    assert link.get_dom_attribute("href") == f"/explain/{seeded.conflicted}"
    assert not browser.find_elements(By.TAG_NAME, "script")

    runs = rows(browser, "#runs tbody tr")
    assert [r.get_dom_attribute("data-run") for r in runs] == ["2", "1"]
    assert [r.find_elements(By.TAG_NAME, "td")[4].text for r in runs] == ["guard", "failed"]
    bars = rows(browser, "#runs-chart rect.bar")
    by_part = {(b.get_dom_attribute("data-run"), b.get_dom_attribute("data-part")): b for b in bars}
    assert set(by_part) == {("1", "onboard"), ("1", "failed"), ("2", "none")}
    assert by_part["1", "onboard"].get_dom_attribute("data-count") == "4"
    assert by_part["1", "failed"].get_dom_attribute("data-count") == "1"
    assert by_part["1", "onboard"].size["height"] > 0

    shot = full_page_png(browser, ARTIFACTS / "status-page.png", width=1280)
    print(f"status page screenshot: {shot}")
    assert shot.stat().st_size > 10_000

    # A phone: the page reflows (the tables stack their rows) instead of scrolling sideways.
    with screen(browser, 390, mobile=True):
        overflow = browser.execute_script(
            "return document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow == 0
        assert not browser.find_element(By.CSS_SELECTOR, "#attention thead").is_displayed()
    phone = full_page_png(browser, ARTIFACTS / "status-page-phone.png", width=390, mobile=True)
    print(f"status page screenshot (phone): {phone}")

    # The attention row's link explains that person (syncd.reports.explain) in the page's layout.
    browser.find_element(By.CSS_SELECTOR, "#attention a.explain").click()
    WebDriverWait(browser, 30).until(expected_conditions.url_to_be(f"{url}/explain/{seeded.conflicted}"))
    explained = browser.find_element(By.CSS_SELECTOR, "pre.explain").text
    assert re.search(rf"^\s*object ID\s+{seeded.conflicted}$", explained, re.MULTILINE), explained
    assert re.search(rf"^\s*UPN\s+{re.escape(EVIL)}@contoso.com$", explained, re.MULTILINE), explained
    assert not browser.find_elements(By.TAG_NAME, "script")
    print(f"explain page screenshot: {full_page_png(browser, ARTIFACTS / 'explain.png', width=1280)}")
    browser.get(f"{url}/")

    # "Sync now" posts the form with the session cookie; the cycle it queues is stopped by the guard too.
    submit(browser, browser.find_element(By.ID, "sync-now"))
    assert browser.current_url == f"{url}/?queued=1"
    assert "A cycle was queued" in browser.find_element(By.CSS_SELECTOR, "[role=status]").text

    def third_run_recorded() -> bool:
        browser.get(f"{url}/")
        shown = rows(browser, "#runs tbody tr")
        return len(shown) == 3 and shown[0].find_elements(By.TAG_NAME, "td")[4].text == "guard"

    wait_for(third_run_recorded, what="the cycle the button queued")
    assert rows(browser, "#runs tbody tr")[0].find_elements(By.TAG_NAME, "td")[3].text == "manual"

    submit(browser, browser.find_element(By.ID, "sign-out"))
    assert browser.current_url == f"{url}/login"
    assert browser.get_cookie("syncd_session") is None
    browser.get(f"{url}/")
    assert browser.current_url == f"{url}/login"
    assert seeded.daemon.stop()[0] == 0


# -- the protocol, without a browser -------------------------------------------------------------------


def test_sign_in_cookie_and_forms_over_http(world: World, daemons: list[Daemon]) -> None:
    world.add_user("a", "+1 415 555 0001")
    # The name a reverse proxy uses is allowed (admin.allowed_hosts); any other host is refused.
    env = {"SYNCD_ADMIN__ALLOWED_HOSTS": "syncd.example.com"}
    daemons.append(daemon := Daemon(world, interval="1h", env=env))
    wait_for(lambda: finished_runs(daemon) == 1, what="the first cycle")
    with httpx.Client(base_url=daemon.url, timeout=10) as client:
        away = client.get("/")
        assert (away.status_code, away.headers["location"]) == (303, "/login")
        form = client.get("/login")
        assert form.status_code == 200
        assert 'name="token"' in form.text

        wrong = client.post("/login", data={"token": "wrong"})
        assert wrong.status_code == 401
        assert "Wrong token." in wrong.text
        assert "set-cookie" not in wrong.headers

        signed_in = client.post("/login", data={"token": TOKEN})
        assert (signed_in.status_code, signed_in.headers["location"]) == (303, "/")
        cookie = signed_in.headers["set-cookie"]
        assert cookie.startswith("syncd_session=")
        assert_session_value(cookie.split(";")[0].removeprefix("syncd_session="))
        assert TOKEN not in cookie
        attributes = {part.strip().lower() for part in cookie.split(";")[1:]}
        assert {"httponly", "path=/", "samesite=strict"} <= attributes
        assert "secure" not in attributes

        page = client.get("/")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert "default-src 'none'" in page.headers["content-security-policy"]
        assert page.headers["cache-control"] == "no-store"
        assert 'id="managed-agents">1<' in page.text
        assert client.get("/status").json()["members"] == {"active": 1}  # the page's link to the JSON

        # The page's "Sync now" form: refused from another site's page, accepted from ours.
        foreign = client.post("/resync", data={"full": "1"}, headers={"Origin": "https://evil.example"})
        assert foreign.status_code == 403
        # Behind a reverse proxy that rewrites Host, the host the browser used is X-Forwarded-Host: it must
        # be an allowed host (else 400, whatever the form), and the form's Origin must name it.
        proxied = {"Origin": "https://syncd.example.com", "X-Forwarded-Host": "evil.example"}
        assert client.post("/logout", headers=proxied).status_code == 400
        proxied = {"Origin": "https://evil.example", "X-Forwarded-Host": "syncd.example.com"}
        assert client.post("/logout", headers=proxied).status_code == 403
        proxied["Origin"] = "https://syncd.example.com"
        assert client.post("/login", data={"token": TOKEN}, headers=proxied).status_code == 303
        queued = client.post("/resync", data={"full": "1"}, headers={"Origin": daemon.url})
        assert (queued.status_code, queued.headers["location"]) == (303, "/?queued=1")
        wait_for(lambda: finished_runs(daemon) == 2, what="the queued cycle")
        assert status(daemon)["runs"][0]["kind"] == "full"

        nobody = client.get("/explain/nobody@contoso.com")
        assert nobody.status_code == 404
        assert "Not found" in nobody.text

        signed_out = client.post("/logout")
        assert (signed_out.status_code, signed_out.headers["location"]) == (303, "/login")
        assert "syncd_session=" in signed_out.headers["set-cookie"]
        assert client.get("/").status_code == 303

    # Proxy headers do not decide the scheme (admin.secure_cookie does, behind a TLS-terminating proxy).
    behind_proxy = httpx.post(
        f"{daemon.url}/login", data={"token": TOKEN}, headers={"X-Forwarded-Proto": "https"}
    )
    assert behind_proxy.status_code == 303
    assert "secure" not in {p.strip().lower() for p in behind_proxy.headers["set-cookie"].split(";")}
    # A host the listener is not known by (DNS rebinding) is refused.
    assert httpx.get(f"{daemon.url}/metrics", headers={"Host": "attacker.example"}).status_code == 400

    # The bearer header opens the page too; a wrong one is refused, never sent to the form.
    bearer = httpx.get(f"{daemon.url}/", headers={"Authorization": f"Bearer {TOKEN}"})
    assert bearer.status_code == 200
    assert httpx.get(f"{daemon.url}/", headers={"Authorization": "Bearer nope"}).status_code == 401
    # The token itself is not a session value.
    assert httpx.get(f"{daemon.url}/", cookies={"syncd_session": TOKEN}).status_code == 303
    # The page's form once the session has ended is sent to sign in; an API call without a token is refused.
    expired = httpx.post(f"{daemon.url}/resync", data={"full": "1"})
    assert (expired.status_code, expired.headers["location"]) == (303, "/login")
    assert httpx.post(f"{daemon.url}/resync", json={"full": True}).status_code == 401
    assert daemon.stop()[0] == 0


def test_without_a_token_the_pages_are_disabled(world: World, daemons: list[Daemon]) -> None:
    daemons.append(daemon := Daemon(world, interval="1h", token=None))
    for answer in (
        httpx.get(f"{daemon.url}/"),
        httpx.get(f"{daemon.url}/login"),
        httpx.post(f"{daemon.url}/login", data={"token": "anything"}),
        httpx.get(f"{daemon.url}/explain/anyone"),
    ):
        assert answer.status_code == 403
        assert "The status page is disabled" in answer.text
        assert "admin.token" in answer.text
        assert "set-cookie" not in answer.headers
    assert daemon.stop()[0] == 0


def test_a_missing_browser_is_named_with_the_way_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """The `browser` fixture fails with this message (never skips) when a binary is missing."""
    assert conftest.missing_browser() is None  # `make test` installed both (its `browser` prerequisite)
    monkeypatch.setattr(conftest, "CHROMIUM", Path("/nonexistent/chromium"))
    reason = conftest.missing_browser()
    assert reason is not None
    assert reason.startswith("/nonexistent/chromium missing")
    assert "make browser" in reason
    assert "apt-get install -y --no-install-recommends chromium chromium-driver" in reason
