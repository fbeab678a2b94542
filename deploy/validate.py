#!/usr/bin/env python3
"""Offline validation of deploy/: renders every overlay and checks it.

kustomize is not a Debian package, so this renders the subset of
kustomize that deploy/ uses (resources, patches by kind+name with
strategic merge, namespace, labels, images, secretGenerator and
configMapGenerator with fixed names) and refuses any other kustomization
field, so it never silently renders something kustomize would not. Where
`kubectl` is installed, its own `kubectl kustomize` output must equal ours.

Every rendered manifest is validated, strictly, against the Kubernetes JSON
schemas shipped in the `kubernetes-validate` package; the ServiceMonitor
(a CRD) against the schema written below. The Grafana dashboard must parse
and every query name only metrics Warden exports.

Exits non-zero on any error; prints what it validated.
"""

import base64
import copy
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

import yaml

DEPLOY = os.path.dirname(os.path.abspath(__file__))
OVERLAYS = ["trial", "production"]
KUBERNETES_VERSION = "1.30.0"

# The metrics Warden exports (the metrics engineer uses these names).
METRICS = {
    "warden_rpc_calls_total": "counter",
    "warden_rpc_duration_seconds": "histogram",
    "warden_decisions_total": "counter",
    "warden_cache_hits_total": "counter",
    "warden_cache_misses_total": "counter",
    "warden_cache_evictions_total": "counter",
    "warden_invalidations_total": "counter",
    "warden_catch_ups_total": "counter",
    "warden_reloads_total": "counter",
    "warden_bus_messages_total": "counter",
    "warden_bus_gaps_total": "counter",
    "warden_propagation_delay_seconds": "histogram",
    "warden_store_operations_total": "counter",
    "warden_store_errors_total": "counter",
    "warden_organizations": "gauge",
    "warden_records": "gauge",
    "warden_shares": "gauge",
}

KNOWN_FIELDS = {
    "apiVersion",
    "kind",
    "resources",
    "patches",
    "namespace",
    "labels",
    "images",
    "secretGenerator",
    "configMapGenerator",
    "generatorOptions",
}

# Strategic-merge keys of the lists deploy/ patches; any other list is
# replaced whole, as kustomize does for lists without a merge key.
MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "volumes": "name",
    "env": "name",
    "volumeMounts": "mountPath",
    "imagePullSecrets": "name",
    "topologySpreadConstraints": "topologyKey",
}

# ServiceMonitor (monitoring.coreos.com/v1): the fields deploy/ uses, strict.
SERVICE_MONITOR_SCHEMA = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"},
        "kind": {"const": "ServiceMonitor"},
        "metadata": {
            "type": "object",
            "required": ["name"],
            "properties": {
                "name": {"type": "string", "minLength": 1},
                "namespace": {"type": "string"},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
            },
        },
        "spec": {
            "type": "object",
            "required": ["selector", "endpoints"],
            "additionalProperties": False,
            "properties": {
                "selector": {
                    "type": "object",
                    "properties": {
                        "matchLabels": {
                            "type": "object",
                            "additionalProperties": {"type": "string"},
                        }
                    },
                    "additionalProperties": False,
                },
                "namespaceSelector": {"type": "object"},
                "endpoints": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "required": ["port"],
                        "additionalProperties": False,
                        "properties": {
                            "port": {"type": "string"},
                            "path": {"type": "string", "pattern": "^/"},
                            "scheme": {"enum": ["http", "https"]},
                            "interval": {"type": "string", "pattern": "^[0-9]+(ms|s|m|h)$"},
                            "scrapeTimeout": {
                                "type": "string",
                                "pattern": "^[0-9]+(ms|s|m|h)$",
                            },
                        },
                    },
                },
            },
        },
    },
}


class Error(Exception):
    pass


def load_yaml_docs(path):
    with open(path, encoding="utf-8") as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


def key(doc):
    return (doc.get("kind"), doc.get("metadata", {}).get("name"))


def strategic_merge(base, patch, path="", field=""):
    """Merges patch into base as kustomize's strategic merge does for the
    lists named in MERGE_KEYS; null deletes a key."""
    if isinstance(base, dict) and isinstance(patch, dict):
        out = dict(base)
        for k, v in patch.items():
            if v is None:
                out.pop(k, None)
            elif k in out:
                out[k] = strategic_merge(out[k], v, f"{path}.{k}", k)
            else:
                out[k] = copy.deepcopy(v)
        return out
    if isinstance(base, list) and isinstance(patch, list) and field in MERGE_KEYS:
        mk = MERGE_KEYS[field]
        out = [copy.deepcopy(x) for x in base]
        for item in patch:
            if not isinstance(item, dict) or mk not in item:
                raise Error(f"patch list {path} item lacks merge key {mk}")
            for i, existing in enumerate(out):
                if existing.get(mk) == item[mk]:
                    out[i] = strategic_merge(existing, item, path, "")
                    break
            else:
                # kustomize puts new items of a merged list first.
                out.insert(0, copy.deepcopy(item))
        return out
    return copy.deepcopy(patch)


def read_key_value_file(path):
    pairs = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            k, sep, v = line.partition("=")
            if not sep:
                raise Error(f"{path}: line without '=': {line!r}")
            pairs.append((k, v))
    return pairs


def generate(spec, kind, root, options):
    if not options.get("disableNameSuffixHash"):
        raise Error(
            f"{root}: generated {kind} {spec.get('name')} needs "
            "generatorOptions.disableNameSuffixHash: true (hash suffixes are not rendered here)"
        )
    unknown = set(spec) - {"name", "literals", "files", "envs", "type"}
    if unknown:
        raise Error(f"{root}: {kind} generator field(s) not supported: {sorted(unknown)}")
    data = {}
    for lit in spec.get("literals", []):
        k, sep, v = lit.partition("=")
        if not sep:
            raise Error(f"{root}: literal without '=': {lit!r}")
        data[k] = v
    for entry in spec.get("files", []):
        k, sep, f = entry.partition("=")
        if not sep:
            k, f = os.path.basename(entry), entry
        with open(os.path.join(root, f), encoding="utf-8") as fh:
            data[k] = fh.read()
    for env in spec.get("envs", []):
        for k, v in read_key_value_file(os.path.join(root, env)):
            data[k] = v
    doc = {"apiVersion": "v1", "kind": kind, "metadata": {"name": spec["name"]}}
    if kind == "Secret":
        doc["type"] = spec.get("type", "Opaque")
        doc["data"] = {
            k: base64.b64encode(v.encode("utf-8")).decode("ascii") for k, v in data.items()
        }
    else:
        doc["data"] = data
    return doc


def set_image(doc, images):
    spec = doc.get("spec", {}).get("template", {}).get("spec", {})
    for c in spec.get("containers", []) + spec.get("initContainers", []):
        name, _, tag = c["image"].partition(":")
        for img in images:
            if img["name"] == name:
                new = img.get("newName", name)
                new_tag = img.get("newTag", tag)
                c["image"] = f"{new}:{new_tag}" if new_tag else new


def render(root):
    """The resources of the kustomization in directory root, in order."""
    path = os.path.join(root, "kustomization.yaml")
    if not os.path.exists(path):
        raise Error(f"{root}: no kustomization.yaml")
    k = load_yaml_docs(path)[0]
    unknown = set(k) - KNOWN_FIELDS
    if unknown:
        raise Error(f"{path}: field(s) not supported by this renderer: {sorted(unknown)}")
    docs = []
    for res in k.get("resources", []):
        full = os.path.normpath(os.path.join(root, res))
        if os.path.isdir(full):
            docs.extend(render(full))
        else:
            docs.extend(load_yaml_docs(full))
    options = k.get("generatorOptions", {})
    for spec in k.get("configMapGenerator", []):
        docs.append(generate(spec, "ConfigMap", root, options))
    for spec in k.get("secretGenerator", []):
        docs.append(generate(spec, "Secret", root, options))
    seen = set()
    for d in docs:
        if key(d) in seen:
            raise Error(f"{root}: {key(d)} defined twice")
        seen.add(key(d))
    for p in k.get("patches", []):
        if set(p) != {"path"}:
            raise Error(f"{path}: only `patches: - path:` is supported, got {p}")
        for patch in load_yaml_docs(os.path.join(root, p["path"])):
            matches = [i for i, d in enumerate(docs) if key(d) == key(patch)]
            if len(matches) != 1:
                raise Error(f"{path}: patch {p['path']} matches no resource {key(patch)}")
            docs[matches[0]] = strategic_merge(docs[matches[0]], patch)
    for group in k.get("labels", []):
        if set(group) - {"pairs"}:
            raise Error(f"{path}: labels support only `pairs` (no selectors or templates)")
        for d in docs:
            d.setdefault("metadata", {}).setdefault("labels", {}).update(group["pairs"])
    if "images" in k:
        for d in docs:
            set_image(d, k["images"])
    if "namespace" in k:
        for d in docs:
            if d["kind"] == "Namespace":
                continue
            d.setdefault("metadata", {})["namespace"] = k["namespace"]
    return docs


def check_references(docs, overlay, external_secrets):
    """Every Secret, ConfigMap and ServiceAccount a pod names exists in the
    overlay, or is one the operator creates (external_secrets)."""
    names = {key(d) for d in docs}
    errors = []
    for d in docs:
        spec = d.get("spec", {}).get("template", {}).get("spec")
        if spec is None:
            continue
        wanted = []
        sa = spec.get("serviceAccountName")
        if sa:
            wanted.append(("ServiceAccount", sa))
        for v in spec.get("volumes", []):
            if "secret" in v:
                wanted.append(("Secret", v["secret"]["secretName"]))
            if "configMap" in v:
                wanted.append(("ConfigMap", v["configMap"]["name"]))
        for c in spec.get("containers", []):
            for ef in c.get("envFrom", []):
                if "secretRef" in ef:
                    wanted.append(("Secret", ef["secretRef"]["name"]))
                if "configMapRef" in ef:
                    wanted.append(("ConfigMap", ef["configMapRef"]["name"]))
            for e in c.get("env", []):
                ref = e.get("valueFrom", {})
                if "secretKeyRef" in ref:
                    wanted.append(("Secret", ref["secretKeyRef"]["name"]))
                if "configMapKeyRef" in ref:
                    wanted.append(("ConfigMap", ref["configMapKeyRef"]["name"]))
        for kind, name in wanted:
            if (kind, name) in names:
                continue
            if kind == "Secret" and name in external_secrets:
                continue
            errors.append(f"{overlay}: {d['kind']}/{d['metadata']['name']} names missing {kind}/{name}")
    return errors


def compare_with_kubectl(overlay_dir, docs):
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        print("  (kubectl not installed: no cross-check with kubectl kustomize)")
        return []
    out = subprocess.run(
        [kubectl, "kustomize", overlay_dir], capture_output=True, text=True, check=False
    )
    if out.returncode != 0:
        return [f"kubectl kustomize {overlay_dir} failed: {out.stderr.strip()}"]
    theirs = {key(d): d for d in yaml.safe_load_all(out.stdout) if d}
    # kubectl folds long base64 values over lines; the bytes are the same.
    for d in theirs.values():
        if d.get("kind") == "Secret":
            d["data"] = {k: re.sub(r"\s", "", v) for k, v in d.get("data", {}).items()}
    ours = {key(d): d for d in docs}
    errors = []
    if set(theirs) != set(ours):
        errors.append(
            f"kubectl kustomize renders {sorted(map(str, theirs))}, this renderer {sorted(map(str, ours))}"
        )
    for k in sorted(set(theirs) & set(ours), key=str):
        if theirs[k] != ours[k]:
            errors.append(
                f"{k}: kubectl kustomize renders\n{yaml.safe_dump(theirs[k])}\nthis renderer\n{yaml.safe_dump(ours[k])}"
            )
    if not errors:
        print(f"  kubectl kustomize renders the same {len(docs)} resources")
    return errors


def validate_docs(docs, overlay):
    import jsonschema
    import kubernetes_validate

    errors = []
    for d in docs:
        name = f"{overlay}: {d['kind']}/{d['metadata']['name']}"
        if d["apiVersion"].startswith("monitoring.coreos.com/"):
            try:
                jsonschema.validate(d, SERVICE_MONITOR_SCHEMA)
                print(f"  ok {name} (ServiceMonitor schema of deploy/validate.py)")
            except jsonschema.ValidationError as e:
                errors.append(f"{name}: {'.'.join(map(str, e.path))}: {e.message}")
            continue
        try:
            version = kubernetes_validate.validate(d, KUBERNETES_VERSION, strict=True)
            print(f"  ok {name} (Kubernetes {version} schema, strict)")
        except kubernetes_validate.ValidationError as e:
            errors.append(f"{name}: {'.'.join(map(str, e.path))}: {e.message}")
        except kubernetes_validate.SchemaNotFoundError as e:
            errors.append(f"{name}: {e.message}")
    return errors


def check_dashboard(path):
    errors = []
    try:
        with open(path, encoding="utf-8") as f:
            dash = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        return [f"{path}: {e}"], 0
    exprs = []

    def walk(node, where):
        if isinstance(node, dict):
            for k, v in node.items():
                if k == "expr" and isinstance(v, str):
                    exprs.append((where, v))
                else:
                    walk(v, where)
        elif isinstance(node, list):
            for item in node:
                title = item.get("title", "") if isinstance(item, dict) else ""
                walk(item, title or where)

    walk(dash, "")
    if not exprs:
        errors.append(f"{path}: no queries")
    used = set()
    for where, expr in exprs:
        names = set(re.findall(r"\bwarden_[a-z0-9_]+", expr))
        if not names:
            errors.append(f"{path}: panel {where!r}: query names no Warden metric: {expr}")
        for n in names:
            base = re.sub(r"_(bucket|sum|count)$", "", n)
            if n in METRICS:
                used.add(n)
            elif base in METRICS and METRICS[base] == "histogram":
                used.add(base)
            else:
                errors.append(f"{path}: panel {where!r}: unknown metric {n} in {expr}")
    for m in sorted(set(METRICS) - used):
        errors.append(f"{path}: no panel shows {m}")
    return errors, len(exprs)


def self_check():
    """The checks must be able to fail: a broken manifest, a missing Secret
    and an unknown metric are each reported."""
    bad = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "broken"},
        "spec": {
            "replicas": "three",
            "selector": {"matchLabels": {"a": "b"}},
            "template": {
                "metadata": {"labels": {"a": "b"}},
                "spec": {
                    "containers": [
                        {
                            "name": "c",
                            "image": "i",
                            "envFrom": [{"secretRef": {"name": "absent"}}],
                        }
                    ]
                },
            },
        },
    }
    problems = []
    if not validate_docs([bad], "self-check"):
        problems.append("a Deployment with replicas: three passed the schema")
    if not check_references([bad], "self-check", set()):
        problems.append("a missing Secret passed the reference check")
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump({"panels": [{"title": "t", "targets": [{"expr": "rate(warden_nope_total[5m])"}]}]}, f)
    try:
        dash_errors, _ = check_dashboard(f.name)
    finally:
        os.unlink(f.name)
    if not any("unknown metric warden_nope_total" in e for e in dash_errors):
        problems.append("a dashboard query over an unknown metric passed")
    return problems


def main():
    errors = []
    with open(os.devnull, "w") as quiet:
        stdout, sys.stdout = sys.stdout, quiet
        try:
            problems = self_check()
        finally:
            sys.stdout = stdout
    if problems:
        for p in problems:
            print(f"ERROR self-check: {p}", file=sys.stderr)
        return 1
    print("self-check: a broken manifest, a missing Secret and an unknown metric are each caught")
    external = {"production": {"warden-store", "warden-tokens"}, "trial": set()}
    for overlay in OVERLAYS:
        overlay_dir = os.path.join(DEPLOY, "overlays", overlay)
        print(f"overlay {overlay}:")
        try:
            docs = render(overlay_dir)
        except (Error, OSError, yaml.YAMLError, KeyError) as e:
            errors.append(f"{overlay}: {e}")
            continue
        print(f"  rendered {len(docs)} resources: " + ", ".join(f"{k}/{n}" for k, n in map(key, docs)))
        errors += validate_docs(docs, overlay)
        errors += check_references(docs, overlay, external[overlay])
        errors += compare_with_kubectl(overlay_dir, docs)
    dashboard = os.path.join(DEPLOY, "grafana", "warden.json")
    dash_errors, n = check_dashboard(dashboard)
    errors += dash_errors
    if not dash_errors:
        print(f"dashboard grafana/warden.json: {n} queries, every one over the {len(METRICS)} Warden metrics, each shown")
    if errors:
        for e in errors:
            print(f"ERROR {e}", file=sys.stderr)
        print(f"deploy validation: {len(errors)} error(s)", file=sys.stderr)
        return 1
    print("deploy validation: every manifest and the dashboard passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
