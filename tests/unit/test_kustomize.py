"""The Python kustomize of the tests (`tests/kustomize.py`) on plain data: strategic merge patches, generated
ConfigMaps and their hash suffix, image rewrites, and refusing what it does not know.

The expected hash suffixes are what `kubectl kustomize` (kustomize v5.5.0) printed for the same input;
tests/unit/test_deploy_kubernetes.py compares whole renders with it when kubectl is installed.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.kustomize import KustomizeError, config_map_hash, render, retag, strategic_merge


def deployment(**spec: object) -> dict[str, object]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "app", "namespace": "ns"},
        "spec": spec,
    }


def test_maps_merge_key_by_key_and_null_deletes() -> None:
    original = deployment(replicas=1, strategy={"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}})
    patch = deployment(replicas=2, strategy={"type": "Recreate", "rollingUpdate": None})
    merged = strategic_merge(original, patch)
    assert merged["spec"] == {"replicas": 2, "strategy": {"type": "Recreate"}}
    assert original["spec"]["replicas"] == 1  # the inputs are left alone


def test_keyed_lists_merge_by_their_merge_key_patch_elements_first() -> None:
    original = deployment(
        template={
            "spec": {
                "containers": [
                    {"name": "app", "image": "a:1", "env": [{"name": "A", "value": "1"}]},
                    {"name": "sidecar", "image": "s:1"},
                ],
                "volumes": [
                    {"name": "config", "configMap": {"name": "c"}},
                    {"name": "data", "emptyDir": {"sizeLimit": "1Mi"}},
                ],
            }
        }
    )
    patch = deployment(
        template={
            "spec": {
                "containers": [
                    {"name": "app", "env": [{"name": "B", "value": "2"}, {"name": "A", "value": "3"}]}
                ],
                "volumes": [
                    {"name": "data", "emptyDir": None, "persistentVolumeClaim": {"claimName": "pvc"}}
                ],
            }
        }
    )
    spec = strategic_merge(original, patch)["spec"]["template"]["spec"]
    assert spec["containers"] == [
        {"name": "app", "image": "a:1", "env": [{"name": "B", "value": "2"}, {"name": "A", "value": "3"}]},
        {"name": "sidecar", "image": "s:1"},
    ]
    assert spec["volumes"] == [
        {"name": "data", "persistentVolumeClaim": {"claimName": "pvc"}},
        {"name": "config", "configMap": {"name": "c"}},
    ]


def test_other_lists_are_replaced_and_delete_directives_remove_elements() -> None:
    original = deployment(
        template={
            "spec": {
                "containers": [
                    {
                        "name": "app",
                        "args": ["run", "--verbose"],
                        "ports": [{"containerPort": 80, "name": "http"}, {"containerPort": 9090}],
                        "volumeMounts": [{"mountPath": "/a", "name": "a"}, {"mountPath": "/b", "name": "b"}],
                    }
                ]
            }
        }
    )
    patch = deployment(
        template={
            "spec": {
                "containers": [
                    {
                        "name": "app",
                        "args": ["run"],
                        "ports": [{"containerPort": 9090, "$patch": "delete"}],
                        "volumeMounts": [{"mountPath": "/b", "readOnly": True}],
                    }
                ]
            }
        }
    )
    (container,) = strategic_merge(original, patch)["spec"]["template"]["spec"]["containers"]
    assert container["args"] == ["run"]
    assert container["ports"] == [{"containerPort": 80, "name": "http"}]
    assert container["volumeMounts"] == [
        {"mountPath": "/b", "name": "b", "readOnly": True},
        {"mountPath": "/a", "name": "a"},
    ]


@pytest.mark.parametrize(
    "patch",
    [
        deployment(**{"$setElementOrder/containers": []}),
        deployment(template={"spec": {"containers": [{"image": "no-name"}]}}),
        deployment(template={"spec": {"volumes": [{"name": "a", "$patch": "replace"}]}}),
    ],
)
def test_directives_and_elements_it_does_not_know_are_refused(patch: dict[str, object]) -> None:
    original = deployment(template={"spec": {"containers": [{"name": "app"}], "volumes": [{"name": "a"}]}})
    with pytest.raises(KustomizeError):
        strategic_merge(original, patch)


@pytest.mark.parametrize(
    ("data", "suffix"),
    [
        ({"a": "b"}, "4h2mbtbbt6"),  # kubectl kustomize: configMapGenerator literals a=b
        ({"x.toml": "a = 1 < 2 & 3 > 0\n"}, "d2tb5bgfm2"),  # a file x.toml: Go escapes <, & and >
    ],
)
def test_the_config_map_hash_is_kustomizes(data: dict[str, str], suffix: str) -> None:
    assert config_map_hash(data) == suffix
    assert len(suffix) == 10
    assert not set(suffix) & set("013ae")


@pytest.mark.parametrize(
    ("image", "rule", "expected"),
    [
        ("syncd", {"name": "syncd", "newName": "r.example/syncd", "newTag": "1.0"}, "r.example/syncd:1.0"),
        ("syncd:old", {"name": "syncd", "newTag": "2.0"}, "syncd:2.0"),
        ("syncd:old", {"name": "syncd", "newName": "r.example:5000/syncd"}, "r.example:5000/syncd:old"),
        ("syncd", {"name": "syncd", "digest": "sha256:abc"}, "syncd@sha256:abc"),
        ("other:1", {"name": "syncd", "newTag": "2.0"}, "other:1"),
        ("r.example:5000/syncd:1", {"name": "r.example:5000/syncd", "newTag": "2"}, "r.example:5000/syncd:2"),
    ],
)
def test_images_are_rewritten_by_name(image: str, rule: dict[str, str], expected: str) -> None:
    assert retag(image, rule) == expected


def write(path: Path, *documents: object) -> None:
    path.write_text(yaml.safe_dump_all(documents), encoding="utf-8")


def test_an_overlay_renders_its_base_generators_patches_and_images(tmp_path: Path) -> None:
    base, overlay = tmp_path / "base", tmp_path / "overlay"
    base.mkdir()
    overlay.mkdir()
    (base / "app.toml").write_text("a = 1\n")
    write(
        base / "deployment.yaml",
        deployment(
            replicas=1,
            template={
                "spec": {
                    "containers": [
                        {"name": "app", "image": "app", "envFrom": [{"configMapRef": {"name": "cfg"}}]}
                    ],
                    "volumes": [{"name": "config", "configMap": {"name": "cfg"}}],
                }
            },
        ),
    )
    write(
        base / "kustomization.yaml",
        {
            "resources": ["deployment.yaml"],
            "configMapGenerator": [{"name": "cfg", "namespace": "ns", "files": ["app.toml"]}],
        },
    )
    write(overlay / "replicas.yaml", deployment(replicas=3))
    write(
        overlay / "kustomization.yaml",
        {
            "resources": ["../base"],
            "patches": [{"path": "replicas.yaml"}],
            "images": [{"name": "app", "newName": "r.example/app", "newTag": "7"}],
        },
    )
    rendered = {manifest["kind"]: manifest for manifest in render(overlay)}
    suffixed = f"cfg-{config_map_hash({'app.toml': 'a = 1' + chr(10)})}"
    assert rendered["ConfigMap"]["metadata"] == {"name": suffixed, "namespace": "ns"}
    spec = rendered["Deployment"]["spec"]
    assert spec["replicas"] == 3
    (container,) = spec["template"]["spec"]["containers"]
    assert container["image"] == "r.example/app:7"
    assert container["envFrom"] == [{"configMapRef": {"name": suffixed}}]
    assert spec["template"]["spec"]["volumes"] == [{"name": "config", "configMap": {"name": suffixed}}]


def test_fields_it_does_not_know_are_refused(tmp_path: Path) -> None:
    write(tmp_path / "kustomization.yaml", {"resources": [], "namePrefix": "x-"})
    with pytest.raises(KustomizeError, match="namePrefix"):
        render(tmp_path)


def test_a_patch_must_match_one_object(tmp_path: Path) -> None:
    write(tmp_path / "d.yaml", deployment(replicas=1))
    write(tmp_path / "p.yaml", {**deployment(replicas=2), "metadata": {"name": "other", "namespace": "ns"}})
    write(tmp_path / "kustomization.yaml", {"resources": ["d.yaml"], "patches": [{"path": "p.yaml"}]})
    with pytest.raises(KustomizeError, match="matches 0 objects"):
        render(tmp_path)
