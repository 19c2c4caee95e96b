#!/usr/bin/env python3
"""Tables from JMH JSON results (bench/scripts/jmh.sh writes them; bench/README.md, "Results").

  compare.py RUN.json              one run: score, error, unit and the auxiliary counters per benchmark
  compare.py OLD.json NEW.json     two runs side by side with NEW/OLD ratios of the primary score

A ratio is only meaningful when both runs come from the same machine and the intervals are narrow
compared with the difference; the error column is JMH's: half the width of the 99.9% confidence
interval of the mean (Student's t over the measured iterations).
"""
import json
import sys


def load(path):
    rows = {}
    for r in json.load(open(path)):
        params = ','.join(f'{k}={v}' for k, v in sorted((r.get('params') or {}).items()))
        key = r['benchmark'].rsplit('.', 2)[-2] + '.' + r['benchmark'].rsplit('.', 1)[-1] + (f' [{params}]' if params else '')
        rows[key] = r
    return rows


def fmt(m):
    err = m.get('scoreError')
    err = '' if not isinstance(err, (int, float)) or err != err else f' ± {err:.3g}'  # JMH writes "NaN" for one sample
    return f"{m['score']:.4g}{err} {m['scoreUnit']}"


def main(argv):
    if len(argv) not in (2, 3):
        print(__doc__)
        return 2
    old = load(argv[1])
    if len(argv) == 2:
        print('| benchmark | mode | score | counters |')
        print('|---|---|---|---|')
        for k, r in old.items():
            aux = '; '.join(f'{n} {fmt(m)}' for n, m in (r.get('secondaryMetrics') or {}).items())
            print(f"| {k} | {r['mode']} | {fmt(r['primaryMetric'])} | {aux} |")
        return 0
    new = load(argv[2])
    print('| benchmark | old | new | new/old |')
    print('|---|---|---|---|')
    for k in old.keys() | new.keys():
        a, b = old.get(k), new.get(k)
        if a and b:
            ratio = b['primaryMetric']['score'] / a['primaryMetric']['score']
            print(f"| {k} | {fmt(a['primaryMetric'])} | {fmt(b['primaryMetric'])} | {ratio:.3f} |")
        else:
            print(f"| {k} | {fmt(a['primaryMetric']) if a else '-'} | {fmt(b['primaryMetric']) if b else '-'} | |")
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
