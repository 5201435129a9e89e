#!/usr/bin/env python3
"""Validates every document of the given YAML files against the Kubernetes schemas bundled by
PyPI's kubernetes-validate, in strict mode (unknown fields are errors).

Kinds without a bundled schema fail, except the Prometheus Operator kinds (ServiceMonitor,
PrometheusRule), which are reported as such: their rules are checked by promtool and both are
applied to the emulator through a CRD by tests/chart.rs.

Usage: validate-manifests.py [--kubernetes-version 1.33.0] FILE...
Installed by scripts/services.sh (pip install kubernetes-validate).
"""
import argparse
import sys

try:
    import kubernetes_validate
    import yaml
except ImportError as err:
    sys.exit(f"{err}: install it with `pip install kubernetes-validate` (make services does)")

NO_SCHEMA_OK = {("monitoring.coreos.com/v1", "ServiceMonitor"), ("monitoring.coreos.com/v1", "PrometheusRule")}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kubernetes-version", default="1.33.0")
    parser.add_argument("files", nargs="+")
    args = parser.parse_args()
    failures = 0
    checked = 0
    for path in args.files:
        with open(path, encoding="utf-8") as handle:
            docs = [doc for doc in yaml.safe_load_all(handle) if doc]
        for doc in docs:
            what = f"{path}: {doc.get('apiVersion')}/{doc.get('kind')} {doc.get('metadata', {}).get('name')}"
            try:
                kubernetes_validate.validate(doc, args.kubernetes_version, strict=True)
                checked += 1
                print(f"ok       {what}")
            except kubernetes_validate.SchemaNotFoundError:
                if (doc.get("apiVersion"), doc.get("kind")) in NO_SCHEMA_OK:
                    print(f"noschema {what} (Prometheus Operator kind: no bundled schema)")
                else:
                    failures += 1
                    print(f"FAILED   {what}: no Kubernetes {args.kubernetes_version} schema for this kind")
            except kubernetes_validate.ValidationError as err:
                failures += 1
                location = ".".join(str(p) for p in err.path)
                print(f"FAILED   {what}: {location}: {err.message}")
    print(f"{checked} documents valid against Kubernetes {args.kubernetes_version} (strict), {failures} failed")
    return 1 if failures or checked == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
