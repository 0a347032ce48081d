#!/usr/bin/env bash
# Checks deploy/ and dashboards/ without a cluster: tests/python/deploy_check.py (Kubernetes
# schemas from the kubernetes-validate package, offline; compose, Dockerfile and dashboard
# fields) in a virtualenv, after `docker compose config` (or docker-compose) and `promtool check
# config` where those exist.
#
# Env: PYTHON       python interpreter for the virtualenv (default python3)
#      DEPLOY_VENV  where the virtualenv lives (default target/python-deploy)
# Ends with `deploy: N passed, M failed`.
set -euo pipefail
export PYTHONDONTWRITEBYTECODE=1
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=${DEPLOY_VENV:-$PWD/target/python-deploy}

[[ -x $VENV/bin/python ]] || "$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --disable-pip-version-check "pyyaml>=6" "kubernetes-validate>=1.30"

compose=()
if docker compose version >/dev/null 2>&1; then
  compose=(docker compose)
elif command -v docker-compose >/dev/null 2>&1; then
  compose=(docker-compose)
fi
if ((${#compose[@]})); then
  "${compose[@]}" -f deploy/docker-compose.yml config -q
  echo "PASS ${compose[*]} -f deploy/docker-compose.yml config"
else
  echo "SKIP docker compose config: no docker compose here (the YAML checks below still run)"
fi
# The compose stack's Prometheus config, with the rules where this checkout has them.
if command -v promtool >/dev/null 2>&1; then
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  sed "s|/etc/prometheus/alerts.yml|$PWD/deploy/prometheus/alerts.yml|" deploy/prometheus/prometheus.yml >"$tmp/prometheus.yml"
  promtool check config "$tmp/prometheus.yml" >/dev/null
  echo "PASS promtool check config deploy/prometheus/prometheus.yml"
  promtool check config deploy/prometheus/up.yml >/dev/null
  echo "PASS promtool check config deploy/prometheus/up.yml"
else
  echo "SKIP promtool check config: no promtool here"
fi
"$VENV/bin/python" tests/python/deploy_check.py
