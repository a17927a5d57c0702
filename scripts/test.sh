#!/usr/bin/env bash
# Every test of the project, offline: the Rust suite (unit, integration, end-to-end against
# in-process fake DNS/HTTPS/SMTP servers), the alert rules and Alertmanager config (promtool,
# amtool), the Helm chart (Helm's own library, Kubernetes schemas), and the end-to-end run of a
# real Prometheus and Alertmanager against the exporter and the fleet simulator.
#
# Tools the non-Rust checks need are installed when missing and this runs as root with apt
# (Debian packages prometheus, prometheus-alertmanager, jq, iproute2 and util-linux for a test
# run in a network namespace; a Python venv for the Helm checks);
# otherwise each check says what to install and fails.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s\n' "$*"; }

# Tools for the alert, Alertmanager and end-to-end checks (Debian packages).
missing=()
for pair in promtool:prometheus amtool:prometheus-alertmanager prometheus-alertmanager:prometheus-alertmanager jq:jq ip:iproute2 unshare:util-linux; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair#*:}")
done
# Two tools come from one package: each package is named (and installed) once.
if [ "${#missing[@]}" -gt 0 ]; then
  mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
fi
if [ "${#missing[@]}" -gt 0 ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  step "installing ${missing[*]}"
  apt-get update -qq >/dev/null 2>&1 || true
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

step "cargo test"
cargo test --locked

for check in scripts/check-alerts.sh scripts/check-helm.sh scripts/e2e-prometheus.sh; do
  step "$check"
  bash "$check"
done

printf '\nAll tests passed.\n'
