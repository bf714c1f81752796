"""A small kustomize in Python: renders `deploy/kubernetes/` overlays without `kubectl`, for the tests.

It does what the manifests use, the way kustomize does it, and refuses anything else (so a manifest that
starts using another feature fails the tests until this learns it):

- `resources`: YAML files (several documents each) and directories holding a kustomization;
- `configMapGenerator`: ConfigMaps from `files` (`path` or `key=path`) and `literals`, named with kustomize's
  content hash suffix (`name-<10 characters>`), and every reference to one renamed (pod volumes, env
  `configMapKeyRef`, `envFrom`, projected volumes) in its namespace;
- `patches`: strategic merge patches from `path` (or inline `patch`), aimed at the object with the patch's
  apiVersion, kind, name and namespace. Maps merge key by key (`null` deletes a key); lists of containers,
  env, volumes, volume mounts, ports and a few more merge by their Kubernetes merge key (`$patch: delete`
  removes an element); every other list is replaced;
- `images`: `newName`, `newTag` and `digest` for the containers whose image has the given name.

tests/unit/test_kustomize.py tests it on plain data, and tests/unit/test_deploy_kubernetes.py compares its
output with `kubectl kustomize` when kubectl is installed.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
KNOWN_FIELDS = frozenset({"apiVersion", "kind", "resources", "patches", "configMapGenerator", "images"})
MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
    "imagePullSecrets": "name",
    "topologySpreadConstraints": "topologyKey",
    "hostAliases": "ip",
}
"""List fields merged element by element in a strategic merge patch, with their merge key (Kubernetes'
`patchMergeKey`); `ports` is keyed by `containerPort` in a container and by `port` in a Service."""

Manifest = dict[str, Any]


class KustomizeError(Exception):
    """A kustomization this renderer cannot render (or kustomize would refuse)."""


def render(directory: Path) -> list[Manifest]:
    """The objects `kubectl kustomize <directory>` prints, in the order they were declared."""
    kustomization = _kustomization(directory)
    unknown = set(kustomization) - KNOWN_FIELDS
    if unknown:
        raise KustomizeError(f"{directory}: fields this renderer does not know: {sorted(unknown)}")
    objects: list[Manifest] = []
    for entry in kustomization.get("resources", []):
        path = (directory / entry).resolve()
        objects += render(path) if path.is_dir() else load_documents(path)
    renamed: dict[tuple[str | None, str], str] = {}
    for generator in kustomization.get("configMapGenerator", []):
        config_map = _config_map(directory, generator)
        renamed[(config_map["metadata"].get("namespace"), generator["name"])] = config_map["metadata"]["name"]
        objects.append(config_map)
    for entry in kustomization.get("patches", []):
        for patch in _patches(directory, entry):
            target = _find(objects, patch)
            objects[objects.index(target)] = strategic_merge(target, patch)
    for image in kustomization.get("images", []):
        for manifest in objects:
            for container in containers(manifest):
                container["image"] = retag(container["image"], image)
    for manifest in objects:
        rename_config_map_references(manifest, renamed)
    return objects


def _kustomization(directory: Path) -> dict[str, Any]:
    for name in KUSTOMIZATION_FILES:
        path = directory / name
        if path.is_file():
            loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
            if not isinstance(loaded, dict):
                raise KustomizeError(f"{path}: not a mapping")
            return loaded
    raise KustomizeError(f"{directory}: no kustomization file")


def load_documents(path: Path) -> list[Manifest]:
    """The non-empty YAML documents of a file, each a mapping with apiVersion, kind and metadata.name."""
    documents = [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc is not None]
    for document in documents:
        if not isinstance(document, dict) or not {"apiVersion", "kind", "metadata"} <= set(document):
            raise KustomizeError(f"{path}: a document without apiVersion, kind and metadata")
    return documents


def identity(manifest: Manifest) -> tuple[str, str, str | None, str]:
    """(apiVersion, kind, namespace, name): what a patch is aimed at."""
    metadata = manifest["metadata"]
    return manifest["apiVersion"], manifest["kind"], metadata.get("namespace"), metadata["name"]


def _find(objects: list[Manifest], patch: Manifest) -> Manifest:
    matches = [manifest for manifest in objects if identity(manifest) == identity(patch)]
    if len(matches) != 1:
        raise KustomizeError(f"a patch for {identity(patch)} matches {len(matches)} objects")
    return matches[0]


def _patches(directory: Path, entry: dict[str, Any]) -> list[Manifest]:
    if set(entry) - {"path", "patch"} or len(entry) != 1:
        raise KustomizeError(f"a patch entry this renderer does not know: {entry}")
    if "path" in entry:
        return load_documents(directory / entry["path"])
    loaded = yaml.safe_load(entry["patch"])
    if not isinstance(loaded, dict):
        raise KustomizeError(f"an inline patch that is not one object: {entry}")
    return [loaded]


# -- the strategic merge patch --------------------------------------------------------------------------


def strategic_merge(original: Manifest, patch: Manifest) -> Manifest:
    """Pure: `original` with the strategic merge patch `patch` applied (neither is changed)."""
    return _merge_map(copy.deepcopy(original), patch)


def _merge_map(original: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    for key, value in patch.items():
        if key.startswith("$"):
            raise KustomizeError(f"a patch directive this renderer does not know: {key}")
        if value is None:
            original.pop(key, None)
        elif isinstance(value, dict) and isinstance(original.get(key), dict):
            original[key] = _merge_map(original[key], value)
        elif isinstance(value, list) and isinstance(original.get(key), list):
            original[key] = _merge_list(key, original[key], value)
        else:
            original[key] = _without_nulls(copy.deepcopy(value))
    return original


def _merge_key(field: str, items: list[Any]) -> str | None:
    if field == "ports":
        return "containerPort" if any("containerPort" in item for item in items) else "port"
    return MERGE_KEYS.get(field)


def _merge_list(field: str, original: list[Any], patch: list[Any]) -> list[Any]:
    key = _merge_key(field, [*original, *patch]) if all(isinstance(i, dict) for i in patch) else None
    if key is None:
        return list(_without_nulls(copy.deepcopy(patch)))
    # kustomize's order: the patch's elements first (merged into the original's, or new), in the patch's
    # order, then the original's other elements in theirs.
    merged, named = [], set()
    for element in patch:
        if key not in element:
            raise KustomizeError(f"an element of {field} without its merge key {key}: {element}")
        named.add(element[key])
        same = next((item for item in original if item.get(key) == element[key]), None)
        directive = element.get("$patch")
        if directive == "delete":
            continue
        if directive is not None:
            raise KustomizeError(f"a patch directive this renderer does not know: $patch: {directive}")
        if same is None:
            merged.append(_without_nulls(copy.deepcopy(element)))
        else:
            merged.append(_merge_map(copy.deepcopy(same), element))
    return merged + [copy.deepcopy(item) for item in original if item.get(key) not in named]


def _without_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(item) for item in value]
    return value


# -- generated ConfigMaps --------------------------------------------------------------------------------


def _config_map(directory: Path, generator: dict[str, Any]) -> Manifest:
    if set(generator) - {"name", "namespace", "files", "literals"}:
        raise KustomizeError(f"a configMapGenerator this renderer does not know: {sorted(generator)}")
    data: dict[str, str] = {}
    for entry in generator.get("files", []):
        key, _, path = entry.rpartition("=")
        data[key or Path(path).name] = (directory / path).read_text(encoding="utf-8")
    for literal in generator.get("literals", []):
        key, _, value = literal.partition("=")
        data[key] = value
    metadata: dict[str, Any] = {"name": generator["name"]}
    if "namespace" in generator:
        metadata["namespace"] = generator["namespace"]
    config_map: Manifest = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": data}
    metadata["name"] = f"{generator['name']}-{config_map_hash(data)}"
    return config_map


def config_map_hash(data: dict[str, str]) -> str:
    """Pure: kustomize's name suffix for a generated ConfigMap: the SHA-256 of `{"data":{...},"kind":
    "ConfigMap","name":""}` as Go's encoding/json writes it (keys sorted, no spaces; <, >, &, U+2028 and
    U+2029 escaped), its first 10 hex digits with 0, 1, 3, a and e spelt g, h, k, m and t. The name is empty:
    kustomize hashes the generated object before it is named, so two ConfigMaps of the same data get the
    same suffix."""
    document = {"data": data, "kind": "ConfigMap", "name": ""}
    encoded = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    for character, escape in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026")):
        encoded = encoded.replace(character, escape)
    encoded = encoded.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
    digest = hashlib.sha256(encoded.encode("utf-8")).hexdigest()
    return digest[:10].translate(str.maketrans("013ae", "ghkmt"))


def pod_spec(manifest: Manifest) -> dict[str, Any] | None:
    """The pod spec of a workload (Deployment, StatefulSet, DaemonSet, Job; a Pod's own), or None."""
    spec = manifest.get("spec") or {}
    if manifest["kind"] == "Pod":
        return spec
    if manifest["kind"] == "CronJob":
        spec = spec.get("jobTemplate", {}).get("spec", {})
    template = spec.get("template")
    return template.get("spec") if isinstance(template, dict) else None


def containers(manifest: Manifest) -> Iterator[dict[str, Any]]:
    """Every container of a workload's pod spec (init containers included)."""
    spec = pod_spec(manifest) or {}
    for field in ("initContainers", "containers"):
        yield from spec.get(field, [])


def retag(image: str, rule: dict[str, Any]) -> str:
    """Pure: `image` as kustomize's `images` entry `rule` rewrites it (unchanged when its name differs)."""
    if set(rule) - {"name", "newName", "newTag", "digest"}:
        raise KustomizeError(f"an images entry this renderer does not know: {sorted(rule)}")
    name, digest = image.partition("@")[0], image.partition("@")[2]
    slash = name.rfind("/")
    colon = name.rfind(":")
    tag = name[colon + 1 :] if colon > slash else ""
    name = name[:colon] if colon > slash else name
    if name != rule["name"]:
        return image
    name = rule.get("newName", name)
    if "digest" in rule:
        return f"{name}@{rule['digest']}"
    tag = rule.get("newTag", tag)
    if "newTag" not in rule and digest:
        return f"{name}@{digest}"
    return f"{name}:{tag}" if tag else name


def rename_config_map_references(manifest: Manifest, renamed: dict[tuple[str | None, str], str]) -> None:
    """Point `manifest`'s references to generated ConfigMaps (by their given name) at their hashed names."""
    spec = pod_spec(manifest)
    if spec is None or not renamed:
        return
    namespace = manifest["metadata"].get("namespace")

    def rename(holder: dict[str, Any] | None) -> None:
        if holder is not None and (namespace, holder.get("name")) in renamed:
            holder["name"] = renamed[(namespace, holder["name"])]

    for volume in spec.get("volumes", []):
        rename(volume.get("configMap"))
        for source in volume.get("projected", {}).get("sources", []):
            rename(source.get("configMap"))
    for container in containers(manifest):
        for variable in container.get("env", []):
            rename(variable.get("valueFrom", {}).get("configMapKeyRef"))
        for source in container.get("envFrom", []):
            rename(source.get("configMapRef"))


__all__ = [
    "KustomizeError",
    "Manifest",
    "config_map_hash",
    "containers",
    "identity",
    "load_documents",
    "pod_spec",
    "rename_config_map_references",
    "render",
    "retag",
    "strategic_merge",
]
