#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for a bounded time.
#
#   scripts/fuzz.sh [seconds-per-target] [target...]
#
# Default: 60 s per target, every target. Exits non-zero when a target crashes, fails an
# assertion, leaks, or takes more than 10 s on one input; the input that did it is kept in
# fuzz/artifacts/<target>/ (reproduce with `RUSTC_BOOTSTRAP=1 cargo fuzz run <target> <file>`).
# Exits 0 with a loud "SKIPPED: <reason>" only when cargo-fuzz is missing and cannot be
# installed.
#
# cargo-fuzz wants nightly for `-Z sanitizer=address`; RUSTC_BOOTSTRAP=1 lets the stable
# toolchain accept the -Z flags, so no other toolchain is needed.
#
# New inputs found go to fuzz/target/work-corpus/<target>/ (ignored by git); the seeds in
# fuzz/corpus/<target>/ are only read. Copy an interesting input there by hand to keep it.
set -euo pipefail

seconds="${1:-60}"
shift || true
if ! [[ "$seconds" =~ ^[0-9]+$ ]] || [ "$seconds" -eq 0 ]; then
    echo "usage: $0 [seconds-per-target] [target...]" >&2
    exit 2
fi

cd "$(dirname "$0")/.."
export RUSTC_BOOTSTRAP=1
CARGO_FUZZ_VERSION=0.13.2

skip() {
    echo "################################################################" >&2
    echo "SKIPPED: $1" >&2
    echo "################################################################" >&2
    exit 0
}

command -v cargo >/dev/null 2>&1 || skip "cargo is not installed, so cargo-fuzz cannot be"
# cargo-fuzz lives in a root of this checkout's own (ignored by git), never the global one: a
# pinned version, and nothing left in ~/.cargo/bin.
tools="$PWD/fuzz/target/cargo-fuzz"
export PATH="$tools/bin:$PATH"
if ! "$tools/bin/cargo-fuzz" --version 2>/dev/null | grep -qx "cargo-fuzz $CARGO_FUZZ_VERSION"; then
    echo "installing cargo-fuzz $CARGO_FUZZ_VERSION into $tools"
    if ! cargo install cargo-fuzz --locked --version "$CARGO_FUZZ_VERSION" --root "$tools"; then
        skip "cargo install cargo-fuzz failed; no fuzzing was done"
    fi
fi
echo "$(cargo fuzz --version), $(rustc --version)"

# The fuzzers build from fuzz/Cargo.lock as committed: a stale lock file fails here instead of
# being re-locked (which needs the registry and leaves the tree dirty). cargo fuzz build has no
# --locked of its own, so the lock is checked first.
if ! cargo metadata --locked --format-version 1 --manifest-path fuzz/Cargo.toml >/dev/null; then
    echo "fuzz/Cargo.lock is out of date: run 'cargo update --workspace --manifest-path fuzz/Cargo.toml' and commit it" >&2
    exit 1
fi

if [ "$#" -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo fuzz list)
fi

echo "building ${#targets[@]} fuzz targets (release, AddressSanitizer)"
cargo fuzz build

failed=()
summary=()
for target in "${targets[@]}"; do
    work="fuzz/target/work-corpus/$target"
    mkdir -p "$work" "fuzz/artifacts/$target"
    log="fuzz/target/$target.log"
    echo "== $target: ${seconds} s"
    status=0
    # -timeout: one input taking longer than 10 s counts as a failure (a hang or a quadratic
    # blow-up on hostile input). -rss_limit_mb: the ASan process, not the parser alone.
    cargo fuzz run "$target" "$work" "fuzz/corpus/$target" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=4096 -print_final_stats=1 \
        >"$log" 2>&1 || status=$?
    runs="$(sed -n 's/^Done \([0-9]*\) runs.*/\1/p' "$log" | tail -n 1)"
    execs_per_second="$(sed -n 's/^stat::average_exec_per_sec:[[:space:]]*//p' "$log" | tail -n 1)"
    if [ "$status" -ne 0 ]; then
        tail -n 40 "$log"
        artifact="$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -n 1)"
        echo "!! $target FAILED (exit $status); input kept at ${artifact:-fuzz/artifacts/$target/}; log $log"
        failed+=("$target")
        summary+=("$target: FAILED (${artifact:-see $log})")
    else
        summary+=("$target: ${runs:-?} runs, ${execs_per_second:-?} exec/s, no crash")
    fi
done

echo
echo "fuzzing summary (${seconds} s per target):"
printf '  %s\n' "${summary[@]}"
if [ "${#failed[@]}" -gt 0 ]; then
    echo "FAILED: ${failed[*]}"
    exit 1
fi
