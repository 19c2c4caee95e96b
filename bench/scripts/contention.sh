#!/usr/bin/env bash
# Generation time quiet, next to a busy-loop process, and next to a second cachedit process doing the
# same work, for each BLAS threading mode; rounds interleave the modes so machine drift hits them alike.
# Usage: bench/scripts/contention.sh [rounds] [out.md]   (run from the repository root; ./cachedit builds)
set -euo pipefail
rounds="${1:-3}"
out="${2:-docs/bench/contention.md}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$here"
gen=(./cachedit generate --prompt sneaker --n 16 --steps 28 --seed 0 --out /tmp/contention.png --json)
# pool-kernel: one compute pool with cachedit's fp32 linear kernel (generate's default; idle threads sleep at
# once); pool-kernel-spin: the same, idle threads spin CACHEDIT_OMP_SPINCOUNT=20000 (~0.2 ms) first; pool: one
# pool, libtorch's linear (OpenBLAS single-threaded inside it); blas-threads: OpenBLAS's own pthreads beside
# libtorch's pool. MODES="a b" picks some.
read -r -a modes <<< "${MODES:-pool-kernel pool-kernel-spin pool blas-threads}"
conds=("quiet" "busy-loop" "second-cachedit")
declare -A sum cnt
mode_env() {  # mode -> env assignments for env(1)
  case "$1" in
    pool-kernel) echo "CACHEDIT_BLAS_THREADS=1 CACHEDIT_LINEAR=cachedit" ;;
    pool-kernel-spin) echo "CACHEDIT_BLAS_THREADS=1 CACHEDIT_LINEAR=cachedit CACHEDIT_OMP_SPINCOUNT=20000" ;;
    pool) echo "CACHEDIT_BLAS_THREADS=1 CACHEDIT_LINEAR=libtorch" ;;
    blas-threads) echo "CACHEDIT_BLAS_THREADS=native CACHEDIT_LINEAR=libtorch" ;;
  esac
}
run_one() {  # mode cache -> seconds
  local mode="$1" cache="$2" extra=()
  [[ "$cache" != none ]] && extra=(--cache "$cache")
  env $(mode_env "$mode") "${gen[@]}" "${extra[@]}" 2>/dev/null | sed -n 's/.*"seconds":\([0-9.eE+-]*\).*/\1/p'
}
partner_pid=""
start_partner() {  # condition mode: the second cachedit does the same work in the same mode
  case "$1" in
    busy-loop) (while :; do :; done) & partner_pid=$! ;;
    second-cachedit) (while :; do env $(mode_env "$2") "${gen[@]}" >/dev/null 2>&1; done) & partner_pid=$!; sleep 8 ;;
    *) partner_pid="" ;;
  esac
}
stop_partner() {
  if [[ -n "$partner_pid" ]]; then pkill -P "$partner_pid" 2>/dev/null || true; kill "$partner_pid" 2>/dev/null || true
    wait "$partner_pid" 2>/dev/null || true; partner_pid=""; fi
  pkill -f "contention.png" 2>/dev/null || true
  # a killed JVM takes a moment to exit: the next (quiet) measurement must not overlap it
  for _ in $(seq 1 100); do pgrep -f "contention.png" >/dev/null || break; sleep 0.1; done
}
trap stop_partner EXIT
"${gen[@]}" >/dev/null 2>&1 || true  # build and warm the page cache
for r in $(seq 1 "$rounds"); do
  for cond in "${conds[@]}"; do
    for mode in "${modes[@]}"; do
      start_partner "$cond" "$mode"
      for cache in none dbcache; do
        s=$(run_one "$mode" "$cache")
        echo "round $r $cond $cache $mode: $s s" >&2
        k="$cond|$cache|$mode"; sum[$k]=$(awk -v a="${sum[$k]:-0}" -v b="$s" 'BEGIN{print a+b}'); cnt[$k]=$(( ${cnt[$k]:-0} + 1 ))
      done
      stop_partner
    done
  done
done
{
  echo "# Contention benchmark"
  echo
  echo "\`bench/scripts/contention.sh $rounds\` on $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), $(date -u +%Y-%m-%d),"
  echo "commit $(git rev-parse --short HEAD). 16 x sneaker, 28 steps, bundled model; mean seconds per generation over $rounds"
  echo "interleaved rounds; ratio = that condition / quiet, same mode."
  echo
  echo "| cache | mode | quiet s | busy loop s (ratio) | second cachedit s (ratio) |"
  echo "|---|---|---|---|---|"
  for cache in none dbcache; do
    for mode in "${modes[@]}"; do
      q=$(awk -v a="${sum[quiet|$cache|$mode]}" -v n="${cnt[quiet|$cache|$mode]}" 'BEGIN{printf "%.2f", a/n}')
      b=$(awk -v a="${sum[busy-loop|$cache|$mode]}" -v n="${cnt[busy-loop|$cache|$mode]}" 'BEGIN{printf "%.2f", a/n}')
      c=$(awk -v a="${sum[second-cachedit|$cache|$mode]}" -v n="${cnt[second-cachedit|$cache|$mode]}" 'BEGIN{printf "%.2f", a/n}')
      echo "| $cache | $mode | $q | $b ($(awk -v x="$b" -v y="$q" 'BEGIN{printf "%.2f", x/y}')x) | $c ($(awk -v x="$c" -v y="$q" 'BEGIN{printf "%.2f", x/y}')x) |"
    done
  done
} > "$out"
cat "$out"
