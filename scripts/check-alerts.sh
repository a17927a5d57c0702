#!/usr/bin/env bash
# Checks the monitoring assets like code:
#   - promtool check rules   alerts/*.yml          (syntax, PromQL, templates, lint)
#   - promtool test rules    tests/alerts/*.yml    (unit tests of every alert)
#   - amtool check-config    deploy/alertmanager/alertmanager.yml
#   - amtool config routes test: which receiver representative alerts reach
#   - inhibition: a loopback Alertmanager with the example configuration, alerts added by amtool
#   - promtool check rules on the PromQL of dashboards/*.json and docs/runbook.md (needs jq)
# Exits 0 when everything passes, 1 when a check fails, 2 when promtool or amtool is missing.
# The cargo test `tests/suite/assets.rs` checks the rest (metric names, runbook anchors, dashboards).
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
route ticket alertname=MtaStsTlsRptFailureRatioHigh severity=warning domain=example.com
route pager alertname=MtaStsMxCertificateExpiry severity=critical domain=example.com mx=mx1.example.net
route ticket alertname=MtaStsMxCertificateExpiry severity=warning domain=example.com mx=mx1.example.net
route pager alertname=MtaStsExporterAbsent severity=critical
route ticket alertname=MtaStsChecksStale severity=warning instance=mta-sts-0
route web-shop-pager alertname=MtaStsEnforcedMxRefused severity=critical domain=shop.example team=web-shop
route web-shop-pager alertname=MtaStsMxCertificateExpiry severity=critical domain=shop.example mx=mx1.example.net team=web-shop
route web-shop-ticket alertname=MtaStsPolicyUnavailable severity=warning domain=shop.example team=web-shop
route null alertname=MtaStsTestingNotReady severity=info domain=shop.example team=web-shop
route ticket alertname=SomethingElse severity=unknown

# Inhibition: amtool has no offline test for it, so a real Alertmanager runs on loopback with
# the example configuration (its receivers are 127.0.0.1 placeholders), amtool adds alerts, and
# the API says which are inhibited. Needs the alertmanager binary (Debian:
# prometheus-alertmanager) and python3 (a free port); skipped loudly without them.
am_bin=$(command -v prometheus-alertmanager || command -v alertmanager || true)
if [ -n "$am_bin" ] && command -v python3 >/dev/null 2>&1; then
    am_dir=$(mktemp -d)
    am_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    am_url="http://127.0.0.1:$am_port"
    "$am_bin" --config.file="$am" --storage.path="$am_dir/data" \
        --web.listen-address="127.0.0.1:$am_port" --cluster.listen-address= >"$am_dir/log" 2>&1 &
    am_pid=$!
    for _ in $(seq 1 100); do
        amtool --alertmanager.url="$am_url" config show >/dev/null 2>&1 && break
        sleep 0.2
    done
    j=job=mta-sts-exporter
    # alert <instance> <label=value>...
    alert() {
        local instance=$1
        shift
        amtool --alertmanager.url="$am_url" alert add "$@" "$j" "instance=$instance" >/dev/null
    }
    alert mta-sts-0 alertname=MtaStsExporterBlind reason=resolver_nxdomain severity=critical
    alert mta-sts-0 alertname=MtaStsEnforcedMxRefused severity=critical domain=a.example
    alert mta-sts-0 alertname=MtaStsRecordInvalid severity=warning domain=b.example
    alert mta-sts-1 alertname=MtaStsEnforcedMxRefused severity=critical domain=c.example
    alert mta-sts-2 alertname=MtaStsExporterBlind reason=smtp_blocked severity=critical
    alert mta-sts-2 alertname=MtaStsEnforcedMxRefused severity=critical domain=d.example
    alert mta-sts-2 alertname=MtaStsRecordInvalid severity=warning domain=e.example
    alert mta-sts-3 alertname=MtaStsDnsResolverFailing severity=critical
    alert mta-sts-3 alertname=MtaStsPolicyUnavailable severity=warning domain=f.example
    # inhibited <domain> <yes|no>
    inhibited() {
        echo "== inhibit: $1 inhibited? $2"
        local got
        got=$(amtool --alertmanager.url="$am_url" alert query --active --inhibited -o json "domain=$1" |
            python3 -c 'import json, sys; a = json.load(sys.stdin); print("yes" if a and a[0]["status"]["inhibitedBy"] else ("no" if a else "missing"))')
        if [ "$got" != "$2" ]; then
            echo "FAILED: alert for $1: inhibited=$got, expected $2" >&2
            failed=1
        fi
    }
    inhibited a.example yes   # resolver blind: every per-domain alert of that exporter
    inhibited b.example yes
    inhibited c.example no    # another exporter
    inhibited d.example yes   # smtp_blocked: MX alerts
    inhibited e.example no    # smtp_blocked leaves record alerts alone
    inhibited f.example yes   # MtaStsDnsResolverFailing
    kill "$am_pid" 2>/dev/null
    wait "$am_pid" 2>/dev/null
    rm -rf "$am_dir"
else
    echo "== SKIPPED: inhibition tests (need prometheus-alertmanager or alertmanager, and python3)"
fi

# PromQL outside the rule files (dashboard targets, runbook examples) must parse too: wrap each
# query in a recording rule and let promtool check it. Needs jq (and awk); skipped without jq.
if command -v jq >/dev/null 2>&1; then
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    {
        echo "groups:"
        echo "  - name: queries-outside-rule-files"
        echo "    rules:"
        for dashboard in dashboards/*.json; do
            jq -c '[.panels[] | (., (.panels // [])[]) | (.targets // [])[] | .expr // empty][]
                   | gsub("\\$__rate_interval"; "5m") | gsub("\\$job"; ".*")
                   | gsub("\\$domain"; "example.com")' "$dashboard"
        done
        awk '/^[[:space:]]*```promql/ { inside = 1; query = ""; next }
             inside && /^[[:space:]]*```/ { inside = 0; print query; next }
             inside && !/^[[:space:]]*#/ { query = query " " $0 }' docs/runbook.md |
            jq -R -c .
    } | awk 'NR <= 3 { print; next } { printf "      - record: query_%d\n        expr: %s\n", NR, $0 }' \
        >"$tmp/queries.yml"
    echo "== promtool check rules <PromQL of dashboards/*.json and docs/runbook.md>"
    if ! promtool check rules "$tmp/queries.yml"; then
        echo "FAILED: a dashboard or runbook query does not parse (see $tmp/queries.yml)" >&2
        trap - EXIT
        failed=1
    fi
else
    echo "== skipped: PromQL of dashboards and runbook (install jq to check it)"
fi

if ((failed)); then
    echo "check-alerts: FAILED" >&2
    exit 1
fi
echo "check-alerts: all checks passed"
