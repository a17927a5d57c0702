#!/usr/bin/env bash
# Verifies the Helm chart (deploy/helm/mta-sts-exporter) and the container recipe offline, with
# Helm's own library (PyPI helm-python-sdk) and Kubernetes' schemas (kubernetes-validate).
# scripts/check_helm.py lists every check; this wrapper prepares what it needs:
#   - a virtualenv ($HELM_VENV, default ${TMPDIR:-/tmp}/mta-sts-exporter-helm-venv) with
#     helm-python-sdk and kubernetes-validate, installed from PyPI when missing;
#   - promtool: from PATH, else unpacked (not installed: no service is started) from Debian's
#     `prometheus` package with `apt-get download`;
#   - the exporter, built with `cargo build --quiet`, for its own --config.check.
# Usage: scripts/check-helm.sh [--no-self-test] | --write-readme
# Exit status 0 when every check passed.
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$(pwd)"
tmp="${TMPDIR:-/tmp}"
venv="${HELM_VENV:-$tmp/mta-sts-exporter-helm-venv}"
self_test=--self-test
case "${1:-}" in
    --no-self-test) self_test="" ;;
    --write-readme) ;;
    "") ;;
    *) echo "usage: $0 [--no-self-test | --write-readme]" >&2; exit 2 ;;
esac

die() { echo "check-helm: error: $*" >&2; exit 1; }

echo "== python virtualenv: $venv"
if [[ ! -x "$venv/bin/python" ]]; then
    python3 -m venv "$venv" || die "cannot create a virtualenv with python3 -m venv (Debian: apt-get install python3-venv)"
fi
# Versions the checks were written against; pip does nothing (and needs no network) when
# they are already installed.
"$venv/bin/pip" install --quiet --disable-pip-version-check \
    'helm-python-sdk>=0.2.2,<0.3' 'kubernetes-validate>=1.37,<2' \
    || die "pip could not install helm-python-sdk and kubernetes-validate (PyPI needed once)"
py="$venv/bin/python"

if [[ "${1:-}" == "--write-readme" ]]; then
    exec "$py" scripts/check_helm.py --repo "$repo" --write-readme
fi

echo "== promtool"
promtool="$(command -v promtool || true)"
if [[ -z "$promtool" ]]; then
    unpacked="$tmp/mta-sts-exporter-promtool"
    promtool="$unpacked/usr/bin/promtool"
    if [[ ! -x "$promtool" ]]; then
        command -v apt-get >/dev/null && command -v dpkg-deb >/dev/null \
            || die "promtool is not installed and apt-get is not available to fetch it; install Prometheus' promtool (Debian/Ubuntu package 'prometheus') and put it on PATH"
        mkdir -p "$unpacked/deb"
        fetch() { (cd "$unpacked/deb" && apt-get download prometheus >/dev/null 2>&1); }
        if ! fetch; then
            if [[ "$(id -u)" == 0 ]]; then
                apt-get update -qq >/dev/null 2>&1 || true
                fetch || die "apt-get download prometheus failed; install promtool (package 'prometheus') and put it on PATH"
            else
                die "apt-get download prometheus failed (run as root once to refresh the package lists: apt-get update), or install promtool and put it on PATH"
            fi
        fi
        dpkg-deb -x "$unpacked"/deb/prometheus_*.deb "$unpacked" || die "cannot unpack the prometheus package"
        rm -rf "$unpacked/deb"
    fi
fi
"$promtool" --version 2>&1 | head -n 1

echo "== exporter (cargo build --quiet) for --config.check"
cargo build --quiet || die "cargo build failed"
exporter="$repo/target/debug/mta-sts-exporter"
[[ -x "$exporter" ]] || die "no $exporter after cargo build"

echo "== checks"
exec "$py" scripts/check_helm.py --repo "$repo" --exporter "$exporter" --promtool "$promtool" $self_test
