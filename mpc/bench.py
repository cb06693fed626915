"""`smpc bench`: time a protocol, count its rounds and bytes, check its result.

One measurement = one (op, size) pair run by `parties` parties: the inputs are shared once,
then `repeat + 1` timed runs (the first is a warm-up and is discarded). Before each timed run
every party fetches the run's preprocessing (timed separately: `offline_seconds`) and the
parties synchronise with a one-element open, so the online timer starts together. A run's
time is the slowest party's; `seconds` is the median over the repeats. Rounds and bytes are
exact counts from the `Stats` of the online run (the largest over the parties), printed next
to the cost model's prediction (`COST_MODEL`, the docstrings' Rounds and Bytes lines); a
difference sets `cost_model_ok: false`. The last run's output is opened and checked against
the plaintext result computed from the same (public, benchmark-only) inputs; a wrong result
is reported as an error with no time, never as a fast time.

Transports: "memory" in one process (optionally with simulated `latency` and `bandwidth`
per link, see network/memory.py); "tcp" (Noise KK over loopback) and "mqtt" (through the
broker at 127.0.0.1:1883), either all parties in one process or, with `processes=True`, each
party in its own OS process (mpc/processes.py; preprocessing then comes from the INSECURE
shared-seed dealer, fine for timing, never for data). The `network` field says which.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import statistics
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from protocols.errors import ConfigError

#: matmul --size k multiplies (k, MATMUL_D) @ (MATMUL_D, MATMUL_M)
MATMUL_D, MATMUL_M = 10, 10
#: truncate: fixed-point fractional bits and input magnitude
TRUNC_F, TRUNC_BITS = 16, 40
#: the plaintext inputs are drawn from this public seed in every party (benchmarks only)
PUBLIC_SEED = 20240601


@dataclass(frozen=True)
class Cost:
    rounds: int
    bytes_per_party: int


def _cost_mul(N, n, e):
    return Cost(1, 2 * (n - 1) * N * e)  # beaver.mul: d and e opened in one batch


def _cost_matmul(k, n, e):
    return Cost(1, (n - 1) * (k * MATMUL_D + MATMUL_D * MATMUL_M) * e)  # beaver.matmul


def _cost_open(N, n, e):
    return Cost(1, (n - 1) * N * e)  # core.open


def _cost_input(N, n, e):
    return Cost(1, (n - 1) * (8 * 1 + N * e))  # core.input: owner sends shape + shares


def _cost_triples(N, n, e):
    return Cost(0, 0)  # dealer-generated: no communication


def _cost_truncate(N, n, e):
    return Cost(1, (n - 1) * N * e)  # truncation.trunc "msb": one open


#: op -> (size, parties, element bytes) -> predicted Cost; the protocols' documented costs
COST_MODEL: dict[str, Callable[[int, int, int], Cost]] = {
    "mul": _cost_mul,
    "matmul": _cost_matmul,
    "open": _cost_open,
    "input": _cost_input,
    "triples": _cost_triples,
    "truncate": _cost_truncate,
}

#: what "size" and one "op" mean for each workload (ops_per_s = ops / seconds)
OP_DOC = {
    "mul": "Beaver mul of two shared vectors of `size` elements; ops = size",
    "matmul": f"(size x {MATMUL_D}) @ ({MATMUL_D} x {MATMUL_M}) shared matrices; "
    f"ops = size*{MATMUL_D * MATMUL_M} multiplications",
    "open": "open one shared vector of `size` elements to all; ops = size",
    "input": "party 0 secret-shares a vector of `size` elements; ops = size",
    "triples": "fetch `size` Beaver triples from the --source (offline phase); ops = size",
    "truncate": f"probabilistic truncation by 2^{TRUNC_F} (Z_2^64, additive); ops = size",
}
OPS = tuple(COST_MODEL)


def _ops(op: str, size: int) -> int:
    return size * MATMUL_D * MATMUL_M if op == "matmul" else size


# -- the job every party runs ------------------------------------------------------------------


class _Prefetch:
    """Preprocessing fetched ahead: `fill(kind, *args)` stores one item; a later request of
    the same kind and arguments gets it, anything else falls through to the source."""

    def __init__(self, source):
        self.source = source
        self.name = f"prefetch({getattr(source, 'name', '?')})"
        self._q: dict[tuple, deque] = {}

    async def fill(self, kind: str, *args) -> None:
        item = await getattr(self.source, kind)(*args)
        self._q.setdefault((kind, _freeze(args)), deque()).append(item)

    def __getattr__(self, kind: str):
        fetch = getattr(self.source, kind)

        async def get(*args):
            q = self._q.get((kind, _freeze(args)))
            return q.popleft() if q else await fetch(*args)

        return get


def _freeze(args) -> tuple:
    return tuple(tuple(a) if isinstance(a, list | tuple) else a for a in args)


def _plain(D, op: str, size: int):
    from protocols.prg import CryptoRNG

    rng = CryptoRNG.from_seed(PUBLIC_SEED, op, size)
    if op == "matmul":
        return D.random(rng, (size, MATMUL_D)), D.random(rng, (MATMUL_D, MATMUL_M))
    if op == "truncate":
        v = rng.uint64((size,)).astype(np.int64) >> np.int64(64 - TRUNC_BITS)  # signed
        return D.from_int(v), None
    return D.random(rng, (size,)), D.random(rng, (size,))


def _prep_for(op: str, size: int) -> list[tuple]:
    if op == "mul":
        return [("triples", (size,))]
    if op == "matmul":
        return [("matrix_triples", (size, MATMUL_D), (MATMUL_D, MATMUL_M))]
    if op == "truncate":
        return [("trunc_triples", (size,), TRUNC_F)]
    return []


async def bench_job(s, op: str, size: int, repeat: int) -> dict:
    """One party's side of a measurement; returns its per-run times and counts."""
    from protocols import beaver, core
    from protocols.session import Share

    if op == "truncate" and (s.scheme.kind != "additive" or s.domain.is_field):
        raise ConfigError("bench op 'truncate' is implemented for --scheme additive only")
    s = dataclasses.replace(s, prep=_Prefetch(s.prep))
    D = s.domain
    px, py = _plain(D, op, size)
    x = await core.input(s, px if s.pid == 0 else None, 0)
    y = await core.input(s, py if s.pid == 1 else None, 1) if py is not None else None

    async def run():
        if op == "mul":
            return await beaver.mul(s, x, y)
        if op == "matmul":
            return await beaver.matmul(s, x, y)
        if op == "open":
            return (await core.open(s, x))[0]
        if op == "input":
            return await core.input(s, px if s.pid == 0 else None, 0)
        if op == "triples":
            return await s.prep.triples((size,))
        if op == "truncate":
            from protocols.truncation import trunc

            return await trunc(s, x, TRUNC_F)
        raise ConfigError(f"unknown op {op!r}")

    online, offline, counts, out = [], [], [], None
    for _ in range(repeat + 1):
        t0 = time.perf_counter()
        for kind, *args in _prep_for(op, size):
            await s.prep.fill(kind, *args)
        offline.append(time.perf_counter() - t0)
        await core.open(s, Share(D.zeros((1,)), s))  # barrier: start the timer together
        before = s.stats.copy()
        t1 = time.perf_counter()
        out = await run()
        online.append(time.perf_counter() - t1)
        d = s.stats - before
        counts.append((d.rounds, d.bytes_sent))
    correct = await _check(s, op, px, py, out)
    return {"online": online, "offline": offline, "counts": counts, "correct": correct}


async def _check(s, op, px, py, out) -> bool:
    from protocols import core
    from protocols.session import Share

    D = s.domain
    if op == "open":
        return bool(np.array_equal(out, px))
    if op == "triples":
        a, b, c = (Share(v, s) for v in out)
        oa, ob, oc = await core.open(s, a, b, c)
        return bool(np.array_equal(D.mul(oa, ob), oc))
    (got,) = await core.open(s, out)
    if op == "mul":
        return bool(np.array_equal(got, D.mul(px, py)))
    if op == "matmul":
        return bool(np.array_equal(got, D.matmul(px, py)))
    if op == "input":
        return bool(np.array_equal(got, px))
    if op == "truncate":  # floor(x / 2^f) + u, u in {0, 1}
        want = D.to_signed(px) >> np.int64(TRUNC_F)
        diff = D.to_signed(got) - want
        return bool(((diff == 0) | (diff == 1)).all())
    return False


# -- measuring -------------------------------------------------------------------------------


def _network(transport: str, processes: bool, latency: float, bandwidth: float | None) -> str:
    where = "separate processes" if processes else "one process"
    if transport == "memory":
        if latency or bandwidth:
            bw = f"{bandwidth:g} B/s" if bandwidth else "unlimited"
            return f"memory, simulated latency {latency:g} s, bandwidth {bw} per link ({where})"
        return f"memory, no simulated delay ({where})"
    if transport == "tcp":
        return f"tcp loopback 127.0.0.1, Noise KK encrypted, no WAN simulation ({where})"
    return f"mqtt via broker 127.0.0.1:1883, end-to-end encrypted, no WAN simulation ({where})"


def measure(
    op: str,
    size: int,
    *,
    parties: int = 3,
    scheme: str = "additive",
    transport: str = "memory",
    processes: bool = False,
    latency: float = 0.0,
    bandwidth: float | None = None,
    repeat: int = 5,
    seed: int | None = None,
    timeout: float = 120.0,
    source: str = "trusted_dealer",
) -> dict:
    """One measurement as the JSON record `smpc bench --json` prints. `source` names the
    preprocessing source (run_local's names); its own traffic is offline and not counted in
    rounds/bytes, which are the online phase's."""
    if op not in COST_MODEL:
        raise ConfigError(f"op must be one of {OPS}, got {op!r}")
    if size < 1 or repeat < 1:
        raise ConfigError("size and repeat must be at least 1")
    if processes and transport == "memory":
        raise ConfigError("--processes needs --transport tcp or mqtt")
    if (latency or bandwidth) and transport != "memory":
        raise ConfigError("--latency/--bandwidth simulate the memory transport only")
    if processes and source != "trusted_dealer":
        raise ConfigError("--processes uses the shared-seed dealer; --source needs one process")
    args = (op, size, repeat)
    if processes:
        from mpc.processes import run_processes

        per_party = run_processes(
            parties, bench_job, job_args=args, scheme=scheme, transport=transport, seed=seed,
            timeout=timeout,
        ).results
    else:
        per_party = asyncio.run(
            _in_process(parties, args, scheme, transport, latency, bandwidth, seed, timeout, source)
        )
    from mpc.local import default_domain

    e = default_domain(scheme).elem_bytes
    online = [max(p["online"][r] for p in per_party) for r in range(1, repeat + 1)]
    offline = [max(p["offline"][r] for p in per_party) for r in range(1, repeat + 1)]
    # exact counts: each party's must be the same in every run
    stable = all(len({tuple(c) for c in p["counts"][1:]}) == 1 for p in per_party)
    rounds = max(p["counts"][-1][0] for p in per_party)
    nbytes = max(p["counts"][-1][1] for p in per_party)
    pred = COST_MODEL[op](size, parties, e)
    correct = all(p["correct"] for p in per_party)
    seconds = statistics.median(online)
    rec = {
        "op": op,
        "size": size,
        "parties": parties,
        "scheme": scheme,
        "transport": transport,
        "processes": processes,
        "network": _network(transport, processes, latency, bandwidth),
        "latency": latency,
        "bandwidth": bandwidth,
        "repeat": repeat,
        "source": "insecure_shared_seed_dealer" if processes else source,
        "seconds": seconds if correct else None,
        "ops_per_s": _ops(op, size) / seconds if correct and seconds > 0 else None,
        "offline_seconds": statistics.median(offline),
        "rounds": rounds,
        "bytes_per_party": nbytes,
        "predicted_rounds": pred.rounds,
        "predicted_bytes_per_party": pred.bytes_per_party,
        "cost_model_ok": pred.rounds == rounds and pred.bytes_per_party == nbytes and stable,
        "correct": correct,
    }
    if not correct:
        rec["error"] = "result does not match the plaintext computation"
    return rec


async def _in_process(n, args, scheme, transport, latency, bandwidth, seed, timeout, source):
    from mpc.local import close_sessions, open_sessions

    sessions = await open_sessions(
        n, scheme=scheme, transport=transport, seed=seed, latency=latency,
        bandwidth=bandwidth, timeout=timeout, preprocessing=source,
    )
    try:
        return await asyncio.gather(*(bench_job(s, *args) for s in sessions))
    finally:
        await close_sessions(sessions)


# -- the command line ---------------------------------------------------------------------------


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--op", nargs="+", choices=OPS, default=["mul"], help="workload(s)")
    p.add_argument("--size", nargs="+", type=int, default=[10_000], help="elements (rows for matmul)")
    p.add_argument("--parties", type=int, default=3)
    p.add_argument("--scheme", choices=["additive", "shamir"], default="additive")
    p.add_argument("--transport", choices=["memory", "tcp", "mqtt"], default="memory")
    p.add_argument("--processes", action="store_true", help="each party in its own OS process")
    p.add_argument("--latency", type=float, default=0.0, help="simulated one-way latency, s (memory)")
    p.add_argument("--bandwidth", type=float, default=None, help="simulated bytes/s per link (memory)")
    p.add_argument("--repeat", type=int, default=5, help="timed runs after one warm-up")
    p.add_argument("--seed", type=int, default=None, help="reproducible randomness (tests only)")
    p.add_argument("--timeout", type=float, default=120.0, help="receive deadline, s")
    p.add_argument("--json", action="store_true", help="one JSON line per measurement")
    from mpc.local import PREPROCESSING

    p.add_argument("--source", choices=PREPROCESSING, default="trusted_dealer",
                   help="preprocessing source (offline phase), e.g. --op triples --source dn07")


_COLS = ("op", "size", "seconds", "ops/s", "offline s", "rounds (model)", "bytes/party (model)", "ok")


def _row(r: dict) -> list[str]:
    secs = f"{r['seconds']:.4g}" if r["seconds"] is not None else "ERROR"
    ops = f"{r['ops_per_s']:.3g}" if r["ops_per_s"] is not None else "-"
    flag = "" if r["cost_model_ok"] else " !"
    return [
        r["op"], str(r["size"]), secs, ops, f"{r['offline_seconds']:.3g}",
        f"{r['rounds']} ({r['predicted_rounds']}){flag}",
        f"{r['bytes_per_party']} ({r['predicted_bytes_per_party']}){flag}",
        "yes" if r["correct"] else "NO",
    ]


def main(args: argparse.Namespace) -> int:
    status, rows = 0, []
    header_done = False
    for op in args.op:
        for size in args.size:
            rec = measure(
                op, size, parties=args.parties, scheme=args.scheme, transport=args.transport,
                processes=args.processes, latency=args.latency, bandwidth=args.bandwidth,
                repeat=args.repeat, seed=args.seed, timeout=args.timeout, source=args.source,
            )
            if not rec["correct"] or not rec["cost_model_ok"]:
                status = 1
            if args.json:
                print(json.dumps(rec), flush=True)
                continue
            if not header_done:
                print(f"{rec['parties']} parties, {rec['scheme']} sharing; network: {rec['network']}")
                print(f"median of {rec['repeat']} runs after a warm-up; online time; "
                      "(model) = cost-model prediction, ! = differs")
                header_done = True
            rows.append(_row(rec))
            print(f"  measured {op} size {size}", file=sys.stderr, flush=True)
    if rows:
        widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(_COLS)]
        print("  ".join(c.ljust(w) for c, w in zip(_COLS, widths, strict=True)))
        for r in rows:
            print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))
    return status


__all__ = ["COST_MODEL", "OPS", "OP_DOC", "Cost", "add_arguments", "bench_job", "main", "measure"]
