"""Validate rendered Kubernetes manifests against the official JSON schemas, offline.

Runs in the tools environment made by deploy/tools/install-tools.sh (kubernetes-validate ships the
schemas of every Kubernetes minor version, so nothing is downloaded). Reads multi-document YAML
files (or "-" for stdin) and prints one JSON line per document:
  {"kind": ..., "apiVersion": ..., "name": ..., "status": "ok" | "invalid" | "no-schema", "error": ...,
   "doc": <the document as parsed>}
"no-schema" means the kind is not part of Kubernetes (a CRD such as ExternalSecret); the caller
decides which of those are expected (--allow-crd KIND; any other kind without a schema fails).
Exit status: 1 when any document is invalid or has no schema and is not allowed, else 0.
With --parse-only the documents are only parsed (status "parsed"): the tests use that to read YAML
without needing PyYAML in the project's own environment.

  .local/tools/kubernetes-validate/bin/python deploy/tools/validate-manifests.py \
      --kubernetes-version 1.31 --strict rendered.yaml
"""

from __future__ import annotations

import argparse
import json
import sys

import yaml
from kubernetes_validate import utils


def documents(path: str) -> list[dict]:
    text = sys.stdin.read() if path == "-" else open(path, encoding="utf-8").read()  # noqa: SIM115
    return [doc for doc in yaml.safe_load_all(text) if doc]


def check(doc: dict, version: str, strict: bool, parse_only: bool) -> dict:
    meta = doc.get("metadata") or {}
    result = {"kind": doc.get("kind"), "apiVersion": doc.get("apiVersion"), "name": meta.get("name")}
    if parse_only:
        result["status"] = "parsed"
        return result
    try:
        utils.validate(doc, version, strict)
        result["status"] = "ok"
    except utils.ValidationError as exc:
        path = ".".join(str(p) for p in exc.path)
        result.update(status="invalid", error=f"{path}: {exc.message}")
    except utils.SchemaNotFoundError as exc:
        result.update(status="no-schema", error=exc.message)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+")
    parser.add_argument("--kubernetes-version", default="1.31")
    parser.add_argument("--strict", action="store_true", help="reject properties the schema does not know")
    parser.add_argument("--allow-crd", action="append", default=[], metavar="KIND",
                        help="a custom resource kind allowed to have no Kubernetes schema (repeatable)")
    parser.add_argument("--parse-only", action="store_true", help="parse and print, do not validate")
    args = parser.parse_args()
    bad = 0
    for path in args.files:
        for doc in documents(path):
            result = check(doc, args.kubernetes_version, args.strict, args.parse_only)
            if result["status"] == "no-schema" and result["kind"] not in args.allow_crd:
                result["status"] = "invalid"
            bad += result["status"] == "invalid"
            result["file"] = path
            result["doc"] = doc
            print(json.dumps(result, default=str), flush=True)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
