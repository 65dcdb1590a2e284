#!/usr/bin/env bash
# Fuzz smoke: every cargo-fuzz target for a bounded time, failing on any crash.
#   fuzz/smoke.sh [SECONDS_PER_TARGET]      (default 15)
# Needs the nightly toolchain and cargo-fuzz. New inputs go to a scratch corpus;
# the committed seeds in fuzz/corpus/<target>/ are only read, so the tree stays clean.
# A crash leaves its reproducer in fuzz/artifacts/<target>/ and the log beside it;
# replay it with `cargo +nightly fuzz run <target> <file>` and, once fixed, commit
# it to fuzz/regressions/<target>/ (docs/fuzzing.md).
set -euo pipefail
SECS="${1:-15}"
case "$SECS" in ''|*[!0-9]*) echo "smoke.sh: SECONDS_PER_TARGET must be a whole number, not '$SECS'" >&2; exit 2;; esac
cd "$(dirname "${BASH_SOURCE[0]}")"

cargo +nightly fuzz build
mapfile -t targets < <(cargo +nightly fuzz list)
[ "${#targets[@]}" -gt 0 ] || { echo "smoke.sh: cargo fuzz list shows no targets" >&2; exit 1; }

scratch="$(mktemp -d "${TMPDIR:-/tmp}/kafka-conn-fuzz-smoke.XXXXXX")"
trap 'rm -rf "$scratch"' EXIT
failed=()
for t in "${targets[@]}"; do
  mkdir -p "$scratch/$t" "artifacts/$t"
  corpora=("$scratch/$t")
  [ -d "corpus/$t" ] && corpora+=("corpus/$t")
  echo "smoke.sh: $t (${SECS}s)"
  if cargo +nightly fuzz run "$t" "${corpora[@]}" -- \
       -max_total_time="$SECS" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
       >"$scratch/$t.log" 2>&1; then
    grep -E '^(Done|stat::number_of_executed_units)' "$scratch/$t.log" | sed "s/^/smoke.sh:   /" || true
  else
    tail -40 "$scratch/$t.log" >&2
    cp "$scratch/$t.log" "artifacts/$t/smoke.log"
    failed+=("$t")
  fi
done
if [ "${#failed[@]}" -gt 0 ]; then
  echo "smoke.sh: crash in: ${failed[*]} (reproducers in fuzz/artifacts/<target>/)" >&2
  exit 1
fi
echo "smoke.sh: ${#targets[@]} targets ran ${SECS}s each without a crash"
