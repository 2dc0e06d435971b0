"""``python -m loadtest.cpu_watch OUT.json SWITCH_PID SIM_PID BENCH_PID``, then ``--report``.

CPU per payment of each process of an online bench (docs/benchmarks.md, "Online
payments through the switch"): it samples utime + stime from /proc twice a
second (the switch, its reactor thread, the biller server, the generator, the
whole box) until the bench exits, and ``--report OUT.json PAYMENTS`` divides the
CPU of the switch's longest busy stretch (its load run; during the echo baseline
before it the switch idles) by the payments the ledger check counted.
"""

from __future__ import annotations

import json
import os
import sys
import time

TICK = os.sysconf("SC_CLK_TCK")
NAMES = ("switch", "switch reactor thread", "biller server", "generator", "box (all processes)")
BUSY = 0.15  # cores: the switch is loaded above this


def _cpu(path: str) -> float | None:
    try:
        fields = open(f"/proc/{path}/stat").read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / TICK


def _box() -> float:
    ticks = list(map(int, open("/proc/stat").readline().split()[1:]))
    return (sum(ticks) - ticks[3] - ticks[4]) / TICK


def watch(out: str, switch: str, sim: str, bench: str) -> None:
    rows = []
    while (generator := _cpu(bench)) is not None:
        rows.append([time.time(), _cpu(switch), _cpu(f"{switch}/task/{switch}"), _cpu(sim)])
        rows[-1] += [generator, _box()]
        time.sleep(0.5)
    with open(out, "w") as f:
        json.dump(rows, f)


def report(path: str, payments: int) -> None:
    rows = [r for r in json.load(open(path)) if None not in r]
    busy = [
        i
        for i, (a, b) in enumerate(zip(rows, rows[1:], strict=False))
        if (b[1] - a[1]) / (b[0] - a[0]) > BUSY
    ]
    stretches, start = [], busy[0]
    for prev, i in zip(busy, busy[1:], strict=False):
        if i - prev > 4:
            stretches.append((start, prev))
            start = i
    stretches.append((start, busy[-1]))
    first, last = max(stretches, key=lambda s: s[1] - s[0])
    a, b = rows[first], rows[last + 1]
    seconds = b[0] - a[0]
    print(f"busy window {seconds:.1f} s, {payments} payments")
    for k, name in enumerate(NAMES, 1):
        used = b[k] - a[k]
        per = "" if k == 5 else f", {1e6 * used / payments:.0f} us per payment"
        print(f"  {name:22s} {used / seconds:4.2f} cores{per}")


if __name__ == "__main__":
    if sys.argv[1] == "--report":
        report(sys.argv[2], int(sys.argv[3]))
    else:
        watch(*sys.argv[1:5])
