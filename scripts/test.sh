#!/usr/bin/env bash
# Every test of the project, offline: the Rust suite (unit, integration, end-to-end against
# in-process fake DNS/HTTPS/SMTP servers), the alert rules and Alertmanager config (promtool,
# amtool), the Helm chart (Helm's own library, Kubernetes schemas), and the end-to-end run of a
# real Prometheus and Alertmanager against the exporter and the fleet simulator.
#
# Tools the non-Rust checks need are installed when missing and this runs as root with apt
# (Debian packages prometheus and prometheus-alertmanager; a Python venv for the Helm checks);
# otherwise each check says what to install and fails.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s\n' "$*"; }

step "cargo test"
cargo test --locked

for check in scripts/check-alerts.sh scripts/check-helm.sh scripts/e2e-prometheus.sh; do
  step "$check"
  bash "$check"
done

printf '\nAll tests passed.\n'
