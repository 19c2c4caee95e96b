#!/usr/bin/env bash
# Runs JMH benchmarks and commits-ready results: bench/results/<name>.json is JMH's own JSON (every
# iteration's raw score included), <name>.meta.json says which commit, when, on what machine and with
# which command. bench/README.md, "Results", explains the columns; compare two runs with
# bench/scripts/compare.py OLD.json NEW.json.
#
#   bench/scripts/jmh.sh NAME [JMH arguments...]      e.g. bench/scripts/jmh.sh kernels RelL1DiffBench TaylorBench
set -euo pipefail
cd "$(dirname "$0")/../.."
name="${1:?usage: bench/scripts/jmh.sh NAME [JMH arguments...]}"
shift
[[ -f bench/target/benchmarks.jar ]] || { echo "build first: mvn -B package -DskipTests" >&2; exit 2; }
out="bench/results/$name"
mkdir -p bench/results
commit="$(git rev-parse HEAD 2>/dev/null || echo unknown)"
dirty="$(git status --porcelain 2>/dev/null | grep -v '^??' | grep -c . || true)"
java -jar bench/target/benchmarks.jar "$@" -rf json -rff "$out.json"
python3 - "$out.meta.json" "$commit" "$dirty" "$*" <<'PY'
import json, os, platform, subprocess, sys, datetime
path, commit, dirty, args = sys.argv[1:5]
def cpu():
    info = {}
    try:
        for line in open('/proc/cpuinfo'):
            k, _, v = line.partition(':')
            k = k.strip()
            if k == 'model name' and 'model' not in info: info['model'] = v.strip()
            if k == 'flags' and 'isa' not in info:
                flags = set(v.split())
                info['isa'] = [f for f in ('avx2', 'fma', 'avx512f', 'avx512_vnni', 'avx512_bf16', 'amx_bf16') if f in flags]
    except OSError:
        pass
    return info
def java():
    r = subprocess.run(['java', '-version'], capture_output=True, text=True)
    return r.stderr.splitlines()[0] if r.stderr else 'unknown'
mem = os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30
meta = {
  'commit': commit, 'uncommitted_changes': int(dirty),
  'date_utc': datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ'),
  'machine': {'cpu': cpu(), 'cores': os.cpu_count(), 'memory_gib': round(mem, 1), 'os': platform.platform(),
              'load_average_at_end': os.getloadavg()},
  'java': java(), 'command': 'java -jar bench/target/benchmarks.jar ' + args,
  'environment': {k: os.environ[k] for k in ('OMP_NUM_THREADS', 'OMP_WAIT_POLICY', 'OPENBLAS_NUM_THREADS',
                                             'CACHEDIT_THREADS') if k in os.environ},
}
json.dump(meta, open(path, 'w'), indent=2)
print('wrote', path)
PY
python3 bench/scripts/compare.py "$out.json"
