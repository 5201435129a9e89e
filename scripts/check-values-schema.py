#!/usr/bin/env python3
"""Checks a chart's values (as JSON) against its values.schema.json, as `helm install` does.

Usage: check-values-schema.py values.schema.json values.json
Prints every violation with its path; exit status 1 when there is one.
"""
import json
import sys

try:
    import jsonschema
except ImportError as err:
    sys.exit(f"{err}: install it with `pip install kubernetes-validate` (it brings jsonschema; make services does)")


def main():
    schema_path, values_path = sys.argv[1:3]
    with open(schema_path, encoding="utf-8") as handle:
        schema = json.load(handle)
    with open(values_path, encoding="utf-8") as handle:
        values = json.load(handle)
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    errors = sorted(validator_class(schema).iter_errors(values), key=lambda e: list(e.path))
    for error in errors:
        location = ".".join(str(p) for p in error.path) or "(root)"
        print(f"{location}: {error.message}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
