#!/usr/bin/env bash
# Checks the monitoring assets like code:
#   - promtool check rules   alerts/*.yml          (syntax, PromQL, templates, lint)
#   - promtool test rules    tests/alerts/*.yml    (unit tests of every alert)
#   - amtool check-config    deploy/alertmanager/alertmanager.yml
#   - amtool config routes test: which receiver representative alerts reach
# Exits 0 when everything passes, 1 when a check fails, 2 when promtool or amtool is missing.
# The cargo test `tests/assets.rs` checks the rest (metric names, runbook anchors, dashboards).
set -uo pipefail
cd "$(dirname "$0")/.."

missing=()
for tool in promtool amtool; do
    command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if ((${#missing[@]})); then
    echo "error: ${missing[*]} not found on PATH." >&2
    echo "  Debian/Ubuntu: apt-get install -y prometheus prometheus-alertmanager" >&2
    echo "  or download promtool (prometheus-*.tar.gz) and amtool (alertmanager-*.tar.gz)" >&2
    echo "  from https://prometheus.io/download/ (Prometheus >= 2.42 for keep_firing_for)." >&2
    exit 2
fi

failed=0
run() {
    echo "== $*"
    if ! "$@"; then
        echo "FAILED: $*" >&2
        failed=1
    fi
}

promtool --version 2>&1 | head -n1
amtool --version 2>&1 | head -n1

shopt -s nullglob
rules=(alerts/*.yml)
tests=(tests/alerts/*.yml)
if ((${#rules[@]} == 0 || ${#tests[@]} == 0)); then
    echo "error: no rule files in alerts/ or no test files in tests/alerts/" >&2
    exit 1
fi

run promtool check rules "${rules[@]}"
run promtool test rules "${tests[@]}"

am=deploy/alertmanager/alertmanager.yml
run amtool check-config "$am"

# route <expected receiver> <label=value>...
route() {
    local want=$1
    shift
    echo "== route $* -> $want"
    if ! amtool config routes test --config.file="$am" --verify.receivers="$want" "$@" \
        >/dev/null 2>&1; then
        echo "FAILED: alert {$*} does not reach receiver $want (it reaches: $(
            amtool config routes test --config.file="$am" "$@" 2>/dev/null))" >&2
        failed=1
    fi
}
route pager alertname=MtaStsEnforcedMxRefused severity=critical domain=example.com
route ticket alertname=MtaStsRecordInvalid severity=warning domain=example.com
route null alertname=MtaStsTlsRptMissing severity=info domain=example.com
route pager alertname=MtaStsMxCertificateExpiry severity=critical domain=example.com mx=mx1.example.net
route ticket alertname=MtaStsMxCertificateExpiry severity=warning domain=example.com mx=mx1.example.net
route pager alertname=MtaStsExporterAbsent severity=critical
route ticket alertname=MtaStsChecksStale severity=warning instance=mta-sts-0
route web-shop-pager alertname=MtaStsEnforcedMxRefused severity=critical domain=shop.example team=web-shop
route web-shop-pager alertname=MtaStsMxCertificateExpiry severity=critical domain=shop.example mx=mx1.example.net team=web-shop
route web-shop-ticket alertname=MtaStsPolicyUnavailable severity=warning domain=shop.example team=web-shop
route null alertname=MtaStsTestingNotReady severity=info domain=shop.example team=web-shop
route ticket alertname=SomethingElse severity=unknown

if ((failed)); then
    echo "check-alerts: FAILED" >&2
    exit 1
fi
echo "check-alerts: all checks passed"
