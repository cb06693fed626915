"""Malicious Shamir (Chida et al. CRYPTO 2018): results, exact costs, cheaters caught.

A cheater is party 2 of 3 whose channel is wrapped by `Cheat`, a test double that adds 1
to the first field element of the first message it sends under a matching tag (to one peer
or to all): a wrong share in a multiplication's reshare (to the king, or the king's
answer), a wrong share of an opened value, a wrong share of the MAC key or of the check
value, an input with a wrong [r*x] component, an input whose delta differs between the
parties. Every honest party must end with security.cheating_detected and release nothing.
"""

from __future__ import annotations

import numpy as np
import pytest
from malicious_helpers import run

import mpc
from mpc.node.daemon import error_code
from protocols import beaver, core
from protocols import malicious as mal
from protocols.arith.field import GmpyField, Mersenne127
from protocols.errors import CheatingDetectedError, MaliciousUnsupportedError
from protocols.malicious import chida18
from protocols.prg import CryptoRNG

pytestmark = pytest.mark.timeout(120)

E = 16  # bytes of a GF(2^127 - 1) element
X = np.arange(1, 7).reshape(2, 3)
Y = np.arange(10, 16).reshape(2, 3)
W = np.arange(12).reshape(3, 4)


def enc(s, a):
    return s.domain.from_int(a)


async def inputs(s):
    x = await mal.input(s, enc(s, X) if s.pid == 0 else None, 0, X.shape)
    y = await mal.input(s, enc(s, Y) if s.pid == 1 else None, 1, Y.shape)
    return x, y


# -------------------------------------------------------------- correctness and costs ---
async def mul_job(s):
    x, y = await inputs(s)
    z = await mal.mul(s, x, y)
    (v,) = await mal.open(s, 3 * z - x + 5)
    return s.domain.to_int(v).astype(np.int64)


async def mul_job_semi(s):
    x = await core.input(s, enc(s, X) if s.pid == 0 else None, 0)
    y = await core.input(s, enc(s, Y) if s.pid == 1 else None, 1)
    z = await beaver.mul(s, x, y)
    (v,) = await core.open(s, 3 * z - x + 5)
    return s.domain.to_int(v).astype(np.int64)


async def matmul_job(s):
    x, _ = await inputs(s)
    w = await mal.input(s, enc(s, W) if s.pid == 2 else None, 2, W.shape)
    z = await mal.matmul(s, x, w)
    zv = await mal.matmul(s, z.T, x[:, 0])  # a vector right operand
    (a, b) = await mal.open(s, z, zv)
    return [s.domain.to_int(a).astype(np.int64), s.domain.to_int(b).astype(np.int64)]


async def matmul_job_semi(s):
    x = await core.input(s, enc(s, X) if s.pid == 0 else None, 0)
    w = await core.input(s, enc(s, W) if s.pid == 2 else None, 2)
    z = await beaver.matmul(s, x, w)
    zv = await beaver.matmul(s, z.T, x[:, 0])
    (a, b) = await core.open(s, z, zv)
    return [s.domain.to_int(a).astype(np.int64), s.domain.to_int(b).astype(np.int64)]


@pytest.mark.parametrize("preprocessing", ["trusted_dealer", "dn07"])
def test_results_equal_semi_honest_bit_for_bit(preprocessing):
    res, errs, _ = run(mul_job, preprocessing=preprocessing)
    assert errs == [None] * 3
    semi = mpc.run_local(3, mul_job_semi, scheme="shamir", domain=Mersenne127()).results
    for r in res:
        assert np.array_equal(r, semi[0]) and np.array_equal(r, 3 * X * Y - X + 5)
    res, errs, _ = run(matmul_job, preprocessing=preprocessing)
    assert errs == [None] * 3
    semi = mpc.run_local(3, matmul_job_semi, scheme="shamir", domain=Mersenne127()).results
    for r in res:
        assert all(np.array_equal(a, b) for a, b in zip(r, semi[0], strict=True))
        assert np.array_equal(r[0], X @ W) and np.array_equal(r[1], (X @ W).T @ X[:, 0])


def test_rounds_and_bytes_exact():
    """Rounds and Bytes of each docstring, n = 3, e = 16, N = 6 (party 0):
    input (owner 0): Stats rounds 4 (2 on the critical path), bytes 2*N*e (delta) + 4N/3*e;
    input (party 1 owns): N*e (rho to the owner) + 4N/3*e;  mul: rounds 2, 8N/3*e;
    matmul (2,3)@(3,4): rounds 2, 4*(2*8)/3*e;  verify: rounds 3, 2*(2e + 2e + 33);
    open of N: rounds 2, 2*(N*e + 33); a second open right after: verify costs 0.
    (The compiler's own input, `input_unchecked`; the range-checked `input` adds its bit
    decomposition: test_malicious_input_range.py::test_checked_input_costs_exact.)"""
    marks = []

    async def job(s):
        def mark():
            marks.append((s.pid, s.stats.copy()))

        mark()
        x = await mal.input_unchecked(s, enc(s, X) if s.pid == 0 else None, 0, X.shape)
        mark()
        y = await mal.input_unchecked(s, enc(s, Y) if s.pid == 1 else None, 1, Y.shape)
        mark()
        z = await mal.mul(s, x, y)
        mark()
        await mal.matmul(s, x, await mal.input_unchecked(s, enc(s, W[:, :4]) if s.pid == 0 else None, 0, (3, 4)))
        mark()
        await mal.verify(s)
        mark()
        await mal.open(s, z)
        mark()
        await mal.open(s, x)
        mark()

    res, errs, _ = run(job)
    assert errs == [None] * 3
    m = [st for pid, st in marks if pid == 0]
    d = [(b - a) for a, b in zip(m, m[1:], strict=False)]
    N = 6
    inp_w = 2 * 12 * E + 4 * 12 // 3 * E  # the W input (12 elements) inside the matmul step
    assert [x.rounds for x in d] == [4, 4, 2, 4 + 2, 3, 2, 2]
    assert [x.bytes_sent for x in d] == [
        2 * N * E + 4 * N // 3 * E,
        N * E + 4 * N // 3 * E,
        8 * N // 3 * E,
        inp_w + 4 * 16 // 3 * E,
        2 * (2 * E + 2 * E + 33),
        2 * (N * E + 33),
        2 * (N * E + 33),
    ]


def test_dealer_free_and_reveal_to():
    async def job(s):
        x, y = await inputs(s)
        z = await mal.mul(s, x, y)
        got = await mal.reveal_to(s, z, 1)
        w = await mal.mul(s, z, y)  # z is of the retired epoch: refreshed by mul
        (v,) = await mal.open(s, w)
        got = None if got is None else s.domain.to_int(got).astype(np.int64)
        return got, s.domain.to_int(v).astype(np.int64)

    res, errs, _ = run(job, preprocessing="dn07")
    assert errs == [None] * 3
    assert res[0][0] is None and res[2][0] is None
    assert np.array_equal(res[1][0], X * Y)
    assert all(np.array_equal(r[1], X * Y * Y) for r in res)


def test_mixing_epochs_without_refresh_is_refused():
    async def job(s):
        x, y = await inputs(s)
        await mal.open(s, x)
        x2 = await mal.input(s, enc(s, X) if s.pid == 0 else None, 0, X.shape)
        return x2 + y

    _, errs, _ = run(job)
    assert all(isinstance(e, MaliciousUnsupportedError) for e in errs)


def test_small_field_refused_at_production_settings():
    async def job(s):
        await mal.input(s, enc(s, X) if s.pid == 0 else None, 0, X.shape)

    _, errs, _ = run(job, domain=GmpyField(8191))
    assert chida18.MIN_FIELD_BITS == 120
    assert all(isinstance(e, MaliciousUnsupportedError) for e in errs)


# ------------------------------------------------------------------ cheaters caught ---
released: list = []


async def mul_job_recording(s):
    v = await mul_job(s)
    released.append(s.pid)
    return v


async def matmul_job_recording(s):
    v = await matmul_job(s)
    released.append(s.pid)
    return v


CHEATS = [
    # (job, (tag prefix, peers), check the honest parties report)
    (mul_job_recording, ("mking", [0]), "mac"),  # one share of a product to a king
    # the king's answer (cheater = king 2): the honest parties' product is off by 1 and the
    # cheater's own share is off their polynomial, so T is inconsistent or non-zero
    (mul_job_recording, ("mking-open", None), ("mac", "open")),
    (mul_job_recording, ("minput-rho", None), "input"),  # its share of party 0's rho
    (mul_job_recording, ("mcoin", [1]), "open"),  # its share of r to one party
    (mul_job_recording, ("mcheck", None), "open"),  # its share of the check value T
    (mul_job_recording, ("mopen", [0]), "open"),  # its share of the output, to one party
    (matmul_job_recording, ("mking", [1]), "mac"),  # a matmul product's reshare
]


@pytest.mark.parametrize("job,cheat,check", CHEATS, ids=[f"{c[1][0]}-{c[0].__name__}" for c in CHEATS])
def test_cheater_caught_on_every_honest_party(job, cheat, check):
    released.clear()
    res, errs, _ = run(job, cheat=cheat)
    assert released == [] and res == [None] * 3
    for pid in (0, 1):
        e = errs[pid]
        assert isinstance(e, CheatingDetectedError), (pid, e)
        assert error_code(e) == "security.cheating_detected"
        assert e.check in (*check, "reported") if isinstance(check, tuple) else (check, "reported")
    assert any(errs[pid].check in (check if isinstance(check, tuple) else (check,)) for pid in (0, 1))
    # the error names the check, never a value
    assert all(str(v) not in str(errs[0]) for v in (3 * X * Y - X + 5).reshape(-1) if v > 9)


async def own_input_job(s):
    """The cheater (party 2) owns an input: it corrupts its [r*x] component or its delta."""
    x, y = await inputs(s)
    w = await mal.input(s, enc(s, X) if s.pid == 2 else None, 2, X.shape)
    (v,) = await mal.open(s, await mal.mul(s, w, y) + x)
    released.append(s.pid)
    return v


@pytest.mark.parametrize("cheat,check", [
    (("mking", None), "mac"),  # the first product after the inputs of 0 and 1: r*rho of w
    (("min/minput-delta", [1]), "input"),  # a different delta to party 1 than to party 0
])
def test_cheating_input_caught(cheat, check):
    released.clear()

    async def job(s):
        x, y = await inputs(s)
        await mal.verify(s)  # the cheat hits the cheater's own input below
        w = await mal.input(s, enc(s, X) if s.pid == 2 else None, 2, X.shape)
        (v,) = await mal.open(s, w + 0)
        released.append(s.pid)
        return v

    prefix, peers = cheat
    res, errs, _ = run(job, cheat=(prefix.split("/")[-1], peers))
    assert released == [] and res == [None] * 3
    for pid in (0, 1):
        assert isinstance(errs[pid], CheatingDetectedError), errs[pid]
        assert errs[pid].code == "security.cheating_detected"
    assert any(errs[pid].check == check for pid in (0, 1))


def test_abort_is_terminal_and_burns_preprocessing():
    async def job(s):
        try:
            await mul_job(s)
        except CheatingDetectedError:
            assert s.aborted and s.prep._queues == {} and chida18._state(s).key is None
            with pytest.raises(Exception):  # noqa: B017 (SessionAbortedError or the channel's)
                await mal.input(s, enc(s, X) if s.pid == 0 else None, 0, X.shape)
            raise

    _, errs, _ = run(job, cheat=("mking", None))
    assert all(isinstance(errs[p], CheatingDetectedError) for p in (0, 1))


def test_processes_tcp_malicious():
    from mpc.processes import run_processes

    res = run_processes(3, mul_job, scheme="shamir", security="malicious", transport="tcp", seed=3)
    assert all(np.array_equal(r, 3 * X * Y - X + 5) for r in res.results)


# -------------------------------------------------------- the check's soundness rate ---
def _false_accepts(F, trials: int, seed: str, *, broken: bool) -> int:
    """Count accepted checks against the cancelling attack: two pairs whose r*z components
    carry +delta and -delta (delta != 0). With PRG coefficients T = delta*(a1 - a2), zero
    with probability exactly 1/p; with fixed coefficients (the broken check) always zero.
    Uses chida18.coefficients and chida18.check_value on values (T on shares reconstructs to
    T on values: the check is linear)."""
    rng = CryptoRNG.from_seed(seed)
    p = F.modulus
    accepts = 0
    for _ in range(trials):
        z = F.random(rng, (2,))
        r = F.random(rng, ())
        delta = int(rng.below(p - 1, 1)[0]) + 1
        m = F.from_int(np.array([delta, p - delta], dtype=object))
        rz = F.add(F.mul(np.ascontiguousarray(np.broadcast_to(r, (2,))), z), m)
        coin = F.random(rng, (1,))
        alphas = F.from_int(np.array([1, 1])) if broken else chida18.coefficients(F, coin, 2)
        T = chida18.check_value(F, alphas, z, rz, r)
        accepts += int(F.to_int(T.reshape(1))[0]) == 0
    return accepts


def test_false_accept_rate_is_one_over_field_size():
    """Reduced fields for the statistics (production: MIN_FIELD_BITS = 120, asserted above).
    GF(127), 12000 trials: expected 94.5 accepts, sd 9.7, accepted within +-5 sd ([46, 143];
    a rate of 2/p, 189, fails). GF(2^13 - 1), 30000 trials: expected 3.7, accepted if <= 16
    (Poisson tail < 1e-4)."""
    F = GmpyField(127)
    got = _false_accepts(F, 12000, "rate-127", broken=False)
    assert 46 <= got <= 143, got
    F = GmpyField(8191)
    got = _false_accepts(F, 30000, "rate-8191", broken=False)
    assert got <= 16, got


def test_broken_check_with_fixed_coefficients_is_caught():
    assert _false_accepts(GmpyField(127), 2000, "broken-127", broken=True) == 2000
    assert _false_accepts(GmpyField(8191), 2000, "broken-8191", broken=True) > 16


def test_protocol_level_detection_rate_on_a_small_field(monkeypatch):
    """The whole protocol over GF(127) (MIN_FIELD_BITS lowered for this test only): a
    cheater adds 1 to one share sent to a king in every run; the check misses it with
    probability about 2/127 per run (alpha = 0, or the error cancelled through r = 0):
    of 150 runs at least 135 are caught (expected 147.6)."""
    monkeypatch.setattr(chida18, "MIN_FIELD_BITS", 7)
    caught = 0

    async def job(s):
        x = await mal.input_unchecked(s, enc(s, X) if s.pid == 0 else None, 0, X.shape)  # GF(127)
        y = await mal.input_unchecked(s, enc(s, Y) if s.pid == 1 else None, 1, Y.shape)  # has no bits
        (v,) = await mal.open(s, await mal.mul(s, x, y))
        return v

    for i in range(150):
        _, errs, _ = run(job, cheat=("mking", [0]), domain=GmpyField(127), seed=i)
        caught += all(isinstance(errs[p], CheatingDetectedError) for p in (0, 1))
    assert caught >= 135, caught


def test_check_does_not_depend_on_completion_order():
    """Concurrent branches may finish (and record their pairs) in different orders at
    different parties: here party 0's record of two products in child sessions is reversed.
    The check orders the pairs by operation tag, so there is no false alarm (without the
    ordering this run fails with security.cheating_detected)."""

    async def job(s):
        x, y = await inputs(s)
        za = await mal.mul(s.child("a"), x, y)
        zb = await mal.mul(s.child("b"), x.reshape(6), y.reshape(6))
        if s.pid == 0:
            chida18._state(s).pending.reverse()
        va, vb = await mal.open(s, za, zb)
        return s.domain.to_int(va).astype(np.int64), s.domain.to_int(vb).astype(np.int64)

    res, errs, _ = run(job)
    assert errs == [None] * 3
    assert all(np.array_equal(a, X * Y) and np.array_equal(b, (X * Y).reshape(6)) for a, b in res)
