"""`smpc bench --security malicious`: the timed online run is the product (or fixed_mul,
compare) plus the verification that must precede any output; the masks and MACed items are
made before the timer (offline). Shamir: protocols.malicious (Chida et al. 2018); additive:
SPDZ2k (protocols.malicious.spdz2k)."""

from __future__ import annotations

import dataclasses
import time

import numpy as np

from mpc.bench.costmodel import FIX_F
from mpc.bench.run import _plain
from protocols.preprocessing.buffered import Buffered

#: ops `--security malicious` measures (protocols.malicious): the product, then the check;
#: logistic_regression: training and release (protocols.apps.ml.malicious)
MALICIOUS_OPS = ("mul", "matmul", "fixed_mul", "compare", "logistic_regression")


async def _barrier(s) -> None:
    """One tiny round (the malicious sessions have no core.open)."""
    await s.exchange(s.tag("barrier"), {j: s.domain.zeros((1,)) for j in s.peers},
                     {j: (1,) for j in s.peers})


class _Prefetch:
    """A SPDZ2k preprocessing wrapper for the bench: the triples the timed run asks for (their
    shapes recorded in the first, untimed-for-the-report run) are fetched before the timer,
    as the Shamir rows' Buffered replay does; every other kind passes through."""

    def __init__(self, inner):
        self.inner, self.log, self.ready, self.recording = inner, [], [], False

    async def triples(self, shape):
        shape = tuple(shape)
        if self.ready:
            want, t = self.ready.pop(0)
            if want == shape:
                return t
            self.ready = []  # the run asked for something else: fetch the rest live
        if self.recording:
            self.log.append(shape)
        return await self.inner.triples(shape)

    async def fill(self):
        self.ready = [(sh, await self.inner.triples(sh)) for sh in self.log]

    def __getattr__(self, name):
        return getattr(self.inner, name)


class _Replay:
    """A SPDZ2k preprocessing wrapper for the logistic_regression bench: every item the first
    (untimed-for-the-report) run asks for is recorded (kind and arguments, in order), and
    before each later run the same items are fetched ahead (offline), then handed out in
    order; a request that differs from the record is fetched live. A source without matrix
    triples (the OT source) gets them made here from its element triples
    (spdz2k_matmul.matrix_triple_from_elements), so ahead of the timer too."""

    KINDS = ("triples", "matrix_triples", "randoms", "bits", "input_masks", "input_bits")

    def __init__(self, inner, s):
        self.inner, self.s = inner, s
        self.log: list | None = None
        self.ready: list = []

    async def _live(self, kind, args):
        if kind == "matrix_triples" and not hasattr(self.inner, "matrix_triples"):
            from protocols.malicious.spdz2k_matmul import matrix_triple_from_elements

            return await matrix_triple_from_elements(self.s, *args[0])
        return await getattr(self.inner, kind)(*args)

    async def _get(self, kind, *args):
        key = (kind, tuple(tuple(a) if isinstance(a, tuple | list) else a for a in args))
        if self.ready:
            want, item = self.ready.pop(0)
            if want == key:
                return item
            self.ready = []  # the run asked for something else: fetch the rest live
        if self.log is not None:
            self.log.append(key)
        return await self._live(kind, args)

    async def fill(self, log):
        self.ready = [(key, await self._live(key[0], key[1])) for key in log]

    def __getattr__(self, name):
        if name in _Replay.KINDS:
            if name != "matrix_triples" and not hasattr(self.inner, name):
                raise AttributeError(name)
            return lambda *a: self._get(name, *a)
        return getattr(self.inner, name)


async def _spdz2k_logistic_job(s, size: int, repeat: int, params: dict) -> dict:
    """bench_job's logistic_regression with scheme="additive", security="malicious" (SPDZ2k:
    protocols.apps.ml.malicious through protocols.malicious.backend): each timed run trains
    and releases the model as a job does. Offline: every MACed item the run uses (triples,
    matrix triples, bits, randoms, input masks and bits), fetched ahead from the dealer or
    made by the OT source (`_Replay`), plus the mask preparation (spdz2k_ml.prepare_batch:
    the truncation masks and the comparisons' pair products), whose seconds, rounds and
    bytes are taken out of the online figures."""
    from mpc.bench.e2e import _check_e2e, _e2e_inputs, _run_e2e
    from protocols.malicious.spdz2k_ml import OFFLINE

    op = "logistic_regression"
    ctx = s._state.ext["spdz2k"]
    prep = ctx.prep = _Replay(ctx.prep, s)
    ostats = getattr(prep.inner, "stats", None)  # the OT source's own traffic
    px, py = _e2e_inputs(op, size, s.n, s.pid, params)
    log: list = []
    online, offline, counts, cpu, ocounts, out = [], [], [], [], [], None
    for i in range(repeat + 1):
        t0, c0 = time.perf_counter(), time.process_time()
        obefore = ostats.copy() if ostats is not None else None
        sbefore = s.stats.copy()
        if i > 0:
            await prep.fill(log)
        dealer, cdealer = time.perf_counter() - t0, time.process_time() - c0
        fill = s.stats - sbefore  # the OT matrix triples' Beaver round (offline)
        await _barrier(s)
        prep.log = log if i == 0 else None
        before = s.stats.copy()
        acc0 = list(s._state.ext.get(OFFLINE, [0.0, 0, 0, 0.0]))
        t1, c1 = time.monotonic(), time.process_time()
        out = await _run_e2e(s, op, px, params)
        t2, c2 = time.monotonic(), time.process_time()
        prep.log = None
        acc = s._state.ext.get(OFFLINE, [0.0, 0, 0, 0.0])
        masks, cmasks = acc[0] - acc0[0], acc[3] - acc0[3]
        online.append((t1, t2 - masks))
        offline.append(dealer + masks)
        cpu.append((cdealer + cmasks, c2 - c1 - cmasks))
        d = s.stats - before
        counts.append((d.rounds - (acc[1] - acc0[1]), d.bytes_sent - (acc[2] - acc0[2])))
        if ostats is not None and obefore is not None:
            od = ostats - obefore
            ocounts.append((od.rounds + fill.rounds + acc[1] - acc0[1], od.bytes_sent + fill.bytes_sent + acc[2] - acc0[2]))
    return {"online": online, "offline": offline, "counts": counts, "cpu": cpu,
            "offline_counts": ocounts[-1] if ocounts else None, **_check_e2e(s, op, px, py, out, params)}


async def _spdz2k_job(s, op: str, size: int, repeat: int) -> dict:
    """bench_job for malicious additive sharing (SPDZ2k over Z_2^64): the timed run is the
    op (mul; fixed_mul = mul + truncation; compare = ltz(x - y), protocols.malicious.
    spdz2k_fixed) and the MAC check that must precede any output (5 rounds); the MACed
    triples and masks (bits, randoms, the comparison's pair products) are fetched before the
    timer (offline): from the in-process dealer, or made by the dealer-free OT source
    (protocols.malicious.spdz2k_ot, whose own rounds and bytes are reported as
    offline_counts)."""
    from protocols.errors import MaliciousUnsupportedError
    from protocols.malicious import spdz2k
    from protocols.malicious import spdz2k_fixed as F

    if op not in ("mul", "fixed_mul", "compare"):
        raise MaliciousUnsupportedError(f"bench op {op!r} has no SPDZ2k version yet (mul, fixed_mul, compare)")
    D = s.domain
    px, py = _plain(D, op, size)
    x = await spdz2k.input(s, px if s.pid == 0 else None, 0, px.shape)
    y = await spdz2k.input(s, py if s.pid == 1 else None, 1, py.shape)
    await spdz2k.check(s)
    online, offline, counts, out = [], [], [], None
    ctx = s._state.ext["spdz2k"]
    prep = ctx.prep = _Prefetch(ctx.prep)
    ostats = getattr(prep, "stats", None)  # a dealer-free source's own traffic (spdz2k_ot)
    ocounts, cpu = [], []
    for i in range(repeat + 1):
        t0, c0 = time.perf_counter(), time.process_time()
        obefore = ostats.copy() if ostats is not None else None
        triple = None
        if op in ("mul", "fixed_mul"):
            triple = await prep.triples(x.shape)
        if op == "fixed_mul":
            await F.prepare_trunc(s, size, FIX_F)
        if op == "compare":  # the masks and their pair products (one Beaver round), checked
            await F.prepare_compare(s, size)
            await spdz2k.check(s)
        if i > 0:
            await prep.fill()
        offline.append(time.perf_counter() - t0)
        c1 = time.process_time()
        if ostats is not None and obefore is not None:
            od = ostats - obefore
            ocounts.append((od.rounds, od.bytes_sent))
        await _barrier(s)
        prep.recording = i == 0
        before = s.stats.copy()
        t1 = time.monotonic()
        if op == "compare":
            out = await F.lt(s, x, y)
        else:
            out = await spdz2k.mul(s, x, y, triple=triple)
            if op == "fixed_mul":
                out = await F.trunc(s, out, FIX_F)
        await spdz2k.check(s)
        online.append((t1, time.monotonic()))
        cpu.append((c1 - c0, time.process_time() - c1))
        prep.recording = False
        d = s.stats - before
        counts.append((d.rounds, d.bytes_sent))
    (got,) = await spdz2k.open(s, out)
    if op == "fixed_mul":  # floor(x*y / 2^f) + u, u in {0, 1}, on the encodings
        diff = D.to_signed(got).astype(object) - ((D.to_signed(px).astype(object) * D.to_signed(py)) >> FIX_F)
        ok = bool(np.isin(diff, (0, 1)).all())
    elif op == "compare":
        ok = bool(np.array_equal(got, (D.to_signed(px) < D.to_signed(py)).astype(np.uint64)))
    else:
        ok = bool(np.array_equal(got, D.mul(px, py)))
    return {"online": online, "offline": offline, "counts": counts, "cpu": cpu,
            "offline_counts": ocounts[-1] if ocounts else None, "correct": ok, "max_error": None}


async def _logistic_job(s, size: int, repeat: int, params: dict) -> dict:
    """bench_job's logistic_regression with security="malicious" (protocols.apps.ml.malicious):
    each timed run trains and releases the model as a job does. Offline: the dealer's random
    and double sharings (fetched ahead, as for every op) plus the party-made masks
    (malicious.batch.prepare_batch: checked random bits and their verification, once per
    epoch), whose seconds, rounds and bytes are taken out of the online figures."""
    from mpc.bench.e2e import _check_e2e, _e2e_inputs, _run_e2e
    from protocols.malicious.batch import OFFLINE

    op = "logistic_regression"
    prep = Buffered(s.prep)
    s = dataclasses.replace(s, prep=prep)
    px, py = _e2e_inputs(op, size, s.n, s.pid, params)
    log: list = []
    online, offline, counts, cpu, out = [], [], [], [], None
    for i in range(repeat + 1):
        t0, c0 = time.perf_counter(), time.process_time()
        if i > 0:
            await prep.replay(log)
        dealer, cdealer = time.perf_counter() - t0, time.process_time() - c0
        await _barrier(s)
        prep.log = log if i == 0 else None
        before = s.stats.copy()
        acc0 = list(s._state.ext.get(OFFLINE, [0.0, 0, 0, 0.0]))
        t1, c1 = time.monotonic(), time.process_time()
        out = await _run_e2e(s, op, px, params)
        t2, c2 = time.monotonic(), time.process_time()
        prep.log = None
        acc = s._state.ext.get(OFFLINE, [0.0, 0, 0, 0.0])
        masks, cmasks = acc[0] - acc0[0], acc[3] - acc0[3]
        online.append((t1, t2 - masks))
        offline.append(dealer + masks)
        cpu.append((cdealer + cmasks, c2 - c1 - cmasks))  # this process: offline, online CPU
        d = s.stats - before
        counts.append((d.rounds - (acc[1] - acc0[1]), d.bytes_sent - (acc[2] - acc0[2])))
    return {"online": online, "offline": offline, "counts": counts, "cpu": cpu,
            **_check_e2e(s, op, px, py, out, params)}


async def malicious_job(s, op: str, size: int, repeat: int, params: dict | None = None) -> dict:
    """bench_job for security="malicious": the timed run is the product and the
    verification that must precede any output (mul: 2 + 3 rounds); logistic_regression:
    the whole training and release (`_logistic_job`)."""
    from protocols import malicious as mal
    from protocols.errors import MaliciousUnsupportedError

    if s.scheme.kind == "additive":
        if op == "logistic_regression":
            return await _spdz2k_logistic_job(s, size, repeat, dict(params or {}))
        return await _spdz2k_job(s, op, size, repeat)
    if op == "logistic_regression":
        return await _logistic_job(s, size, repeat, dict(params or {}))
    if op not in MALICIOUS_OPS:
        raise MaliciousUnsupportedError(f"bench op {op!r} has no malicious version yet ({MALICIOUS_OPS})")
    prep = Buffered(s.prep)
    s = dataclasses.replace(s, prep=prep)
    D = s.domain
    px, py = _plain(D, op, size)
    # mul / matmul multiply uniformly random field elements (their range is irrelevant to the
    # timed product): the compiler's unchecked input; the fixed-point ops' inputs are checked
    inp = mal.input_unchecked if op in ("mul", "matmul") else mal.input
    x = await inp(s, px if s.pid == 0 else None, 0, px.shape)
    y = await inp(s, py if s.pid == 1 else None, 1, py.shape)
    log: list = []
    online, offline, counts, cpu, out = [], [], [], [], None
    for i in range(repeat + 1):
        t0, c0 = time.perf_counter(), time.process_time()
        if i > 0:
            await prep.replay(log)
        if op == "fixed_mul":  # the truncation masks: checked bits, verified (offline)
            await mal.prepare_trunc(s, size, FIX_F)
        if op == "compare":  # the comparison masks: checked bits, MACed rows, verified
            await mal.prepare_compare(s, size, "ltz")
        offline.append(time.perf_counter() - t0)
        coff = time.process_time() - c0
        x = await mal.refresh(s, x)  # under this run's key (set-up, not timed)
        if op == "compare":  # x - y needs both under it
            y = await mal.refresh(s, y)
        await _barrier(s)
        prep.log = log if i == 0 else None
        before = s.stats.copy()
        t1, c1 = time.monotonic(), time.process_time()
        if op == "fixed_mul":  # the product, then trunc with the prepared masks
            out = await mal.fixed_mul(s, x, y, FIX_F)
        elif op == "compare":  # [x < y] with the prepared masks
            out = await mal.lt(s, x, y)
        else:
            out = await (mal.mul(s, x, y) if op == "mul" else mal.matmul(s, x, y))
        await mal.verify(s)
        online.append((t1, time.monotonic()))
        cpu.append((coff, time.process_time() - c1))  # this process: offline, online CPU
        prep.log = None
        d = s.stats - before
        counts.append((d.rounds, d.bytes_sent))
    (got,) = await mal.open(s, out)
    if op == "fixed_mul":  # floor(x*y / 2^f) + u, u in {0, 1}, on the encodings
        diff = D.to_signed(got).astype(object) - ((D.to_signed(px).astype(object) * D.to_signed(py)) >> FIX_F)
        return {"online": online, "offline": offline, "counts": counts, "cpu": cpu,
                "correct": bool(np.isin(diff, (0, 1)).all()), "max_error": None}
    if op == "compare":
        want = (D.to_signed(px) < D.to_signed(py)).astype(np.int64)
        return {"online": online, "offline": offline, "counts": counts, "cpu": cpu,
                "correct": bool(np.array_equal(D.to_signed(got), want)), "max_error": None}
    want = D.mul(px, py) if op == "mul" else D.matmul(px, py)
    return {"online": online, "offline": offline, "counts": counts, "cpu": cpu,
            "correct": bool(np.array_equal(got, want)), "max_error": None}
