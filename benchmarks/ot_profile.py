"""Where the dealer-free (`--source ot`) training's offline CPU goes, per preprocessing kind
(issue 15): `python -m benchmarks.ot_profile [--parties 3] [--size 10000] [--epochs 10]
[--kinds ltz_tuples,...] [--together] [--frac F] [--profile out.prof]`.

Records the preprocessing requests of the logistic-regression training (the bench's
`logistic_regression` op, horizontal split) once with the in-process dealer, then replays
them against the OT source with all parties in ONE process (`run_local(n, ...,
preprocessing="ot")`, memory transport, so no socket or AEAD cost), one run per kind (or all
together with --together), and prints per kind: requests, CPU seconds of all parties
together (process time), wall seconds, offline rounds and MB sent per party. --frac replays
the first fraction of each kind's requests; --profile writes a cProfile of the replays and
prints its top functions by own time."""

from __future__ import annotations

import argparse
import cProfile
import dataclasses
import pstats
import time
from typing import Any

from mpc.bench.e2e import _e2e_inputs, _run_e2e
from mpc.local import run_local
from protocols.preprocessing.buffered import Buffered


def record(n: int, size: int, epochs: int) -> list[tuple[str, tuple[Any, ...]]]:
    """The training's preprocessing requests, in order (equal at every party)."""
    params = {"epochs": epochs}

    async def job(s: Any) -> list[tuple[str, tuple[Any, ...]]]:
        prep = Buffered(s.prep)
        log: list[tuple[str, tuple[Any, ...]]] = []
        prep.log = log
        s = dataclasses.replace(s, prep=prep)
        px, _ = _e2e_inputs("logistic_regression", size, s.n, s.pid, params)
        await _run_e2e(s, "logistic_regression", px, params)
        return log

    logs = run_local(n, job, timeout=900).results
    if any(lg != logs[0] for lg in logs):
        raise RuntimeError("parties logged different requests")
    return logs[0]


def replay(n: int, reqs: list[tuple[str, tuple[Any, ...]]]) -> tuple[float, float, list[tuple[int, int]]]:
    """(CPU s of all parties, wall s, per party (offline rounds, bytes sent))."""

    async def job(s: Any) -> tuple[int, int]:
        src = s.prep
        while not hasattr(src, "stats") and hasattr(src, "source"):
            src = src.source
        for kind, args in reqs:
            await getattr(s.prep, kind)(*args)
        return src.stats.rounds, src.stats.bytes_sent

    c0, t0 = time.process_time(), time.perf_counter()
    res = run_local(n, job, preprocessing="ot", timeout=1800).results
    return time.process_time() - c0, time.perf_counter() - t0, res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--parties", type=int, default=3)
    ap.add_argument("--size", type=int, default=10000)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--kinds", default="all")
    ap.add_argument("--together", action="store_true")
    ap.add_argument("--frac", type=float, default=1.0)
    ap.add_argument("--profile", default=None)
    a = ap.parse_args()
    reqs = record(a.parties, a.size, a.epochs)
    kinds = sorted({k for k, _ in reqs}) if a.kinds == "all" else a.kinds.split(",")
    groups = [("all", reqs)] if a.together else [(k, [q for q in reqs if q[0] == k]) for k in kinds]
    prof = cProfile.Profile() if a.profile else None
    total = 0.0
    for name, sel in groups:
        sel = sel[: max(1, int(len(sel) * a.frac))]
        if prof:
            prof.enable()
        cpu, wall, res = replay(a.parties, sel)
        if prof:
            prof.disable()
        total += cpu
        mb = " / ".join(str(round(b / 1e6)) for _, b in res)
        print(f"{name:22s} requests {len(sel):5d}  CPU s {cpu:7.2f}  wall s {wall:7.2f}  "
              f"rounds {res[0][0]:5d}  MB sent / party {mb}", flush=True)
    print(f"total CPU s {total:.2f}")
    if prof and a.profile:
        prof.dump_stats(a.profile)
        pstats.Stats(a.profile).sort_stats("tottime").print_stats(30)


if __name__ == "__main__":
    main()
