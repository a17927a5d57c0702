#!/usr/bin/env bash
# End to end with the real thing: the fleet simulator, the exporter, a real Prometheus loading
# alerts/ and a real Alertmanager routing with deploy/alertmanager/ to a local webhook. Asserts
# that an MX certificate expiring in 5 days pages at severity=critical, that every alert with a
# simulator scenario fires on it (and the egress alert stays silent), that TLS-RPT reports mailed
# to a maildir and posted to the report listener are counted and fire the failure-ratio alert,
# and that every PromQL expression of the dashboards returns data. Everything on loopback;
# processes stopped at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

need() {
  command -v "$1" >/dev/null 2>&1 && return 0
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing $2 (for $1)"
    (apt-get update -qq || true) >/dev/null 2>&1
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null
  fi
  command -v "$1" >/dev/null 2>&1 || { echo "error: $1 is needed: apt-get install $2" >&2; exit 2; }
}
need prometheus prometheus
need prometheus-alertmanager prometheus-alertmanager

cargo build --locked --quiet --bin mta-sts-exporter --example simulator
exec python3 scripts/e2e_prometheus.py \
  --exporter target/debug/mta-sts-exporter \
  --simulator target/debug/examples/simulator
