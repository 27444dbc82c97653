#!/usr/bin/env bash
# Builds the fuzz targets on the stable toolchain (libFuzzer from the libfuzzer-sys crate, coverage from LLVM's
# sanitizer-coverage pass; no nightly, no sanitizer runtime) and runs each for a while. See FUZZING.md.
#
#   fuzz/run.sh SECONDS            each target for SECONDS seconds (CI: fuzz/run.sh 30)
#   fuzz/run.sh RUNSruns [SECONDS] each target for RUNS inputs, stopping early after SECONDS if given
#   FUZZ_TARGETS="callback contacts_csv" fuzz/run.sh 60   only these targets
#
# Needs cargo and a C++ compiler (libfuzzer-sys compiles libFuzzer); everything else comes from crates.io.
# The corpus grows in fuzz/corpus/<target> (seeded from fuzz/seeds/<target>); a failing input is written to
# fuzz/artifacts/<target>/ and the script exits 1, printing the command that replays it.
set -euo pipefail
cd "$(dirname "$0")"

usage() {
  echo "usage: fuzz/run.sh SECONDS | fuzz/run.sh RUNSruns [MAX_SECONDS]" >&2
  exit 2
}
[[ $# -ge 1 && $# -le 2 ]] || usage
limit=()
case "$1" in
  *runs)
    runs="${1%runs}"
    [[ "$runs" =~ ^[0-9]+$ ]] || usage
    limit+=("-runs=$runs")
    if [[ $# -eq 2 ]]; then
      [[ "$2" =~ ^[0-9]+$ ]] || usage
      limit+=("-max_total_time=$2")
    fi
    ;;
  *)
    secs="${1%s}"
    [[ "$secs" =~ ^[0-9]+$ && $# -eq 1 ]] || usage
    limit+=("-max_total_time=$secs")
    ;;
esac

targets=(${FUZZ_TARGETS:-contacts_csv campaign_toml callback platform_response})

command -v cargo >/dev/null || { echo "fuzz: cargo is needed" >&2; exit 1; }
command -v c++ >/dev/null || command -v g++ >/dev/null || command -v clang++ >/dev/null || {
  echo "fuzz: a C++ compiler is needed to build libFuzzer (Debian: g++)" >&2
  exit 1
}

host="$(rustc -vV | sed -n 's/^host: //p')"
# What cargo-fuzz passes, minus the nightly-only parts: edge coverage with inline 8-bit counters, the PC table and
# comparison tracing for libFuzzer, `cfg(fuzzing)`, and debug assertions and overflow checks kept on in release.
# `--target` keeps these flags off build scripts and proc macros, which cannot link the coverage hooks.
export RUSTFLAGS="-Cpasses=sancov-module \
-Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
-Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares \
--cfg fuzzing -Cdebug-assertions -Coverflow-checks"
export CARGO_TARGET_DIR="$PWD/target"

build_start=$SECONDS
echo "fuzz: building ${targets[*]} for $host (release, coverage-instrumented)"
bins=()
for t in "${targets[@]}"; do bins+=(--bin "$t"); done
cargo build --release --target "$host" "${bins[@]}"
echo "fuzz: built in $((SECONDS - build_start)) s"

failed=()
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t" "artifacts/$t"
  log="artifacts/$t/last-run.log"
  start=$SECONDS
  echo "fuzz: running $t (${limit[*]})"
  set +e
  "target/$host/release/$t" "${limit[@]}" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="artifacts/$t/" "corpus/$t" "seeds/$t" >"$log" 2>&1
  status=$?
  set -e
  took=$((SECONDS - start))
  execs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)"
  done_line="$(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -1 || true)"
  echo "fuzz: $t: ${execs:-?} inputs in ${took} s, exit status $status${done_line:+; $done_line}"
  if [[ $status -ne 0 ]]; then
    failed+=("$t")
    grep -E "panicked|ERROR: libFuzzer|SUMMARY|Test unit written" "$log" | head -20 >&2 || true
    for a in artifacts/"$t"/crash-* artifacts/"$t"/timeout-* artifacts/"$t"/oom-* artifacts/"$t"/leak-*; do
      [[ -e "$a" ]] && echo "fuzz: replay with: fuzz/target/$host/release/$t fuzz/$a" >&2
    done
  fi
done

if [[ ${#failed[@]} -ne 0 ]]; then
  echo "fuzz: FAILED: ${failed[*]} (inputs in fuzz/artifacts/)" >&2
  exit 1
fi
echo "fuzz: all targets ran without a failure"
