"""The Kubernetes manifests (`deploy/kubernetes/`): each overlay rendered as kustomize renders it, checked
against the Kubernetes schemas (`kubernetes-validate`, offline, strict: unknown fields are errors) and
against syncd itself: the configuration the manifests ship loads with the pod's environment, the probes and
ports are the admin listener's, every `*_file` is a file of the mounted Secret, and the pod runs as the
image's unprivileged user on a read-only root filesystem, writing only where a volume is mounted.

No cluster is needed: `tests/kustomize.py` renders the overlays; when `kubectl` is installed its own
`kubectl kustomize` must render the same objects.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import latest_version

from syncd.config.loader import config_path, load_settings
from syncd.config.settings import AdminSettings, Settings
from syncd.service.admin_hosts import OPEN_PATHS
from tests.container.test_image_equivalent import DOCKERFILE, ImageSpec
from tests.kustomize import Manifest, pod_spec, render

ROOT = Path(__file__).resolve().parents[2]
OVERLAYS = ROOT / "deploy" / "kubernetes" / "overlays"
DOCS = ROOT / "docs" / "kubernetes.md"
IMAGE = ImageSpec.parse(DOCKERFILE.read_text(encoding="utf-8"))

KUBERNETES_VERSIONS = ("1.29.0", latest_version())
"""The oldest Kubernetes the manifests are for (its schemas know every field they use) and the newest
`kubernetes-validate` knows."""

BENCHMARK_PEAK_RSS_MB = 250
"""docs/benchmarks.md: a worker's peak RSS over full cycles of 100,000 users is bounded at 250 MB (242 MB
measured)."""

SECRET_VALUES = {
    "graph-client-secret": "the-graph-client-secret",
    "smartcomm-password": "the-smartcomm-password",
    "admin-token": "an-admin-token-of-more-than-32-characters",
    "database-url": "postgresql+psycopg://syncd:Pa55@postgres.syncd.svc:5432/syncd",
}
"""What each key of the Secret "syncd" holds in these tests (docs/kubernetes.md says how to make it)."""


@dataclass(frozen=True)
class Overlay:
    """One rendered overlay and what the tests read from it."""

    name: str
    objects: list[Manifest]

    def one(self, kind: str) -> Manifest:
        (found,) = [manifest for manifest in self.objects if manifest["kind"] == kind]
        return found

    def kinds(self) -> set[str]:
        return {manifest["kind"] for manifest in self.objects}

    @property
    def pod(self) -> dict[str, Any]:
        spec = pod_spec(self.one("Deployment"))
        assert spec is not None
        return spec

    @property
    def container(self) -> dict[str, Any]:
        (container,) = self.pod["containers"]
        return dict(container)

    def volume(self, name: str) -> dict[str, Any]:
        (volume,) = [volume for volume in self.pod["volumes"] if volume["name"] == name]
        return dict(volume)

    def mount(self, path: str) -> dict[str, Any]:
        (mount,) = [mount for mount in self.container["volumeMounts"] if mount["mountPath"] == path]
        return dict(mount)

    def port(self, port: int | str) -> int:
        """A container port, by number or by name."""
        if isinstance(port, int):
            return port
        (number,) = [p["containerPort"] for p in self.container["ports"] if p.get("name") == port]
        return int(number)

    @property
    def config_text(self) -> str:
        """The syncd.toml the ConfigMap mounted at /config holds."""
        name = self.volume("config")["configMap"]["name"]
        (config_map,) = [
            m for m in self.objects if m["kind"] == "ConfigMap" and m["metadata"]["name"] == name
        ]
        return str(config_map["data"][Path(IMAGE.env["SYNCD_CONFIG"]).name])

    def secret_files(self) -> dict[str, str]:
        """Path in the container -> Secret key, for every file of a mounted Secret volume."""
        files = {}
        for mount in self.container["volumeMounts"]:
            secret = self.volume(mount["name"]).get("secret")
            if secret is not None:
                assert mount.get("readOnly") is True, mount
                for item in secret["items"]:
                    files[f"{mount['mountPath']}/{item['path']}"] = item["key"]
        return files

    def environment(self) -> dict[str, str]:
        """The container's environment: the image's ENV, overridden by the pod's `env`."""
        env = dict(IMAGE.env)
        for variable in self.container.get("env", []):
            assert set(variable) == {"name", "value"}, f"only plain values are expected: {variable}"
            env[variable["name"]] = variable["value"]
        return env


@pytest.fixture(scope="module", params=["single", "ha"])
def overlay(request: pytest.FixtureRequest) -> Overlay:
    return Overlay(str(request.param), render(OVERLAYS / str(request.param)))


def file_keys(document: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, str]]:
    """(dotted key, path) of every `*_file` key of a TOML document."""
    for key, value in document.items():
        if isinstance(value, dict):
            yield from file_keys(value, f"{prefix}{key}.")
        elif key.endswith("_file"):
            yield f"{prefix}{key}", str(value)


def shipped_settings(overlay: Overlay, tmp_path: Path) -> Settings:
    """The settings `syncd` in the pod loads: the shipped syncd.toml and the pod's environment through the
    real loader, each Secret file (`SECRET_VALUES`) written under `tmp_path` where the pod has it."""
    secrets = overlay.secret_files()

    def moved(text: str) -> str:
        for path in secrets:
            text = text.replace(path, f"{tmp_path}{path}")
        return text

    for path, key in secrets.items():
        (tmp_path / path.lstrip("/")).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path.lstrip("/")).write_text(SECRET_VALUES[key] + "\n", encoding="utf-8")
    config = tmp_path / "syncd.toml"
    config.write_text(moved(overlay.config_text), encoding="utf-8")
    env = {name: moved(value) for name, value in overlay.environment().items()}
    env["SYNCD_CONFIG"] = str(config)
    return load_settings(config_path(None, env), env)  # the file SYNCD_CONFIG names, as in the image


# -- the render and the schemas ----------------------------------------------------------------------------


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
def test_kubectl_kustomize_renders_the_same_objects(overlay: Overlay) -> None:
    printed = subprocess.run(
        ["kubectl", "kustomize", str(OVERLAYS / overlay.name)],  # noqa: S607 - kubectl from PATH
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    theirs = [document for document in yaml.safe_load_all(printed) if document]

    def by_identity(objects: list[Manifest]) -> dict[tuple[str, str], Manifest]:
        return {(m["kind"], m["metadata"]["name"]): m for m in objects}

    assert by_identity(overlay.objects) == by_identity(theirs)


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_object_validates_against_the_kubernetes_schemas(overlay: Overlay, version: str) -> None:
    for manifest in overlay.objects:
        kubernetes_validate.validate(manifest, version, strict=True)
    # Strict: a misspelt field is an error, so the check above is not vacuous.
    broken = overlay.one("Deployment") | {"spec": {**overlay.one("Deployment")["spec"], "replica": 2}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, version, strict=True)


def test_each_overlay_holds_what_it_promises(overlay: Overlay) -> None:
    common = {"Namespace", "ServiceAccount", "ConfigMap", "Deployment", "Service", "NetworkPolicy"}
    spec = overlay.one("Deployment")["spec"]
    labels = spec["template"]["metadata"]["labels"]
    assert spec["selector"]["matchLabels"].items() <= labels.items()
    assert overlay.one("Service")["spec"]["selector"].items() <= labels.items()
    if overlay.name == "single":
        assert overlay.kinds() == common | {"PersistentVolumeClaim"}
        # SQLite allows one daemon per database: never two pods, not even during a rollout.
        assert (spec["replicas"], spec["strategy"]) == (1, {"type": "Recreate"})
        claim = overlay.one("PersistentVolumeClaim")
        assert overlay.volume("data") == {
            "name": "data",
            "persistentVolumeClaim": {"claimName": "syncd-data"},
        }
        assert claim["metadata"]["name"] == "syncd-data"
        assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    else:
        assert overlay.kinds() == common | {"PodDisruptionBudget"}
        assert spec["replicas"] == 2
        # A new pod (a standby, ready at once) starts before an old one stops.
        assert spec["strategy"]["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": 0}
        budget = overlay.one("PodDisruptionBudget")["spec"]
        assert budget["selector"]["matchLabels"].items() <= labels.items()
        assert 1 <= budget["minAvailable"] < spec["replicas"]


# -- syncd's own settings -----------------------------------------------------------------------------------


def test_the_shipped_configuration_loads_with_the_pods_environment(overlay: Overlay, tmp_path: Path) -> None:
    settings = shipped_settings(overlay, tmp_path)
    assert settings.graph is not None
    assert settings.smartcomm is not None
    assert settings.graph.client_secret is not None
    assert settings.graph.client_secret.get_secret_value() == SECRET_VALUES["graph-client-secret"]
    assert settings.smartcomm.password.get_secret_value() == SECRET_VALUES["smartcomm-password"]
    assert settings.admin.token is not None
    assert settings.admin.token.get_secret_value() == SECRET_VALUES["admin-token"]
    assert settings.log.format == "json"
    if overlay.name == "single":
        # The image's SQLite file, on the claim mounted at /data.
        assert settings.database.url == IMAGE.env["SYNCD_DATABASE__URL"] == "sqlite:////data/syncd.db"
        assert overlay.mount("/data")["name"] == "data"
        assert "persistentVolumeClaim" in overlay.volume("data")
    else:
        assert settings.database.url == SECRET_VALUES["database-url"]


def test_probes_and_ports_are_the_admin_listeners(overlay: Overlay, tmp_path: Path) -> None:
    admin = shipped_settings(overlay, tmp_path).admin
    assert admin.port == AdminSettings().port == 8080  # the default port, kept
    assert admin.host == "0.0.0.0"  # noqa: S104 - reachable by the kubelet, the Service and Prometheus
    container = overlay.container
    assert [p["containerPort"] for p in container["ports"]] == [admin.port]
    probes = {name: container[f"{name}Probe"]["httpGet"] for name in ("startup", "liveness", "readiness")}
    assert {name: probe["path"] for name, probe in probes.items()} == {
        "startup": "/healthz",
        "liveness": "/healthz",
        "readiness": "/readyz",
    }
    for probe in probes.values():
        assert overlay.port(probe["port"]) == admin.port
        assert probe.get("scheme", "HTTP") == ("HTTPS" if admin.tls else "HTTP")
        assert probe["path"] in OPEN_PATHS  # answered whatever the Host header (the pod IP) says
    # The readiness probe outwaits the database check /readyz makes (5 s).
    assert container["readinessProbe"]["timeoutSeconds"] > 5
    (service_port,) = overlay.one("Service")["spec"]["ports"]
    assert (service_port["port"], overlay.port(service_port["targetPort"])) == (admin.port, admin.port)
    (rule,) = overlay.one("NetworkPolicy")["spec"]["ingress"]
    assert [overlay.port(port["port"]) for port in rule["ports"]] == [admin.port]
    annotations = overlay.one("Deployment")["spec"]["template"]["metadata"]["annotations"]
    assert int(annotations["prometheus.io/port"]) == admin.port
    assert annotations["prometheus.io/path"] == "/metrics"


def test_every_file_key_is_a_file_of_the_mounted_secret(overlay: Overlay) -> None:
    secrets = overlay.secret_files()
    named = dict(file_keys(tomllib.loads(overlay.config_text)))
    for variable, value in overlay.environment().items():
        if variable.startswith("SYNCD_") and variable.endswith("_FILE"):
            named[variable] = value
    assert named, "the shipped configuration reads no secret from a file"
    for key, path in named.items():
        assert path in secrets, f"{key} = {path}: not a file of a mounted Secret ({sorted(secrets)})"
    # ... and every file of the Secret is read by some key: no key is mounted for nothing.
    assert set(secrets) == set(named.values())
    assert set(secrets.values()) <= set(SECRET_VALUES)
    if overlay.name == "ha":
        assert "database-url" in secrets.values()
    # No secret value in the configuration itself.
    for section in tomllib.loads(overlay.config_text).values():
        assert not {"client_secret", "password", "token", "webhook_url"} & set(section)


def test_the_docs_name_every_key_of_the_secret(overlay: Overlay) -> None:
    text = DOCS.read_text(encoding="utf-8")
    for key in overlay.secret_files().values():
        assert f"--from-file={key}=" in text, f"docs/kubernetes.md does not say how to make the key {key}"


# -- the pod ----------------------------------------------------------------------------------------------


def test_the_pod_runs_unprivileged_on_a_read_only_root_filesystem(overlay: Overlay) -> None:
    pod, container = overlay.pod, overlay.container
    uid, _, gid = IMAGE.user.partition(":")
    context = pod["securityContext"]
    assert context["runAsNonRoot"] is True
    assert (str(context["runAsUser"]), str(context["runAsGroup"])) == (uid, gid)  # the image's own user
    assert context["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "privileged": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
    }
    # No API token (syncd never calls the Kubernetes API) and no service links: they would put
    # SYNCD_SERVICE_HOST and the like where syncd reads its settings.
    assert pod["automountServiceAccountToken"] is False
    assert overlay.one("ServiceAccount")["automountServiceAccountToken"] is False
    assert pod["enableServiceLinks"] is False
    assert not {"hostNetwork", "hostPID", "hostIPC"} & set(pod)
    assert all("hostPath" not in volume for volume in pod["volumes"])
    # The image's own ENTRYPOINT and CMD (`syncd run`).
    assert "command" not in container
    assert "args" not in container
    assert container["image"].rsplit("/", 1)[-1].startswith("syncd:")


def test_syncd_writes_only_where_a_volume_is_mounted(overlay: Overlay, tmp_path: Path) -> None:
    settings = shipped_settings(overlay, tmp_path)
    writable = {m["mountPath"] for m in overlay.container["volumeMounts"] if not m.get("readOnly")}
    # The image's WORKDIR and the syncd user's home (/data), Python's temporary files.
    assert writable == {IMAGE.workdir, "/tmp"}  # noqa: S108 - the pod's own /tmp volume
    if settings.database.url.startswith("sqlite"):
        database = Path(settings.database.url.removeprefix("sqlite:///"))
        assert str(database.parent) in writable  # the database, its WAL and its lock files
    assert overlay.mount("/config")["readOnly"] is True
    assert Path(IMAGE.env["SYNCD_CONFIG"]).parent == Path("/config")


def test_resources_are_sized_from_the_benchmark(overlay: Overlay) -> None:
    resources = overlay.container["resources"]
    requests, limits = resources["requests"], resources["limits"]
    assert set(requests) == set(limits) == {"cpu", "memory"}
    assert quantity(requests["memory"]) >= BENCHMARK_PEAK_RSS_MB * 10**6
    assert quantity(limits["memory"]) >= 2 * quantity(requests["memory"])
    assert quantity(limits["cpu"]) >= quantity(requests["cpu"]) > 0


def test_the_network_policy_admits_only_prometheus_and_the_ingress_controller(overlay: Overlay) -> None:
    policy = overlay.one("NetworkPolicy")["spec"]
    labels = overlay.one("Deployment")["spec"]["template"]["metadata"]["labels"]
    assert policy["podSelector"]["matchLabels"].items() <= labels.items()
    assert policy["policyTypes"] == ["Ingress"]
    (rule,) = policy["ingress"]
    prometheus, ingress = rule["from"]
    # No namespaceSelector: Prometheus pods of syncd's own namespace only.
    assert prometheus == {"podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}}}
    assert set(ingress) == {"namespaceSelector", "podSelector"}
    assert ingress["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": "ingress-nginx"}


def quantity(text: str | int) -> float:
    """A Kubernetes quantity ("100m", "1", "256Mi", "1G") as a number (cores, bytes)."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(m|k|M|G|Ki|Mi|Gi)?", str(text))
    assert match is not None, text
    scale = {"m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30}
    return float(match[1]) * scale.get(match[2] or "", 1)
