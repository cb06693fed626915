"""Dealer-free SPDZ2k preprocessing from OT (protocols.malicious.spdz2k_ot.Spdz2kOT).

Every item kind reconstructs with a valid MAC under alpha = sum_i alpha_i (the test gathers
the alpha_i in process, which no party does); the online phase over this source gives the
dealer's results; exact offline rounds and bytes per batch; cheats caught on every honest
party with security.cheating_detected (an error in a triple share c: the sacrifice; a wrong
vOLE correction: the MAC check; tampered sacrifice openings: the MAC check / sacrifice /
transcript), and a broken variant (the sacrifice's t fixed to 0) that lets the wrong triple
through, so the tests can fail. The cheater is the last party; test doubles subclass the
source and override one step (the adversary's code), or wrap its channel
(malicious_helpers.Cheat, raw-word mode).
"""

from __future__ import annotations

import asyncio
import dataclasses

import numpy as np
import pytest
from malicious_helpers import Cheat, run_parties

from mpc.local import open_sessions, run_local
from mpc.node.daemon import error_code
from network.errors import SmpcError
from protocols.arith import ring128 as R
from protocols.errors import CheatingDetectedError
from protocols.malicious import spdz2k
from protocols.malicious.spdz2k_ot import KOS_EXTRA, TAU, Spdz2kOT, alpha_bits, weighted

pytestmark = pytest.mark.timeout(180)

B = 16  # triples per batch in these tests (production: 2048)
X = np.arange(1, 7, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)
Y = np.arange(10, 16, dtype=np.uint64) * np.uint64(0xC2B2AE3D27D4EB4F)
ONE = R.from_u64(np.ones(1, dtype=np.uint64))[0]


def run(job, *, n=3, cls=None, cheat=None, honest=Spdz2kOT, batch=B, seed=11, transport="memory"):
    """All parties' Spdz2kOT sources (batch `batch`); party n-1's is `cls` (a cheating
    subclass) and its channel optionally wrapped in Cheat(prefix, peers). Returns (results
    or exceptions, alpha_i per party as drawn, the sources)."""

    async def main():
        ss = await open_sessions(n, scheme="additive", security="malicious", preprocessing="ot", seed=seed,
                                 transport=transport)
        if cheat is not None:  # the cheater's online session and source use this channel
            ss[-1] = dataclasses.replace(ss[-1], channel=Cheat(ss[-1].channel, None, *cheat))
        alphas, srcs = [], []
        for s in ss:
            ctx = s._state.ext["spdz2k"]
            alphas.append(ctx.alpha.copy())
            c = cls if (cls is not None and s.pid == n - 1) else honest
            src = c(s, batch=batch)
            ctx.prep = src.register(s.pid, ctx.alpha)
            srcs.append(src)

        out = await run_parties(ss, job)
        return out, alphas, srcs

    return asyncio.run(main())


def total(alphas):
    a = R.zeros(())
    for x in alphas:
        a = R.add(a, x)
    return a


def rsum(parts):
    out = parts[0]
    for p in parts[1:]:
        out = R.add(out, p)
    return out


def assert_maced(alpha, xs, ms):
    x, m = rsum(xs), rsum(ms)
    assert R.to_ints(m) == R.to_ints(R.mul(x, alpha))
    return x


async def items(s):
    prep = s._state.ext["spdz2k"].prep
    t1 = await prep.triples((5,))
    t2 = await prep.triples((2, 20))  # crosses a batch boundary (B = 16)
    r = await prep.randoms((7,))
    m = await prep.input_masks((3,), 1)
    return t1, t2, r, m


# -- every item reconstructs, MACed under sum alpha_i --------------------------------------
@pytest.mark.parametrize("n", [2, 3])
def test_items_reconstruct_with_valid_macs(n):
    out, alphas, _ = run(items, n=n)
    assert not any(isinstance(o, BaseException) for o in out), out
    alpha = total(alphas)
    assert alpha.any() and all(int(a[1]) == 0 for a in alphas)  # each alpha_i in Z_2^s
    for k in range(2):
        parts = [o[k] for o in out]
        a = assert_maced(alpha, [p[0] for p in parts], [p[1] for p in parts])
        b = assert_maced(alpha, [p[2] for p in parts], [p[3] for p in parts])
        c = assert_maced(alpha, [p[4] for p in parts], [p[5] for p in parts])
        assert R.to_ints(c) == R.to_ints(R.mul(a, b))
        assert len(set(R.to_ints(a))) == a.size // 2  # uniform in Z_2^128: no repeats
        assert any(v >= 1 << 64 for v in R.to_ints(b))  # all 128 bits used
    r = assert_maced(alpha, [o[2][0] for o in out], [o[2][1] for o in out])
    assert len(set(R.to_ints(r))) == 7
    m = assert_maced(alpha, [o[3][0] for o in out], [o[3][1] for o in out])
    assert [o[3][2] is None for o in out] == [p != 1 for p in range(n)]
    assert R.to_ints(out[1][3][2]) == R.to_ints(m)  # the owner knows r
    assert all(not o[3][0].any() for p, o in enumerate(out) if p != 1)  # others hold 0


def test_vole_arithmetic():
    """sum_b 2^b (T0_b + alpha_b x) - sum_b 2^b T0_b = alpha x mod 2^128 (the COPEe identity)."""
    rng = np.random.default_rng(1)
    alpha = R.from_u64(np.array([0xF00DFACECAFEBEEF], dtype=np.uint64))[0]
    x = rng.integers(0, 2**64, (4, 2), dtype=np.uint64)
    T0 = rng.integers(0, 2**64, (64, 4, 2), dtype=np.uint64)
    bits = alpha_bits(alpha)
    q = R.add(T0, np.where(bits[:, None, None].astype(bool), x[None], np.uint64(0)))
    assert R.to_ints(R.sub(weighted(q), weighted(T0))) == R.to_ints(R.mul(x, alpha))


# -- the online phase over this source -------------------------------------------------------
async def online(s):
    x = await spdz2k.input(s, X if s.pid == 0 else None, 0, X.shape)
    y = await spdz2k.input(s, Y if s.pid == 1 else None, 1, Y.shape)
    z = await spdz2k.mul(s, x, y)
    (o,) = await spdz2k.open(s, z + x)
    r = await spdz2k.reveal_to(s, z, 0)
    return o, r


@pytest.mark.parametrize("n", [2, 3])
def test_online_equals_dealer(n):
    out, _, _ = run(online, n=n)
    dealer = run_local(n, online, scheme="additive", security="malicious", seed=3).results
    for (o, r), (do, dr) in zip(out, dealer, strict=True):
        assert np.array_equal(o, do) and np.array_equal(o, X * Y + X)
        assert (r is None) == (dr is None)
    assert np.array_equal(out[0][1], X * Y)


@pytest.mark.parametrize("transport", ["tcp", "mqtt"])
def test_online_over_real_transports(transport):
    """The same items and outputs over encrypted TCP and through the MQTT broker."""
    out, _, _ = run(online, n=3, transport=transport)
    assert all(np.array_equal(o[0], X * Y + X) for o in out), out
    cheat, _, _ = run(triples_job, n=3, cls=BadC, transport=transport)
    assert_caught(cheat, {"sacrifice"}, [0, 1])


def test_run_local_ot_source():
    """run_local(..., security="malicious", preprocessing="ot") attaches Spdz2kOT."""

    async def job(s):
        assert isinstance(s._state.ext["spdz2k"].prep, Spdz2kOT)
        return await online(s)

    res = run_local(2, job, scheme="additive", security="malicious", preprocessing="ot", seed=4).results
    assert np.array_equal(res[0][0], X * Y + X)


# -- exact offline rounds and bytes ----------------------------------------------------------
def triple_bytes(N, peers):
    """Bytes one party sends for one batch of N triples (module docstring)."""
    return peers * (32 * TAU * N + 16 * KOS_EXTRA + 48 + 1024 * (5 * N + 1) + 32 * N + 16 + 128 + 161)


def setup_bytes(peers):
    return peers * ((32 + 128 * 32) + (32 + 64 * 32))  # IKNP and vOLE base OTs


@pytest.mark.parametrize("n", [2, 3])
def test_offline_counts(n):
    async def job(s):
        prep = s._state.ext["spdz2k"].prep
        st, rec = prep.stats, []
        for fetch in (lambda: prep.triples((B,)), lambda: prep.triples((B + 5,)),
                      lambda: prep.randoms((4,)), lambda: prep.input_masks((4,), 0),
                      lambda: prep.randoms((B - 4,)), lambda: prep.input_masks((2, 6), 0)):
            before = st.copy()
            await fetch()
            d = st - before
            rec.append((d.rounds, d.bytes_sent))
        return rec

    out, _, _ = run(job, n=n)
    p = n - 1
    for pid, rec in enumerate(out):
        assert rec[0] == (4 + 15, setup_bytes(p) + triple_bytes(B, p))  # set-up once, one batch
        assert rec[1] == (2 * 15, triple_bytes(B, p) + triple_bytes(5, p))  # 21 = B + 5: two chunks
        # randoms and input masks: pooled, B at a time (plus the check's mask element)
        assert rec[2] == (9, p * (1024 * (B + 1) + 64 + 16 + 161))  # every party a vector
        owner = p * (1024 * (B + 1) + 64 + 16 + 161)
        assert rec[3] == (9, owner if pid == 0 else p * (64 + 161))  # owner 0's vector only
        assert rec[4] == (0, 0) and rec[5] == (0, 0)  # from the pools


# -- cheats ----------------------------------------------------------------------------------
class BadC(Spdz2kOT):
    """Adds 1 to its share of the first triple's c (after the OTs, before the MACs: the MACs
    are then consistent with the wrong c; only the sacrifice can catch it)."""

    def _combine(self, U, P, r, rh):
        a, ah, c, ch = super()._combine(U, P, r, rh)
        c[0] = R.add(c[0], ONE)
        return [a, ah, c, ch]


class ZeroT(Spdz2kOT):
    """Deliberately broken: the sacrifice's t fixed to 0 (sigma = -c^ + a^ b: c is unchecked)."""

    def _sacrifice_t(self, seed, N):
        return np.zeros(N, dtype=np.uint64)


class BadCZeroT(BadC, ZeroT):
    pass


async def triples_job(s):
    return await s._state.ext["spdz2k"].prep.triples((4,))


def assert_caught(out, checks, honest):
    for pid in honest:
        e = out[pid]
        assert isinstance(e, CheatingDetectedError), (pid, e)
        assert error_code(e) == "security.cheating_detected" and e.check in checks, (pid, e.check)
    assert all(isinstance(o, SmpcError) for o in out)  # nobody gets items


@pytest.mark.parametrize("n", [2, 3])
def test_error_in_c_is_caught_by_the_sacrifice(n):
    out, _, srcs = run(triples_job, n=n, cls=BadC)
    assert_caught(out, {"sacrifice"}, range(n - 1))
    for src in srcs[:-1]:  # the MAC key is deleted on abort, online and offline
        assert src.alpha is None and src.online._state.ext["spdz2k"].alpha is None


def test_broken_sacrifice_lets_the_wrong_triple_through():
    """Positive control: with t = 0 at every party the same cheat passes and c != ab."""
    out, alphas, _ = run(triples_job, n=3, cls=BadCZeroT, honest=ZeroT)
    assert not any(isinstance(o, BaseException) for o in out), out
    alpha = total(alphas)
    a = assert_maced(alpha, [o[0] for o in out], [o[1] for o in out])
    b = assert_maced(alpha, [o[2] for o in out], [o[3] for o in out])
    c = assert_maced(alpha, [o[4] for o in out], [o[5] for o in out])
    want = R.mul(a, b)
    assert R.to_ints(c)[0] == (R.to_ints(want)[0] + 1) % (1 << 128)
    assert R.to_ints(c)[1:] == R.to_ints(want)[1:]


def test_zero_t_is_honestly_correct():
    """The broken variant changes nothing without a cheater (so the control isolates t)."""
    out, _, _ = run(triples_job, n=2, honest=ZeroT)
    assert not any(isinstance(o, BaseException) for o in out), out


def bad_vole(bit, element=0):
    class BadVole(Spdz2kOT):
        """A wrong OT correction in the MAC vOLE: u_bit of one element off by one towards
        every holder."""

        def _vole_corrections(self, j, x):
            u, share = super()._vole_corrections(j, x)
            u[bit, element] = R.add(u[bit, element], ONE)
            return u, share

    return BadVole


@pytest.mark.parametrize("n", [2, 3])
def test_wrong_vole_correction_is_caught_by_the_mac_check(n):
    _, alphas, _ = run(lambda s: asyncio.sleep(0), n=n)  # the alpha_i this seed draws
    bit = int(np.flatnonzero(alpha_bits(alphas[0]))[0])  # party 0's alpha has this bit set
    out, _, srcs = run(triples_job, n=n, cls=bad_vole(bit))
    assert_caught(out, {"mac"}, range(n - 1))
    assert all(src.alpha is None for src in srcs)


def test_wrong_vole_correction_where_alpha_bit_is_zero_changes_nothing():
    """The selective failure: u_b is unused by a holder whose alpha bit b is 0, so the items
    stay correct (and the adversary learns that bit only by risking detection 1/2)."""
    _, alphas, _ = run(lambda s: asyncio.sleep(0), n=2)
    bit = int(np.flatnonzero(alpha_bits(alphas[0]) == 0)[0])
    out, alphas, _ = run(items, n=2, cls=bad_vole(bit))
    assert not any(isinstance(o, BaseException) for o in out), out
    alpha = total(alphas)
    parts = [o[0] for o in out]
    a = assert_maced(alpha, [p[0] for p in parts], [p[1] for p in parts])
    b = assert_maced(alpha, [p[2] for p in parts], [p[3] for p in parts])
    c = assert_maced(alpha, [p[4] for p in parts], [p[5] for p in parts])
    assert R.to_ints(c) == R.to_ints(R.mul(a, b))


def bad_opening(what):
    class BadOpening(Spdz2kOT):
        """Opens its share of `what` plus one, consistently (sent and used): only the MAC
        check (or sigma != 0) can tell."""

        def _opening(self, w, x):
            if w != what:
                return x
            x = x.copy()
            x.reshape(-1, 2)[0] = R.add(x.reshape(-1, 2)[0], ONE)
            return x

    return BadOpening


@pytest.mark.parametrize("n", [2, 3])
@pytest.mark.parametrize("what,checks", [("rho", {"mac"}), ("sigma", {"mac"}), ("y", {"mac"})])
def test_tampered_sacrifice_opening_is_caught(n, what, checks):
    """+1 on the cheater's share of rho or sigma, or on its vOLE check value y."""
    out, _, _ = run(triples_job, n=n, cls=bad_opening(what))
    assert_caught(out, checks, range(n - 1))


@pytest.mark.parametrize("prefix", ["kopen", "ksigma"])
def test_tampered_opening_on_the_wire_is_caught(prefix):
    """+1 on the wire (the cheater computes with its true share): the digests differ."""
    out, _, _ = run(triples_job, n=3, cheat=(prefix, None))
    assert_caught(out, {"transcript"}, [0, 1])


def test_tampered_opening_to_one_peer_is_caught():
    """+1 on rho towards party 0 only: parties saw different openings."""
    out, _, _ = run(triples_job, n=3, cheat=("kopen", [0]))
    assert_caught(out, {"mac", "transcript", "reported"}, [0, 1])


def test_tampered_randoms_check_value_is_caught():
    """+1 on the cheater's y (the vOLE consistency check's opening) in randoms, consistently."""

    async def job(s):
        return await s._state.ext["spdz2k"].prep.randoms((3,))

    out, _, _ = run(job, n=3, cls=bad_opening("y"))
    assert_caught(out, {"mac"}, [0, 1])


def test_aborted_source_refuses_further_items():
    async def job(s):
        prep = s._state.ext["spdz2k"].prep
        try:
            await prep.triples((4,))
        except CheatingDetectedError:
            pass
        with pytest.raises(SmpcError):
            await prep.triples((4,))
        with pytest.raises(SmpcError):
            await spdz2k.input(s, X if s.pid == 0 else None, 0, X.shape)
        return "refused"

    out, _, _ = run(job, n=2, cls=BadC)
    assert out[0] == "refused"


def test_bench_mul_over_the_ot_source():
    """`smpc bench --op mul --scheme additive --security malicious --source ot` (in process):
    correct, online counts as over the dealer, the source's own traffic reported offline."""
    from mpc.bench.run import measure

    kw = dict(parties=2, scheme="additive", security="malicious", repeat=1, seed=2)
    rec = measure("mul", 3000, source="ot", **kw)
    dealer = measure("mul", 3000, source="trusted_dealer", **kw)
    assert rec["correct"] and rec["counts_stable"] and rec["source"] == "ot"
    assert (rec["rounds"], rec["bytes_per_party"]) == (dealer["rounds"], dealer["bytes_per_party"])
    # every fetch of 3000 (more than a batch) makes exactly 3000: chunks of 2048 and 952
    assert rec["offline_rounds"] == 2 * 15
    assert rec["offline_bytes_per_party"] == triple_bytes(2048, 1) + triple_bytes(952, 1)


# -- the OT extension's consistency check [KOS15] ---------------------------------------------
class FlipU(Cheat):
    """The cheater as IKNP receiver: flips one bit of row `row` of its first u matrix
    towards party 0 (inconsistent choice bits in one column: the KOS15 attack on s)."""

    def __init__(self, inner, row):
        super().__init__(inner, None, "ot-u", [0])
        self.row = row

    async def send(self, peer, tag, payload):
        if tag.rsplit("/", 1)[-1].startswith("ot-u") and peer == 0 and self.done_tag is None:
            self.done_tag = tag
            payload = payload.copy()
            payload[self.row, 0] ^= np.uint8(1)
        await self.inner.send(peer, tag, payload)


def kos_run(n, s_bit, honest=Spdz2kOT):
    """Flip a u row where party 0's IKNP secret bit towards the cheater is `s_bit`."""
    _, _, srcs = run(triples_job, n=n)  # the same seed: the same base-OT secrets
    row = int(np.flatnonzero(srcs[0].ot._send[n - 1].s_bits == s_bit)[0])

    class Flip(Spdz2kOT):
        def __init__(self, s, **kw):
            super().__init__(dataclasses.replace(s, channel=FlipU(s.channel, row)), **kw)

    return run(triples_job, n=n, cls=Flip, honest=honest)


@pytest.mark.parametrize("n", [2, 3])
def test_inconsistent_ot_receiver_is_caught_by_kos(n):
    out, _, _ = kos_run(n, 1)
    # the attacked sender names the check; a third party sees the wrong products (sacrifice)
    assert_caught(out, {"ot", "sacrifice"}, range(n - 1))
    assert out[0].check == "ot"


class NoKOS(Spdz2kOT):
    """Deliberately broken: the KOS15 check always passes."""

    async def _kos_check(self, seed, ext, choices):
        await super()._kos_check(seed, ext, choices)
        return True


def test_without_kos_the_inconsistent_receiver_reaches_the_sacrifice():
    """Positive control: without the check the attack is seen only as a wrong product (the
    sacrifice), after the receiver could already have learned the sender's s."""
    out, _, _ = kos_run(2, 1, honest=NoKOS)
    assert_caught(out, {"sacrifice"}, [0])


def test_flip_where_s_bit_is_zero_changes_nothing():
    """KOS15's leakage: a flipped column where the sender's s bit is 0 is unused (the
    receiver learns that bit at the risk 1/2 of being caught); the triples stay right."""
    out, alphas, _ = kos_run(2, 0)
    assert not any(isinstance(o, BaseException) for o in out), out
    alpha = total(alphas)
    a = assert_maced(alpha, [o[0] for o in out], [o[1] for o in out])
    b = assert_maced(alpha, [o[2] for o in out], [o[3] for o in out])
    c = assert_maced(alpha, [o[4] for o in out], [o[5] for o in out])
    assert R.to_ints(c) == R.to_ints(R.mul(a, b))


def test_clmul_sum_matches_python():
    from protocols.malicious._gf2_jit import clmul_sum

    rng = np.random.default_rng(5)
    chi = rng.integers(0, 2**64, (9, 2), dtype=np.uint64)
    rows = rng.integers(0, 2**64, (9, 2), dtype=np.uint64)
    out = np.zeros(4, dtype=np.uint64)
    clmul_sum(chi, rows, out)
    want = 0
    for c, r in zip(chi, rows, strict=True):
        a, b = int(c[0]) | int(c[1]) << 64, int(r[0]) | int(r[1]) << 64
        for i in range(128):
            if a >> i & 1:
                want ^= b << i
    assert sum(int(w) << (64 * k) for k, w in enumerate(out)) == want


def test_tcp_processes_over_the_ot_source():
    """run_processes (the bench's --processes) with preprocessing="ot": each process makes
    its own MACed items; the same outputs as in process."""
    from mpc.processes import run_processes

    res = run_processes(2, online, scheme="additive", security="malicious", transport="tcp",
                        preprocessing="ot", seed=3)
    assert np.array_equal(res.results[0][0], X * Y + X) and np.array_equal(res.results[0][1], X * Y)
    assert res.results[1][1] is None


class BadTau(Spdz2kOT):
    """A corrupt OT sender in the products: every correlated-OT correction off by one (the
    receiver's output is then off by its choice bit: a selective failure on its bits)."""

    def _ot_corrections(self, j, t):
        return R.add(t, ONE[None])


@pytest.mark.parametrize("n", [2, 3])
def test_wrong_product_ot_correction_is_caught_by_the_sacrifice(n):
    out, _, _ = run(triples_job, n=n, cls=BadTau)
    assert_caught(out, {"sacrifice"}, range(n - 1))


def bad_c_high(e_bit):
    class BadCHigh(Spdz2kOT):
        """Adds 2^e_bit to its share of the first triple's c."""

        def _combine(self, U, P, r, rh):
            a, ah, c, ch = super()._combine(U, P, r, rh)
            err = np.zeros(2, dtype=np.uint64)
            err[e_bit // 64] = np.uint64(1) << np.uint64(e_bit % 64)
            c[0] = R.add(c[0], err)
            return [a, ah, c, ch]

    return BadCHigh


class LowSigma(Spdz2kOT):
    """Deliberately broken: the sacrifice checks sigma mod 2^k only (no s-bit headroom)."""

    def _sacrifice_ok(self, sigma):
        return not R.lo(sigma).any()


def test_sacrifice_needs_the_headroom():
    """c off by 2^(k-1) (wrong mod 2^k): sigma = t 2^(k-1) + ... is 0 mod 2^k whenever t is
    even, so a mod-2^k check passes about half the runs; the full check never does."""
    seeds = range(20, 28)
    full = [run(triples_job, n=2, cls=bad_c_high(63), seed=sd)[0][0] for sd in seeds]
    low = [run(triples_job, n=2, cls=type("L", (bad_c_high(63), LowSigma), {}), honest=LowSigma, seed=sd)[0][0]
           for sd in seeds]
    assert all(isinstance(e, CheatingDetectedError) and e.check == "sacrifice" for e in full)
    passed = [not isinstance(o, BaseException) for o in low]
    assert 1 <= sum(passed) <= 7, passed  # 8 runs at 1/2 each (these seeds: 4 pass)


def test_online_abort_stops_the_source():
    """A cheat caught in the online phase (a wrong share of d/e in mul) also ends this
    party's source: the shared alpha_i is zeroed, the source drops its key and pool."""

    async def job(s):
        prep = s._state.ext["spdz2k"].prep
        await prep.triples((2,))  # the pool holds B - 2 more
        x = await spdz2k.input(s, X if s.pid == 0 else None, 0, X.shape)
        try:
            await spdz2k.open(s, await spdz2k.mul(s, x, x))
        except CheatingDetectedError:
            pass
        with pytest.raises(SmpcError):
            await prep.triples((2,))
        return prep.alpha is None and prep._pools == {}

    out, _, _ = run(job, n=3, cheat=("sopen", None))
    assert out[:2] == [True, True], out


class BadPoint(Cheat):
    """Sends an invalid curve point as its vOLE base-OT message A."""

    def __init__(self, inner):
        super().__init__(inner, None, "vole-A")

    async def send(self, peer, tag, payload):
        if tag.rsplit("/", 1)[-1].startswith("vole-A"):
            payload = b"\xff" * 32  # not a canonical ed25519 point
        await self.inner.send(peer, tag, payload)


def test_invalid_vole_base_ot_point_is_a_typed_error():
    from network.errors import FrameError

    class Src(Spdz2kOT):
        def __init__(self, s, **kw):
            super().__init__(dataclasses.replace(s, channel=BadPoint(s.channel)), **kw)

    out, _, _ = run(triples_job, n=2, cls=Src)
    assert isinstance(out[0], FrameError) and "invalid A point" in str(out[0]), out  # honest party 0
