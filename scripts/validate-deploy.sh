#!/usr/bin/env bash
# Validates deploy/ offline: renders each kustomize overlay and checks every
# manifest against the Kubernetes JSON schemas shipped in the PyPI package
# kubernetes-validate (installed once into a venv; PyPI is the only network
# used), and the Grafana dashboard against Warden's metric names.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${WARDEN_DEPLOY_VENV:-${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/warden/deploy-venv}
# Pinned: a new release may ship other schemas and change the verdict.
PACKAGE=kubernetes-validate==1.37.0
if ! "$VENV/bin/python" -c 'import kubernetes_validate, yaml, jsonschema' >/dev/null 2>&1 \
  || [ "$("$VENV/bin/python" -c 'import kubernetes_validate; print(kubernetes_validate.__version__)' 2>/dev/null)" != "1.37.0" ]; then
  echo "installing $PACKAGE into $VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check "$PACKAGE"
fi
"$VENV/bin/python" deploy/validate.py
