"""What the container image runs, run without Docker: the installed wheel, as an unprivileged user.

No Docker engine is reachable where syncd is developed (docs/architecture.md, "Decisions"), so the image
cannot be built here. This module rebuilds what matters in it from the Dockerfile itself: a fresh venv gets
a real (not editable) install of a wheel built from exactly the sources the build stage COPYs, and each
command runs under uid 65534 with the image's ENV (its /config and /data rebased onto a temporary
directory), from its WORKDIR, as its ENTRYPOINT + CMD, and the HEALTHCHECK's own command probes the daemon.
The dependencies are not downloaded: a .pth file lends the new venv the project venv's site-packages, after
its own.

It must run as root (as here and in CI), to switch to the unprivileged user; nothing is skipped.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import socket
import stat
import subprocess
import sys
import sysconfig
import tempfile
import time
import tomllib
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from syncd.emulators.graph import DEFAULT_TENANT_ID, GraphEmulator, GraphServers, serve_graph_https
from syncd.emulators.server import RunningServer, TestCA, serve_https
from syncd.emulators.smartcomm import SmartCommEmulator
from tests.e2e.conftest import write_config
from tests.registry import register_directory

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
COMPOSE = ROOT / "docker-compose.example.yml"
UID = GID = 65534  # nobody: any uid without privileges will do; the image's own is 10001
IMAGE_PATHS = ("config", "data")  # absolute directories of the image that ENV and WORKDIR may name


# ---- the Dockerfile ----------------------------------------------------------------------------------------


def dockerfile_stages(text: str) -> list[list[tuple[str, str]]]:
    """The instructions of each stage, as (INSTRUCTION, arguments) with continuation lines joined."""
    logical: list[str] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):  # a comment inside a continued instruction
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    stages: list[list[tuple[str, str]]] = []
    for line in logical:
        instruction, _, arguments = line.partition(" ")
        if instruction.upper() == "FROM":
            stages.append([])
        stages[-1].append((instruction.upper(), arguments.strip()))
    return stages


@dataclass(frozen=True)
class ImageSpec:
    """What the runtime stage says the container runs."""

    build_sources: list[str]
    env: dict[str, str]
    workdir: str
    argv: list[str]  # ENTRYPOINT + CMD
    healthcheck: list[str]  # the exec form after HEALTHCHECK ... CMD
    user: str

    @classmethod
    def parse(cls, text: str) -> ImageSpec:
        stages = dockerfile_stages(text)
        assert len(stages) >= 2, "a multi-stage build: wheels first, then the runtime image"
        sources: list[str] = []
        for instruction, arguments in stages[0]:
            if instruction == "COPY":
                words = [w for w in shlex.split(arguments) if not w.startswith("--")]
                sources += words[:-1]
        env: dict[str, str] = {}
        single: dict[str, str] = {}
        for instruction, arguments in stages[-1]:
            if instruction == "ENV":
                for word in shlex.split(arguments):
                    name, _, value = word.partition("=")
                    env[name] = value
            elif instruction in {"WORKDIR", "ENTRYPOINT", "CMD", "HEALTHCHECK", "USER"}:
                single[instruction] = arguments
        _, _, probe = single["HEALTHCHECK"].partition(" CMD ")
        return cls(
            build_sources=sources,
            env=env,
            workdir=single["WORKDIR"],
            argv=json.loads(single["ENTRYPOINT"]) + json.loads(single["CMD"]),
            healthcheck=json.loads(probe),
            user=single["USER"],
        )


SPEC = ImageSpec.parse(DOCKERFILE.read_text(encoding="utf-8"))


def rebase(value: str, root: Path) -> str:
    """An image path (/config/..., /data/..., also inside a URL) moved under `root`."""
    pattern = r"(?<![\w.])/(" + "|".join(IMAGE_PATHS) + r")(?=/|$)"
    return re.sub(pattern, lambda m: f"{root}/{m.group(1)}", value)


def test_the_dockerfile_describes_the_image_the_tests_run() -> None:
    """The facts the rest of this module relies on, and those the README and compose file promise."""
    assert SPEC.argv == ["syncd", "run"]
    assert SPEC.env["SYNCD_CONFIG"] == "/config/syncd.toml"
    assert SPEC.env["SYNCD_DATABASE__URL"] == "sqlite:////data/syncd.db"
    assert SPEC.env["PYTHONUNBUFFERED"] == "1"
    assert SPEC.workdir == "/data"
    assert SPEC.user.split(":")[0] not in {"0", "root"}
    assert "http://127.0.0.1:8080/healthz" in " ".join(SPEC.healthcheck)
    text = DOCKERFILE.read_text(encoding="utf-8")
    assert re.search(r"^FROM python:3\.11-slim AS build$", text, re.M)
    assert re.search(r"^VOLUME /data$", text, re.M)
    assert re.search(r"^EXPOSE 8080$", text, re.M)
    # Every source the build copies is let into the build context by the .dockerignore allow-list.
    allowed = {line[1:] for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()}
    assert set(SPEC.build_sources) <= allowed


def test_the_compose_example_wires_emulators_and_daemon() -> None:
    # PyYAML is not a dependency; the file's structure was checked by hand, these are its load-bearing lines.
    text = COMPOSE.read_text(encoding="utf-8")
    assert "\t" not in text
    for line in (
        "  emulators:",
        '    command: ["emulate", "--host", "0.0.0.0", "--hostname", "emulators", '
        '"--state-dir", "/emulators"]',
        "      - emulators:/emulators",
        "  syncd:",
        "      SYNCD_CONFIG: /emulators/syncd.toml",
        "      SYNCD_DATABASE__URL: sqlite:////data/syncd.db",
        "      - data:/data",
        "    depends_on:",
        "        condition: service_healthy",
        "#       - ./config:/config:ro",
        "#       SYNCD_GRAPH__CLIENT_SECRET_FILE: /run/secrets/graph_client_secret",
        "#       SYNCD_SMARTCOMM__PASSWORD_FILE: /run/secrets/smartcomm_password",
    ):
        assert line in text.splitlines(), line


# ---- the image, as a venv ----------------------------------------------------------------------------------


def _readable_by_others(path: Path) -> bool:
    """Whether a user with no group in common with the owner can reach and read `path` (we are root)."""
    path = path.resolve()
    for directory in path.parents:
        if not directory.stat().st_mode & stat.S_IXOTH:
            return False
    return bool(path.stat().st_mode & stat.S_IROTH)


def _interpreter_for_others() -> str:
    """A Python of the suite's minor version that uid 65534 can run, with its standard library.

    The suite's own base interpreter may live where others cannot reach (pyenv under /root, mode 0700); the
    image's lives in /usr/local. The project venv's packages are binary-compatible with any patch release.
    """
    minor = f"python{sys.version_info.major}.{sys.version_info.minor}"
    base: str = getattr(sys, "_base_executable", sys.executable)  # what the suite's venv was made from
    candidates = [os.path.realpath(base), shutil.which(minor, path="/usr/local/bin:/usr/bin") or ""]
    for candidate in filter(None, candidates):
        stdlib = _checked(
            [candidate, "-c", "import sysconfig; print(sysconfig.get_path('stdlib'))"]
        ).stdout.strip()
        if _readable_by_others(Path(candidate)) and _readable_by_others(Path(stdlib) / "os.py"):
            return candidate
    pytest.fail(f"no {minor} that uid {UID} can run among {candidates}")


@dataclass
class Installed:
    """The fresh venv syncd was installed into, in a directory every user can traverse."""

    root: Path
    venv: Path
    site_packages: Path

    def command(self, argv: list[str]) -> list[str]:
        """`argv` as the image's user would run it, resolving the image's commands in the venv."""
        return ["setpriv", f"--reuid={UID}", f"--regid={GID}", "--clear-groups", *argv]


@pytest.fixture(scope="module")
def shared_root() -> Iterator[Path]:
    # pytest's tmp_path is 0700 under /tmp/pytest-of-root: unreachable for uid 65534. /tmp itself is 1777.
    assert os.geteuid() == 0, "this module switches to an unprivileged user, so it must run as root"
    assert shutil.which("setpriv"), "setpriv (util-linux) is needed to run as an unprivileged user"
    root = Path(tempfile.mkdtemp(prefix="syncd-image-"))
    root.chmod(0o755)
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def installed(shared_root: Path) -> Installed:
    source = shared_root / "src"
    source.mkdir()
    for name in SPEC.build_sources:  # exactly what `COPY` puts in the build stage
        origin = ROOT / name
        if origin.is_dir():
            shutil.copytree(origin, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.py[co]"))
        else:
            shutil.copy2(origin, source / name)

    venv = shared_root / "venv"
    _checked([_interpreter_for_others(), "-m", "venv", str(venv)])
    site_packages = Path(
        _checked(
            [str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"]
        ).stdout.strip()
    )
    dependencies = dict.fromkeys([sysconfig.get_path("purelib"), sysconfig.get_path("platlib")])
    for directory in dependencies:
        assert _readable_by_others(Path(directory) / "pydantic" / "__init__.py"), directory
    # A .pth line appends the directory to sys.path, after the venv's own site-packages, and processes none of
    # its .pth files: the project venv's editable syncd stays out of sight.
    (site_packages / "_syncd_dependencies.pth").write_text("\n".join(dependencies) + "\n", encoding="utf-8")
    install = [
        str(venv / "bin" / "pip"),
        "install",
        "--quiet",
        "--no-deps",  # the dependencies come through the .pth, never from an index
        "--ignore-installed",  # the project venv's syncd is visible through the .pth; never touch it
        "--disable-pip-version-check",
    ]
    if _build_backend_at_hand():
        install.append("--no-build-isolation")
    _checked([*install, str(source)], cwd=shared_root)
    return Installed(root=shared_root, venv=venv, site_packages=site_packages)


def _build_backend_at_hand() -> bool:
    """Whether the project venv holds pyproject.toml's build requirements, so the build needs no index.

    Otherwise pip provisions them in an isolated build environment, as `pip wheel .` does in the Dockerfile's
    build stage (and `make venv` did for the editable install): setuptools and wheel only; no dependency of
    syncd is fetched either way.
    """
    from importlib.metadata import PackageNotFoundError, version

    from packaging.requirements import Requirement

    with (ROOT / "pyproject.toml").open("rb") as file:
        requires = tomllib.load(file)["build-system"]["requires"]
    for requirement in map(Requirement, requires):
        try:
            if not requirement.specifier.contains(version(requirement.name), prereleases=True):
                return False
        except PackageNotFoundError:
            return False
    return True


def _checked(argv: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(argv, capture_output=True, text=True, check=False, cwd=cwd)
    assert done.returncode == 0, f"{shlex.join(argv)} exited {done.returncode}:\n{done.stdout}{done.stderr}"
    return done


@pytest.fixture(scope="module")
def emulators(
    shared_root: Path,
) -> Iterator[tuple[GraphEmulator, GraphServers, SmartCommEmulator, RunningServer]]:
    ca_dir = shared_root / "ca"
    ca = TestCA(ca_dir)
    ca_dir.chmod(0o755)
    ca.ca_path.chmod(0o644)
    graph, smartcomm = GraphEmulator(), SmartCommEmulator(registered_tenants=[DEFAULT_TENANT_ID])
    with serve_graph_https(graph, ca=ca) as graph_server, serve_https(smartcomm.app, ca=ca) as sc_server:
        yield graph, graph_server, smartcomm, sc_server


@dataclass
class Site:
    """One container's worth of mounts: /config (root's, read-only to syncd) and /data (syncd's own)."""

    installed: Installed
    root: Path
    smartcomm: SmartCommEmulator
    users: list[str] = field(default_factory=list)

    @property
    def data(self) -> Path:
        return self.root / "data"

    def env(self, **extra: str) -> dict[str, str]:
        """The image's ENV, rebased; a PATH that finds the venv's commands first; nothing of ours."""
        env = {
            "PATH": f"{self.installed.venv / 'bin'}:/usr/local/bin:/usr/bin:/bin",
            "HOME": str(self.data),
            "LANG": "C.UTF-8",
        }
        env |= {name: rebase(value, self.root) for name, value in SPEC.env.items()}
        return env | extra

    def run(self, argv: list[str], timeout: float = 60, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.installed.command(argv),
            capture_output=True,
            text=True,
            timeout=timeout,
            env=self.env(**env),
            cwd=rebase(SPEC.workdir, self.root),
        )

    def onboarded(self) -> set[str]:
        """Object IDs SmartCommunicator received an onboarding (POST .../agents) for."""
        return {
            str(r.body["user_object_id"])
            for r in self.smartcomm.requests
            if r.method == "POST" and r.path.rstrip("/").endswith("/agents") and isinstance(r.body, dict)
        }


@pytest.fixture
def site(
    installed: Installed,
    emulators: tuple[GraphEmulator, GraphServers, SmartCommEmulator, RunningServer],
) -> Iterator[Site]:
    graph, graph_server, smartcomm, sc_server = emulators
    graph.reset()
    smartcomm.reset()
    group = graph.add_group(display_name="SmartCommunicator agents")
    users = []
    for i in range(3):
        user = graph.add_user(upn=f"container{i}@contoso.com", business_phones=[f"+1 415 555 {i:04d}"])
        graph.add_member(group, user)
        users.append(user)
    register_directory(graph, smartcomm)

    root = Path(tempfile.mkdtemp(prefix="site-", dir=installed.root))
    root.chmod(0o755)
    (root / "config").mkdir(mode=0o755)
    write_config(root / "config" / "syncd.toml", graph_server, sc_server, group)
    (root / "config" / "syncd.toml").chmod(0o644)
    (root / "data").mkdir(mode=0o750)
    os.chown(root / "data", UID, GID)  # as the Dockerfile chowns /data to its user
    yield Site(installed, root, smartcomm, users)
    graph.reset()
    smartcomm.reset()


# ---- what the image runs -----------------------------------------------------------------------------------


def test_the_wheel_installs_syncd_its_migrations_and_the_command(installed: Installed) -> None:
    site_packages = installed.site_packages
    assert (installed.venv / "bin" / SPEC.argv[0]).is_file()
    assert (site_packages / "migrations" / "script.py.mako").is_file()
    assert list((site_packages / "migrations" / "versions").glob("0001_*.py"))
    assert (site_packages / "syncd" / "py.typed").is_file()
    # The status page's templates are package data: every one of them ships in the wheel.
    templates = ROOT / "syncd" / "service" / "statuspage" / "templates"
    shipped = site_packages / "syncd" / "service" / "statuspage" / "templates"
    assert sorted(p.name for p in templates.iterdir()) == sorted(p.name for p in shipped.iterdir())
    assert not list(site_packages.glob("__editable__*")), "a real install, not an editable one"

    version = subprocess.run(
        installed.command([str(installed.venv / "bin" / "syncd"), "--version"]),
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin"},
        cwd=installed.root,
        check=False,
    )
    assert version.returncode == 0, version.stderr
    assert version.stdout.strip() == "syncd 0.1.0"

    where = subprocess.run(
        installed.command(
            [
                str(installed.venv / "bin" / "python"),
                "-c",
                "import json, migrations, syncd, syncd.cli; from syncd.service import statuspage;"
                " print(json.dumps([migrations.__file__, syncd.__file__, statuspage.render_login_page()]))",
            ]
        ),
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin"},
        cwd=installed.root,
        check=False,
    )
    assert where.returncode == 0, where.stderr
    *modules, login_page = json.loads(where.stdout)
    for module in modules:
        assert Path(module).is_relative_to(site_packages), module
    assert 'name="token"' in login_page  # rendered from the installed templates


def test_db_upgrade_and_a_sync_run_with_the_image_environment_alone(site: Site) -> None:
    env = site.env()
    assert env["SYNCD_CONFIG"] == f"{site.root}/config/syncd.toml"
    assert env["SYNCD_DATABASE__URL"] == f"sqlite:///{site.data}/syncd.db"

    upgrade = site.run([SPEC.argv[0], "db", "upgrade"])
    assert upgrade.returncode == 0, upgrade.stderr
    database = site.data / "syncd.db"
    assert database.stat().st_uid == UID
    assert not (site.root / "config" / "syncd.db").exists(), "the env's database URL wins over the file's"

    sync = site.run([SPEC.argv[0], "sync", "--json"])
    assert sync.returncode == 0, sync.stderr
    assert json.loads(sync.stdout)["outcomes"] == {"onboard": {"ok": 3}}
    assert site.onboarded() == set(site.users)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _get(url: str) -> tuple[int, bytes]:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=2) as response:
            return int(response.status), response.read()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, exc.read()


def test_the_daemon_serves_health_syncs_and_stops_cleanly_on_sigterm(site: Site) -> None:
    port = _free_port()
    # The container's run-time environment: `docker exec` gives a command the same one.
    container_env = {
        "SYNCD_ADMIN__LISTEN": f"127.0.0.1:{port}",
        "SYNCD_ADMIN__TOKEN": "container-test-admin-token-0123456789",
        "SYNCD_SYNC__INTERVAL": "1s",
        "SYNCD_SYNC__JITTER": "0s",
    }
    env = site.env(**container_env)
    log_path = site.root / "daemon.log"
    with log_path.open("w", encoding="utf-8") as log:
        daemon = subprocess.Popen(
            site.installed.command(SPEC.argv),  # ENTRYPOINT + CMD: `syncd run`
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=rebase(SPEC.workdir, site.root),
        )
    try:

        def log_tail() -> str:
            text = log_path.read_text(encoding="utf-8", errors="replace")
            return text if len(text) < 6000 else f"{text[:2500]}\n[...]\n{text[-3500:]}"

        deadline = time.monotonic() + 60  # a hang guard: a loaded machine takes its time
        health: tuple[int, bytes] | None = None
        while time.monotonic() < deadline:
            assert daemon.poll() is None, f"syncd run exited with {daemon.returncode}:\n{log_tail()}"
            try:
                health = _get(f"http://127.0.0.1:{port}/healthz")
            except OSError:
                time.sleep(0.1)
                continue
            if health[0] == 200:
                break
            time.sleep(0.1)
        assert health is not None, f"/healthz never answered:\n{log_tail()}"
        assert health[0] == 200, health
        assert json.loads(health[1])["status"] == "ok"

        # The image's own HEALTHCHECK command, pointed at this port, with a proxy it must not use.
        probe = [arg.replace("127.0.0.1:8080", f"127.0.0.1:{port}") for arg in SPEC.healthcheck]
        check = subprocess.run(
            site.installed.command(probe),
            capture_output=True,
            text=True,
            timeout=60,
            env=env | {"http_proxy": "http://127.0.0.1:9", "HTTP_PROXY": "http://127.0.0.1:9"},
            cwd=rebase(SPEC.workdir, site.root),
        )
        assert check.returncode == 0, check.stderr

        deadline = time.monotonic() + 60  # a hang guard: a loaded machine takes its time
        while site.onboarded() != set(site.users) and time.monotonic() < deadline:
            assert daemon.poll() is None, f"syncd run exited with {daemon.returncode}:\n{log_tail()}"
            time.sleep(0.1)
        assert site.onboarded() == set(site.users), log_tail()

        # `docker exec <container> syncd resync --wait`: found by SYNCD_CONFIG alone, no --config.
        resync = site.run([SPEC.argv[0], "resync", "--wait"], **container_env)
        assert resync.returncode == 0, f"{resync.stdout}{resync.stderr}\n{log_tail()}"
        assert json.loads(resync.stdout)["exit_code"] == 0

        daemon.send_signal(signal.SIGTERM)
        try:
            # sync.shutdown_grace (20 s) for a cycle in flight, and room for a loaded machine.
            code = daemon.wait(timeout=60)
        except subprocess.TimeoutExpired:
            pytest.fail(f"syncd run did not stop within 60 s of SIGTERM:\n{log_tail()}")
        assert code == 0, log_tail()
        assert (site.data / "syncd.db").stat().st_uid == UID
    finally:
        if daemon.poll() is None:
            daemon.kill()
        daemon.wait()
