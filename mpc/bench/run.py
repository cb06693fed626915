"""`smpc bench`: time a protocol, count its rounds and bytes, check its result.

One measurement = one (op, size) pair run by `parties` parties: the inputs are shared once,
then `repeat + 1` timed runs (the first is a warm-up and is discarded). Before each timed run
every party fetches the run's preprocessing (timed separately: `offline_seconds`) and the
parties synchronise with a one-element open. A run's time is from the moment the last party
starts until the last one finishes (a one-open barrier leaves up to one latency of skew
between parties, which a per-party timer would count as protocol time; time.monotonic is
system-wide, so this also holds across processes); `seconds` is the median over the repeats. Rounds and bytes are
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

import numpy as np

from mpc.bench.costmodel import COST_MODEL, ERROR_BOUND, FIX_F, MATMUL_D, MATMUL_M, Cost
from mpc.bench.e2e import (
    FRAUD_THRESHOLD,
    LOGREG_D,
    LOGREG_EPOCHS,
    PUBLIC_SEED,
    _check_e2e,
    _e2e_inputs,
    _run_e2e,
)
from mpc.bench.report import plot, print_table
from protocols.errors import ParameterError
from protocols.preprocessing.buffered import Buffered

#: truncate: fixed-point fractional bits and input magnitude
TRUNC_F, TRUNC_BITS = 16, 40
#: the end-to-end jobs (whole protocols.apps.ml / protocols.apps.fraud calls, not one primitive)
E2E_OPS = ("logistic_regression", "fraud_score")
#: joint DP noise on `size` released counts (issue 13); not modelled, checked statistically
DP_OPS = ("dp_laplace", "dp_gaussian")
#: their parameters: discrete Laplace at sensitivity 1, epsilon 1 (scale 1); discrete
#: Gaussian sigma 4
DP_NOISE = {"dp_laplace": ("laplace", 1.0), "dp_gaussian": ("gaussian", 4.0)}


#: ops on fixed-point values: over Shamir they run on GF(2^127 - 1) (GF(2^61 - 1) leaves
#: too few bits for fixed point, see protocols/truncation.py)
FIXED_OPS = ("fixed_mul", "compare", "sigmoid_piecewise", "sigmoid", "reciprocal")
#: the public input intervals the fixed-point ops are measured on
INPUT_RANGE = {
    "fixed_mul": (-100.0, 100.0),  # |x*y| <= 10^4, inside the 2^30 product range
    "compare": (-1000.0, 1000.0),
    "sigmoid_piecewise": (-2.0, 2.0),  # both clipped ends and the linear middle
    "sigmoid": (-20.0, 20.0),  # includes the clipped |x| > 16
    "reciprocal": (2.0**-8, 2.0**16),  # log-uniform
}

#: what "size" and one "op" mean for each workload (ops_per_s = ops / seconds)
OP_DOC = {
    "mul": "Beaver mul of two shared vectors of `size` elements; ops = size",
    "matmul": f"(size x {MATMUL_D}) @ ({MATMUL_D} x {MATMUL_M}) shared matrices; "
    f"ops = size*{MATMUL_D * MATMUL_M} multiplications",
    "inner": "inner product of two shared vectors of `size` elements (one matmul "
    "opening); ops = size multiply-adds",
    "open": "open one shared vector of `size` elements to all; ops = size",
    "input": "party 0 secret-shares a vector of `size` elements; ops = size",
    "triples": "fetch `size` Beaver triples from the --source (offline phase); ops = size",
    "truncate": f"probabilistic truncation by 2^{TRUNC_F} (Z_2^64, additive); ops = size",
    "fixed_mul": "fixed-point product (f = 16) of two shared vectors, truncated; ops = size",
    "compare": "secret x < secret y (comparison.lt) on fixed-point vectors; ops = size",
    "sigmoid_piecewise": "SecureML piecewise-linear sigmoid clip(x + 1/2, 0, 1); ops = size",
    "sigmoid": "smooth sigmoid (exp + Newton reciprocal), error <= 2^-16 + 1e-4; ops = size",
    "reciprocal": "1/x on [2^-8, 2^16) (normalisation + Newton), rel. error 2e-5; ops = size",
    "logistic_regression": f"protocols.apps.ml.train('logistic') on `size` rows x {LOGREG_D} features "
    "(public seed, split horizontally), batch 128, lr 0.5, --epochs, then reveal; correct = "
    "accuracy within 1 pp of the float64 reference; ops = size*epochs rows; end-to-end jobs "
    "are not modelled (predicted_* and cost_model_ok null)",
    "fraud_score": "protocols.fraud.score of `size` make_fraud transactions split vertically, "
    f"public model, flags (p > {FRAUD_THRESHOLD}) and smooth-sigmoid scores to bank 0; correct "
    "= flags equal to plaintext, scores within 2^-16 + 1e-4; ops = size; not modelled",
    "dp_laplace": "protocols.apps.dp.add_noise: joint discrete Laplace noise (scale 1: "
    "sensitivity 1, epsilon 1) on `size` shared counts; correct = the noise's sample std "
    "within 15% of the exact one (size >= 1000); ops = size; not modelled",
    "dp_gaussian": "protocols.apps.dp.add_noise: joint discrete Gaussian noise (sigma 4) on "
    "`size` shared counts; correct as dp_laplace; ops = size; not modelled",
}
OPS = tuple(COST_MODEL)
#: the single protocols (their cost model is exact)
PRIMITIVE_OPS = tuple(o for o in OPS if o not in E2E_OPS and o not in DP_OPS)


def _ops(op: str, size: int, epochs: int = LOGREG_EPOCHS) -> int:
    if op == "logistic_regression":
        return size * epochs
    return size * MATMUL_D * MATMUL_M if op == "matmul" else size


def bench_domain(op: str, scheme: str, security: str = "semi-honest", prime: int | None = None):
    """The domain a measurement runs on: Z_2^64 (additive), GF(2^61 - 1) (Shamir), and
    GF(2^127 - 1) for the fixed-point ops over Shamir and for malicious Shamir; `prime`
    (61 or 127) picks the Mersenne field of a Shamir measurement instead."""
    from mpc.local import default_domain

    if prime is not None and scheme == "shamir":
        from protocols.arith.field import Mersenne61, Mersenne127

        if prime not in (61, 127):
            raise ParameterError(f"prime must be 61 or 127 (2^p - 1), got {prime}")
        return Mersenne61() if prime == 61 else Mersenne127()
    if scheme == "shamir":  # not run_local's default (GF(2^127 - 1)): integer ops on 2^61 - 1
        from protocols.arith.field import Mersenne61, Mersenne127

        if op in FIXED_OPS or op in E2E_OPS or security == "malicious":
            return Mersenne127()
        return Mersenne61()
    return default_domain(scheme)


def _uniform(rng, size: int, lo: float, hi: float) -> np.ndarray:
    u = (rng.uint64((size,)) >> np.uint64(11)).astype(np.float64) / 2.0**53
    return lo + (hi - lo) * u


def _fixed_inputs(op: str, size: int, rng) -> tuple[np.ndarray, np.ndarray | None]:
    """Public benchmark inputs of a fixed-point op as int64 fixed-point encodings."""
    lo, hi = INPUT_RANGE[op]
    if op == "reciprocal":
        x = 2.0 ** _uniform(rng, size, np.log2(lo), np.log2(hi) - 1e-9)
    else:
        x = _uniform(rng, size, lo, hi)
    enc = np.rint(x * 2.0**FIX_F).astype(np.int64)
    if op in ("fixed_mul", "compare"):
        y = np.rint(_uniform(rng, size, lo, hi) * 2.0**FIX_F).astype(np.int64)
        if size > 1 and op == "compare":
            y[0] = enc[0]  # include the equal case (x < x is false)
        return enc, y
    if size > 1 and op in ("sigmoid", "sigmoid_piecewise"):
        enc[:2] = [0, np.rint(0.5 * 2.0**FIX_F)]  # edge cases: 0 and the kink at 1/2
    return enc, None


def _plain(D, op: str, size: int):
    from protocols.prg import CryptoRNG

    rng = CryptoRNG.from_seed(PUBLIC_SEED, op, size)
    if op == "matmul":
        return D.random(rng, (size, MATMUL_D)), D.random(rng, (MATMUL_D, MATMUL_M))
    if op == "truncate":
        v = rng.uint64((size,)).astype(np.int64) >> np.int64(64 - TRUNC_BITS)  # signed
        return D.from_int(v), None
    if op in FIXED_OPS:
        x, y = _fixed_inputs(op, size, rng)
        return D.from_int(x), (D.from_int(y) if y is not None else None)
    if op in DP_OPS:  # counts 0..49
        return D.from_int(np.arange(size, dtype=np.int64) % 50), None
    return D.random(rng, (size,)), D.random(rng, (size,))


async def _run_op(s, op: str, size: int, x, y, px):
    from protocols import beaver, comparison, core, fixed, nonlinear

    if op == "mul":
        return await beaver.mul(s, x, y)
    if op == "matmul":
        return await beaver.matmul(s, x, y)
    if op == "inner":
        from protocols.session import Share

        return await beaver.matmul(s, Share(x.data.reshape(1, -1), s), y)
    if op == "open":
        return (await core.open(s, x))[0]
    if op == "input":
        return await core.input(s, px if s.pid == 0 else None, 0)
    if op == "triples":
        return await s.prep.triples((size,))
    if op == "truncate":
        from protocols.truncation import trunc

        return await trunc(s, x, TRUNC_F)
    if op == "fixed_mul":
        return await fixed.mul(s, x, y, FIX_F)
    if op == "compare":
        return await comparison.lt(s, x, y)
    if op == "sigmoid_piecewise":
        return await nonlinear.sigmoid_piecewise(s, x, FIX_F)
    if op == "sigmoid":
        return await nonlinear.sigmoid(s, x, FIX_F)
    if op == "reciprocal":
        return await nonlinear.reciprocal(s, x, FIX_F)
    if op in DP_OPS:
        from protocols.apps import dp

        return await dp.add_noise(s, x, _dp_noise(op))
    raise ParameterError(f"unknown op {op!r}")


def _dp_noise(op: str):
    from protocols.apps import dp

    mech, p = DP_NOISE[op]
    return dp.calibrate("laplace", p, 0.0, 1.0) if mech == "laplace" else \
        dp.Noise("gaussian", p, 1.0, 0.0, 0.0, 1 / (2 * p * p))


async def bench_job(s, op: str, size: int, repeat: int, params: dict | None = None) -> dict:
    """One party's side of a measurement; returns its per-run times and counts.

    Run 0 is the warm-up: it fetches its preprocessing inline and records what it asked
    for; before every timed run the same items are fetched ahead (offline time).
    End-to-end ops take each party's own float data (px: its part, py: the public plaintext
    everything is checked against) and share it inside the timed run, as a real job does."""
    from protocols import core
    from protocols.session import Share

    if s.security == "malicious":
        from mpc.bench.malicious import malicious_job

        return await malicious_job(s, op, size, repeat, params)
    if op == "truncate" and (s.scheme.kind != "additive" or s.domain.is_field):
        raise ParameterError("bench op 'truncate' is implemented for --scheme additive only")
    params = dict(params or {})
    prep = Buffered(s.prep)  # the warm-up's requests are logged and replayed ahead of each run
    s = dataclasses.replace(s, prep=prep)
    log: list = []
    D = s.domain
    if op in E2E_OPS:
        px, py = _e2e_inputs(op, size, s.n, s.pid, params)
        x = y = None
    else:
        px, py = _plain(D, op, size)
        x = await core.input(s, px if s.pid == 0 else None, 0)
        y = await core.input(s, py if s.pid == 1 else None, 1) if py is not None else None

    online, offline, counts, out = [], [], [], None
    ostats, ocounts, cpu = _source_stats(s.prep), [], []
    for i in range(repeat + 1):
        t0, c0 = time.perf_counter(), time.process_time()
        obefore = ostats.copy() if ostats is not None else None
        if i > 0:
            await prep.replay(log)
        offline.append(time.perf_counter() - t0)
        c1 = time.process_time()
        if ostats is not None and obefore is not None:
            od = ostats - obefore
            ocounts.append((od.rounds, od.bytes_sent))
        await core.open(s, Share(D.zeros((1,)), s))  # barrier: start the timer together
        prep.log = log if i == 0 and op != "triples" else None  # triples: fetching is the work
        before = s.stats.copy()
        t1 = time.monotonic()  # system-wide on Linux: comparable across party processes
        out = await (_run_e2e(s, op, px, params) if op in E2E_OPS else _run_op(s, op, size, x, y, px))
        online.append((t1, time.monotonic()))
        cpu.append((c1 - c0, time.process_time() - c1))  # this process: offline, online CPU
        prep.log = None
        d = s.stats - before
        counts.append((d.rounds, d.bytes_sent))
    # a dealer-free source's own traffic while fetching ahead (the last run)
    oc = ocounts[-1] if ocounts else None
    if op in E2E_OPS:
        return {"online": online, "offline": offline, "counts": counts,
                "offline_counts": oc, "cpu": cpu,
                **_check_e2e(s, op, px, py, out, params)}
    correct, max_err = await _check(s, op, px, py, out)
    return {"online": online, "offline": offline, "counts": counts, "correct": correct,
            "max_error": max_err, "offline_counts": oc, "cpu": cpu}


def _source_stats(prep):
    """The Stats a dealer-free source counts its own traffic in (through Buffered wrappers),
    or None (dealers)."""
    while prep is not None:
        st = getattr(prep, "stats", None)
        if st is not None:
            return st
        prep = getattr(prep, "source", None)
    return None


async def _check(s, op, px, py, out) -> tuple[bool, float | None]:
    """(result equals the plaintext computation within the op's documented error, the
    largest absolute error seen for the fixed-point ops)."""
    from protocols import core
    from protocols.session import Share

    D = s.domain
    if op == "open":
        return bool(np.array_equal(out, px)), None
    if op == "triples":
        a, b, c = (Share(v, s) for v in out)
        oa, ob, oc = await core.open(s, a, b, c)
        return bool(np.array_equal(D.mul(oa, ob), oc)), None
    (got,) = await core.open(s, out)
    if op == "mul":
        return bool(np.array_equal(got, D.mul(px, py))), None
    if op == "matmul":
        return bool(np.array_equal(got, D.matmul(px, py))), None
    if op == "inner":
        return bool(np.array_equal(got, D.matmul(px.reshape(1, -1), py))), None
    if op == "input":
        return bool(np.array_equal(got, px)), None
    if op == "truncate":  # floor(x / 2^f) + u, u in {0, 1}
        want = D.to_signed(px) >> np.int64(TRUNC_F)
        diff = D.to_signed(got) - want
        return bool(((diff == 0) | (diff == 1)).all()), None
    if op in DP_OPS:  # the noise's spread, against the exact std (statistical, size >= 1000)
        z = (D.to_signed(got) - D.to_signed(px)).astype(np.float64)
        ratio = float(z.std() / _dp_noise(op).std()) if z.size > 1 else 1.0
        return (abs(ratio - 1) < 0.15 if z.size >= 1000 else True), abs(ratio - 1)
    if op in FIXED_OPS:
        sc = 2.0**FIX_F
        x = D.to_signed(px).astype(np.float64) / sc
        z = D.to_signed(got).astype(np.float64) / sc
        if op == "compare":
            want = (D.to_signed(px) < D.to_signed(py)).astype(np.float64)
            z = D.to_signed(got).astype(np.float64)  # a 0/1 integer, not fixed point
        elif op == "fixed_mul":
            want = x * (D.to_signed(py).astype(np.float64) / sc)
        elif op == "sigmoid_piecewise":
            want = np.clip(x + 0.5, 0.0, 1.0)
        elif op == "sigmoid":
            want = 1.0 / (1.0 + np.exp(-x))
        else:
            want = 1.0 / x
        err = np.abs(z - want)
        ok = bool((err <= ERROR_BOUND[op](x)).all())
        return ok, float(err.max()) if err.size else 0.0
    return False, None


# -- measuring -------------------------------------------------------------------------------


def _network(transport: str, processes: bool, latency: float, bandwidth: float | None) -> str:
    where = "separate processes" if processes else "one process"
    wan = bool(latency) or bandwidth is not None
    bw = f"{bandwidth:g} B/s" if bandwidth else "unlimited bandwidth"
    if transport == "memory":
        if wan:
            return f"memory, simulated latency {latency:g} s, {bw} per link ({where})"
        return f"memory, no simulated delay ({where})"
    if transport == "tcp":
        if wan:
            return (f"tcp via delaying proxy (network.wanproxy: one-way latency {latency:g} s, "
                    f"{bw} per direction of each link), loopback 127.0.0.1, Noise KK ({where})")
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
    epochs: int = LOGREG_EPOCHS,
    security: str = "semi-honest",
    prime: int | None = None,
    cipher: str = "auto",
) -> dict:
    """One measurement as the JSON record `smpc bench --json` prints. `source` names the
    preprocessing source (run_local's names); its own traffic is offline and not counted in
    rounds/bytes, which are the online phase's. `epochs`: logistic_regression only.
    `security="malicious"`: Shamir over GF(2^127 - 1), ops mpc.bench.malicious.MALICIOUS_OPS, the online time
    includes the verification (not in the cost model: its counts are asserted in
    tests/protocols/test_malicious_shamir.py); the offline time of fixed_mul (compare)
    includes malicious.prepare_trunc (prepare_compare): the masks' checked bits and their
    verification. `cipher` ("auto", "ChaChaPoly", "AESGCM"): the Noise cipher of the TCP links
    between party processes (auto: AESGCM where the CPU has AES instructions); the in-process
    and MQTT channels use ChaChaPoly."""
    if op not in COST_MODEL:
        raise ParameterError(f"op must be one of {OPS}, got {op!r}")
    if size < 1 or repeat < 1:
        raise ParameterError("size and repeat must be at least 1")
    if processes and transport == "memory":
        raise ParameterError("--processes needs --transport tcp or mqtt")
    if (latency or bandwidth) and transport == "mqtt":
        raise ParameterError("--latency/--bandwidth simulate memory and tcp links, not mqtt")
    if processes and source not in ("trusted_dealer", "dn07", "ot", "rss3"):
        raise ParameterError("--processes supports --source dn07, ot or rss3 (or the shared-seed dealer)")
    if epochs < 1:
        raise ParameterError("epochs must be at least 1")
    args = (op, size, repeat, {"epochs": epochs} if op == "logistic_regression" else {})
    dom = bench_domain(op, scheme, security, prime)
    from network.secure import CHACHAPOLY, CIPHERS, preferred_cipher

    if cipher not in ("auto", *CIPHERS):
        raise ParameterError(f"cipher must be 'auto' or one of {CIPHERS}, got {cipher!r}")
    if processes and transport == "tcp":
        cipher = preferred_cipher() if cipher == "auto" else cipher
    else:
        cipher = CHACHAPOLY
    if processes:
        from mpc.processes import run_processes

        per_party = run_processes(
            parties, bench_job, job_args=args, scheme=scheme, transport=transport, seed=seed,
            timeout=timeout, domain=dom, latency=latency, bandwidth=bandwidth,
            preprocessing="shared_seed_dealer" if source == "trusted_dealer" else source,
            security=security, cipher=cipher,
        ).results
    else:
        per_party = asyncio.run(
            _in_process(parties, args, scheme, dom, transport, latency, bandwidth, seed,
                        timeout, source, security)
        )
    e = dom.elem_bytes
    # a run lasts from the moment the last party starts (the barrier cannot remove a skew of
    # up to one latency between parties) until the last one finishes
    online = [max(p["online"][r][1] for p in per_party) - max(p["online"][r][0] for p in per_party)
              for r in range(1, repeat + 1)]
    offline = [max(p["offline"][r] for p in per_party) for r in range(1, repeat + 1)]
    # exact counts: each party's must be the same in every run
    stable = all(len({tuple(c) for c in p["counts"][1:]}) == 1 for p in per_party)
    rounds = max(p["counts"][-1][0] for p in per_party)
    nbytes = max(p["counts"][-1][1] for p in per_party)
    if dom.is_field:  # the dealer-free and dealer-node sources have no edaBits for fields
        path = "bits" if source == "dealer" else True
    else:  # ot and rss3 supply ltz_tuples too (the 3-round comparison); dn07 is field-only
        path = "edabits" if source not in ("trusted_dealer", "dealer", "ot", "rss3") else False
    pred = COST_MODEL[op](size, parties, e, path) if security == "semi-honest" else None
    checked = [p["correct"] for p in per_party if p["correct"] is not None]
    correct = bool(checked) and all(checked)  # None: this party learns no output to check
    seconds = statistics.median(online)
    rec = {
        "op": op,
        "size": size,
        "parties": parties,
        "scheme": scheme,
        "security": security,
        "domain": str(dom),
        "transport": transport,
        "processes": processes,
        "network": _network(transport, processes, latency, bandwidth),
        "cipher": cipher if transport != "memory" else None,
        "latency": latency,
        "bandwidth": bandwidth,
        "repeat": repeat,
        "source": "insecure_shared_seed_dealer" if processes and source == "trusted_dealer" else source,
        "seconds": seconds if correct else None,
        "ops_per_s": _ops(op, size, epochs) / seconds if correct and seconds > 0 else None,
        "offline_seconds": statistics.median(offline),
        "rounds": rounds,
        "bytes_per_party": nbytes,
        "predicted_rounds": pred.rounds if pred else None,
        "predicted_bytes_per_party": pred.bytes_per_party if pred else None,
        # None: not modelled (end-to-end jobs); the counts must still repeat exactly
        "cost_model_ok": (pred.rounds == rounds and pred.bytes_per_party == nbytes and stable)
        if pred else None,
        "counts_stable": stable,
        "correct": correct,
    }
    if processes and all(p.get("cpu") for p in per_party):
        # each party's own process CPU time (load-independent, unlike the wall times; the
        # in-process runs share one process, so there it is not per party): max over parties
        rec["offline_cpu_seconds"] = max(statistics.median(c[0] for c in p["cpu"][1:]) for p in per_party)
        rec["online_cpu_seconds"] = max(statistics.median(c[1] for c in p["cpu"][1:]) for p in per_party)
    oc = [p["offline_counts"] for p in per_party if p.get("offline_counts")]
    if oc:  # dealer-free sources: the offline phase's own rounds and bytes (max over parties)
        rec["offline_rounds"] = max(c[0] for c in oc)
        rec["offline_bytes_per_party"] = max(c[1] for c in oc)
    for p in per_party:
        rec.update(p.get("extra") or {})
    errs = [p["max_error"] for p in per_party if p.get("max_error") is not None]
    if errs:
        rec["max_abs_error"] = max(errs)
    if not correct:
        rec["error"] = "result does not match the plaintext computation"
    return rec


async def _in_process(n, args, scheme, dom, transport, latency, bandwidth, seed, timeout, source,
                      security="semi-honest"):
    from mpc.local import close_sessions, open_sessions

    wan = transport == "tcp" and (bool(latency) or bandwidth is not None)
    sessions = await open_sessions(
        n, scheme=scheme, domain=dom, transport="memory" if wan else transport, seed=seed,
        latency=0.0 if wan else latency, bandwidth=None if wan else bandwidth,
        timeout=timeout, preprocessing=source, security=security,
    )
    proxies = []
    try:
        if wan:  # the same sessions, their channels replaced by TCP through delaying proxies
            sessions, proxies = await _over_wan_tcp(sessions, latency, bandwidth, timeout)
        return await asyncio.gather(*(bench_job(s, *args) for s in sessions))
    finally:
        await close_sessions(sessions)
        for p in proxies:
            await p.close()


async def _over_wan_tcp(sessions, latency, bandwidth, timeout):
    from network.keys import generate_keypair
    from network.tcp import TcpChannel
    from network.wanproxy import wan_addresses
    from protocols.session import CountingChannel

    n = len(sessions)
    pairs = [generate_keypair() for _ in range(n)]
    chans = [
        TcpChannel(i, n, session_id=sessions[0].sid, static_key=pairs[i][0],
                   peer_keys=[pk for _, pk in pairs], timeout=timeout)
        for i in range(n)
    ]
    addresses = [await ch.listen("127.0.0.1", 0) for ch in chans]
    dial, proxies = await wan_addresses(addresses, latency=latency, bandwidth=bandwidth)
    try:
        await asyncio.gather(*(ch.connect(dial) for ch in chans))
    except BaseException:
        for ch in chans:
            await ch.close()
        for p in proxies:
            await p.close()
        raise
    for s in sessions:
        await s.channel.close()  # the unused in-memory channel
    return [dataclasses.replace(s, channel=CountingChannel(chans[s.pid], s.stats))
            for s in sessions], proxies


# -- the command line ---------------------------------------------------------------------------


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--op", nargs="+", choices=OPS, default=["mul"], help="workload(s)")
    p.add_argument("--size", nargs="+", type=int, default=[10_000], help="elements (rows for matmul)")
    p.add_argument("--parties", nargs="+", type=int, default=[3], help="party count(s)")
    p.add_argument("--scheme", choices=["additive", "shamir"], default="additive")
    p.add_argument("--transport", choices=["memory", "tcp", "mqtt"], default="memory")
    p.add_argument("--security", choices=["semi-honest", "malicious"], default="semi-honest",
                   help="malicious: Shamir with abort (Chida et al. 2018) over GF(2^127 - 1); "
                        "ops mul, matmul, fixed_mul, compare; additive: SPDZ2k over Z_2^64 (MACs "
                        "mod 2^128), ops mul, fixed_mul, compare, logistic_regression; online time includes the check; the "
                        "truncation and "
                        "comparison masks are made and verified offline")
    p.add_argument("--prime", type=int, choices=[61, 127], default=None,
                   help="Shamir over GF(2^p - 1) (default: 127 for fixed point and malicious, else 61)")
    p.add_argument("--processes", action="store_true", help="each party in its own OS process")
    p.add_argument("--latency", nargs="+", type=float, default=[0.0],
                   help="simulated one-way latency(s), s (memory; tcp: via a delaying proxy)")
    p.add_argument("--bandwidth", type=float, default=None,
                   help="simulated bytes/s per link (memory; tcp: via the proxy)")
    p.add_argument("--cipher", choices=["auto", "ChaChaPoly", "AESGCM"], default="auto",
                   help="Noise cipher of the TCP links between --processes parties (auto: AESGCM "
                        "where the CPU has AES instructions, else ChaChaPoly)")
    p.add_argument("--repeat", type=int, default=5, help="timed runs after one warm-up")
    p.add_argument("--epochs", type=int, default=LOGREG_EPOCHS,
                   help="logistic_regression: training epochs")
    p.add_argument("--seed", type=int, default=None, help="reproducible randomness (tests only)")
    p.add_argument("--timeout", type=float, default=120.0, help="receive deadline, s")
    p.add_argument("--mpyc-timeout", type=float, default=600.0,
                   help="--compare mpyc: seconds MPyC's run may take (10k x 10 training: ~1,000-1,500)")
    p.add_argument("--json", action="store_true", help="one JSON line per measurement")
    p.add_argument("--plot", metavar="PNG", default=None,
                   help="plot throughput vs size, vs parties and time vs latency (matplotlib)")
    p.add_argument("--progress", action="store_true",
                   help="progress bar on stderr even when it is not a terminal")
    p.add_argument("--compare", choices=["mpyc"], default=None,
                   help="run the same workload in MPyC (pip install -e .[compare]) and print the ratio")
    from mpc.local import PREPROCESSING

    p.add_argument("--source", choices=PREPROCESSING, default="trusted_dealer",
                   help="preprocessing source (offline phase), e.g. --op triples --source dn07")


class _Progress:
    """A one-line progress bar on stderr: only on a terminal, or when asked for."""

    def __init__(self, total: int, enabled: bool):
        self.total, self.done, self.enabled = total, 0, enabled and total > 0
        self.t0 = time.monotonic()

    def show(self, what: str) -> None:
        if not self.enabled:
            return
        width = 24
        fill = int(width * self.done / self.total)
        bar = "#" * fill + "." * (width - fill)
        el = time.monotonic() - self.t0
        sys.stderr.write(f"\r[{bar}] {self.done}/{self.total} {el:5.0f}s  {what[:50]:<50}")
        sys.stderr.flush()

    def step(self, what: str) -> None:
        self.done += 1
        self.show(what)

    def close(self) -> None:
        if self.enabled:
            sys.stderr.write("\n")
            sys.stderr.flush()


def main(args: argparse.Namespace) -> int:
    plan = [(op, size, n, lat) for op in args.op for n in args.parties for lat in args.latency
            for size in args.size]
    bar = _Progress(len(plan), args.progress or sys.stderr.isatty())
    status, recs = 0, []
    try:
        for op, size, n, lat in plan:
            bar.show(f"{op} size {size} n {n}" + (f" latency {lat:g}" if lat else ""))
            rec = measure(
                op, size, parties=n, scheme=args.scheme, transport=args.transport,
                processes=args.processes, latency=lat, bandwidth=args.bandwidth,
                repeat=args.repeat, seed=args.seed, timeout=args.timeout, source=args.source,
                epochs=args.epochs, security=args.security, prime=args.prime, cipher=args.cipher,
            )
            if args.compare == "mpyc":
                from mpc.bench.compare_mpyc import attach_mpyc

                bar.show(f"MPyC {op} size {size} n {n}")
                attach_mpyc(rec, repeat=args.repeat, timeout=args.mpyc_timeout)
            if not rec["correct"] or rec["cost_model_ok"] is False or not rec["counts_stable"]:
                status = 1
            recs.append(rec)
            bar.step(f"{op} size {size} n {n}")
            if args.json:
                print(json.dumps(rec), flush=True)
    finally:
        bar.close()
    if not args.json and recs:
        print_table(recs, compare=args.compare is not None)
    if args.plot:
        plot(recs, args.plot)
        print(f"plot written to {args.plot}", file=sys.stderr)
    return status


__all__ = ["COST_MODEL", "E2E_OPS", "OPS", "OP_DOC", "PRIMITIVE_OPS", "Cost", "add_arguments", "bench_job", "main", "measure",
           "plot", "print_table"]
