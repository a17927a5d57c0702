#!/usr/bin/env bash
# Copies the repository's alert rules and dashboards into the Helm chart, which can only
# package files under its own directory:
#   alerts/*.yml, alerts/*.yaml -> deploy/helm/mta-sts-exporter/files/alerts/
#   dashboards/*.json           -> deploy/helm/mta-sts-exporter/files/dashboards/
# The top-level files are the single source; copies whose original is gone are removed.
# scripts/check-helm.sh fails when the copies differ. Usage: sync-chart-assets.sh [REPO_ROOT]
set -euo pipefail
root="${1:-$(cd "$(dirname "$0")/.." && pwd)}"
chart="$root/deploy/helm/mta-sts-exporter"
[[ -f "$chart/Chart.yaml" ]] || { echo "error: no chart at $chart" >&2; exit 1; }

sync() { # sync SOURCE_DIR TARGET_DIR PATTERN...
    local source="$1" target="$2"; shift 2
    mkdir -p "$target"
    local pattern file name
    for pattern in "$@"; do
        for file in "$target"/$pattern; do
            [[ -f "$file" ]] || continue
            name="$(basename "$file")"
            if [[ ! -f "$source/$name" ]]; then
                rm -- "$file"
                echo "removed  ${target#"$root"/}/$name (no longer in ${source#"$root"/}/)"
            fi
        done
        for file in "$source"/$pattern; do
            [[ -f "$file" ]] || continue
            name="$(basename "$file")"
            if ! cmp -s "$file" "$target/$name"; then
                cp -- "$file" "$target/$name"
                echo "copied   ${source#"$root"/}/$name -> ${target#"$root"/}/"
            fi
        done
    done
}

sync "$root/alerts" "$chart/files/alerts" '*.yml' '*.yaml'
sync "$root/dashboards" "$chart/files/dashboards" '*.json'
echo "chart assets in sync with alerts/ and dashboards/"
