#!/usr/bin/env python3
"""Generates emulator/src/patch/schema_table.json: strategic-merge patch metadata of built-in kinds.

Regenerate (from the repository root):

    pip install kubernetes-validate==1.33.1
    python3 emulator/tools/gen_patch_schema.py

The Kubernetes 1.33 JSON schemas bundled with kubernetes-validate are walked from every
definition that carries `x-kubernetes-group-version-kind`. For each field path (field names
from the object root, list indices omitted) that carries any of `x-kubernetes-patch-merge-key`,
`x-kubernetes-patch-strategy`, `x-kubernetes-list-type` or `x-kubernetes-list-map-keys`, one
entry is written:

    {"<apiVersion>/<Kind>": {"<dotted.path>": {"key": ..., "strategy": ..., "listType": ..., "mapKeys": [...]}}}

Only non-empty attributes are written; keys are sorted; one kind per line. Output is deterministic.
"""

from __future__ import annotations

import json
import pathlib
import sys

import kubernetes_validate

K8S_VERSION = "1.33"
# JSONSchemaProps (CRDs) is recursive; a $ref already on the current path is a cycle.
MAX_DEPTH = 40
OUT = pathlib.Path(__file__).resolve().parent.parent / "src" / "patch" / "schema_table.json"


def definitions_file() -> pathlib.Path:
    base = pathlib.Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema"
    # Prefer the non-strict folder; annotations are identical in both.
    dirs = sorted(p for p in base.glob(f"v{K8S_VERSION}.*-local") if p.is_dir())
    if not dirs:
        sys.exit(f"no v{K8S_VERSION}.x schema folder in {base}; install kubernetes-validate==1.33.1")
    return dirs[-1] / "_definitions.json"


def ref_name(ref: str) -> str:
    return ref.rsplit("/", 1)[-1]


def annotations(schema: dict) -> dict:
    out = {}
    if v := schema.get("x-kubernetes-patch-merge-key"):
        out["key"] = v
    if v := schema.get("x-kubernetes-patch-strategy"):
        out["strategy"] = v
    if v := schema.get("x-kubernetes-list-type"):
        out["listType"] = v
    if v := schema.get("x-kubernetes-list-map-keys"):
        out["mapKeys"] = list(v)
    return out


class Walker:
    def __init__(self, defs: dict):
        self.defs = defs

    def walk(self, schema: dict, path: tuple, stack: tuple, table: dict, in_map_value: bool) -> None:
        if len(path) > MAX_DEPTH:
            return
        if "$ref" in schema:
            name = ref_name(schema["$ref"])
            if name in stack:
                return
            stack = stack + (name,)
            target = self.defs[name]
        else:
            target = schema
        for sub in target.get("oneOf", []) + target.get("allOf", []) + target.get("anyOf", []):
            self.walk(sub, path, stack, table, in_map_value)
        for field, prop in sorted(target.get("properties", {}).items()):
            self.field(prop, path + (field,), stack, table, in_map_value)

    def field(self, prop: dict, path: tuple, stack: tuple, table: dict, in_map_value: bool) -> None:
        ann = annotations(prop)
        if ann:
            if in_map_value:
                # The path form cannot address values of string-keyed maps; none carry annotations in 1.33.
                raise SystemExit(f"annotation below a map value at {'.'.join(path)}; extend the path format")
            table[".".join(path)] = ann
        self.value(prop, path, stack, table, in_map_value)

    def value(self, prop: dict, path: tuple, stack: tuple, table: dict, in_map_value: bool) -> None:
        items = prop.get("items")
        if isinstance(items, dict):
            # Lists of lists: inner lists share the path and carry no annotations of their own.
            self.value(items, path, stack, table, in_map_value)
        addl = prop.get("additionalProperties")
        if isinstance(addl, dict):
            self.value(addl, path, stack, table, True)
        if "$ref" in prop or "properties" in prop:
            self.walk(prop, path, stack, table, in_map_value)


def api_version(gvk: dict) -> str:
    return f"{gvk['group']}/{gvk['version']}" if gvk["group"] else gvk["version"]


def main() -> None:
    src = definitions_file()
    defs = json.loads(src.read_text())["$defs"]
    walker = Walker(defs)
    kinds: dict[str, dict] = {}
    for name in sorted(defs):
        gvks = defs[name].get("x-kubernetes-group-version-kind")
        if not gvks:
            continue
        table: dict = {}
        walker.walk({"$ref": f"#/$defs/{name}"}, (), (), table, False)
        for gvk in gvks:
            key = f"{api_version(gvk)}/{gvk['kind']}"
            if key in kinds and kinds[key] != table:
                raise SystemExit(f"two different definitions for {key}")
            kinds[key] = table
    lines = []
    for key in sorted(kinds):
        body = json.dumps(kinds[key], sort_keys=True, separators=(",", ":"))
        lines.append(f"{json.dumps(key)}:{body}")
    OUT.write_text("{\n" + ",\n".join(lines) + "\n}\n")
    print(f"wrote {len(kinds)} kinds, {OUT.stat().st_size} bytes to {OUT} from {src.parent.name}")


if __name__ == "__main__":
    main()
