"""Batched helpers for long malicious-Shamir computations (the trainers, the fraud jobs):
public constants and concatenation of MShares, re-keying many MShares in one reduction, and
the masks of many truncations and comparisons prepared under one verification.

Everything is protocols.malicious.chida18's compiler [CGHIKLN18, sec. 3] (K. Chida, D.
Genkin, K. Hamada, D. Ikarashi, R. Kikuchi, Y. Lindell, A. Nof, "Fast Large-Scale
Honest-Majority MPC for Malicious Adversaries", CRYPTO 2018) on the existing steps
(`input`, `mul`, `verify_into_next_key`, `refresh`), run once for many uses; `xor_bits` makes
random bits from the parties' own bits with a sum-check of their validity (Corrigan-Gibbs
and Boneh, "Prio", NSDI 2017, sec. 4) and `agree_ints` is an echo-checked broadcast (Bracha).

Why `prepare_batch`: `fixed.prepare_trunc` and `compare.prepare_compare` each run a
verification, which retires the MAC key, so masks prepared by an earlier call (and every
MShare made before) need a re-keying product before use. `prepare_batch` draws every bit
of every requested kind in one `xor_bits` call (checked and verified random bits from the
first t + 1 parties' inputs) and MACs every row the online phase uses under the next key in
one `verify_into_next_key`: every mask is under the live key afterwards. The soundness
argument is that of `prepare_trunc` / `prepare_compare` (the bits pass a full verification
before any value masked by them is opened; the MACed rows are checked at the verification
that retires the next key).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping, Sequence

import numpy as np

from network.errors import SmpcError
from protocols.arith.domain import Domain
from protocols.comparison.field import _pow2_sum
from protocols.errors import ParameterError, ShapeMismatch
from protocols.malicious import compare as mcmp
from protocols.malicious import fixed as mfix
from protocols.malicious.chida18 import (
    MShare,
    _check,
    _fail,
    _key,
    _rb,
    _record,
    _reduce,
    compress_pending,
    masks_made,
    mul,
)
from protocols.session import Session, Share
from protocols.truncation import KAPPA


async def const(s: Session, value: int | np.ndarray, shape: tuple[int, ...]) -> MShare:
    """A public integer (array) as an MShare under the current key (no communication):
    [x] = value at every party (a degree-0 sharing), [r*x] = value * [r]."""
    key = await _key(s)
    D = s.domain
    z = MShare(Share(D.zeros(shape), s), Share(D.zeros(shape), s), key)
    return z + np.broadcast_to(np.asarray(value, dtype=np.int64), shape)


def concat(xs: Sequence[MShare], axis: int = 0) -> MShare:
    """Concatenate MShares of one key along `axis` (local)."""
    if not xs:
        raise ShapeMismatch("concat needs at least one MShare")
    key, s = xs[0].key, xs[0].x._s
    for x in xs:
        xs[0]._same(x)
    return MShare(Share(np.concatenate([x.x.data for x in xs], axis=axis), s),
                  Share(np.concatenate([x.rx.data for x in xs], axis=axis), s), key)


def stack(xs: Sequence[MShare], axis: int = 0) -> MShare:
    """Stack MShares of one key along a new `axis` (local)."""
    if not xs:
        raise ShapeMismatch("stack needs at least one MShare")
    s = xs[0].x._s
    for x in xs:
        xs[0]._same(x)
    return MShare(Share(np.stack([x.x.data for x in xs], axis=axis), s),
                  Share(np.stack([x.rx.data for x in xs], axis=axis), s), xs[0].key)


def bcast(x: MShare, shape: tuple[int, ...]) -> MShare:
    """x broadcast to `shape` (local; contiguous copies)."""
    s = x.x._s
    return MShare(Share(np.ascontiguousarray(np.broadcast_to(x.x.data, shape)), s),
                  Share(np.ascontiguousarray(np.broadcast_to(x.rx.data, shape)), s), x.key)


async def refresh_many(s: Session, *xs: MShare) -> list[MShare]:
    """Every x under the current key, the stale ones re-keyed by one DN07 reduction of
    their concatenation (as `chida18.refresh`, checked like an input).
    Rounds: 2 if any is stale, else 0.   Bytes: one `_reduce` of the stale elements."""
    _check(s, *xs)
    key = await _key(s)
    stale = [i for i, x in enumerate(xs) if x.key is not key]
    out = list(xs)
    if not stale:
        return out
    F = s.domain
    flat = np.concatenate([xs[i].x.data.reshape(-1) for i in stale])
    rt, r2t = await s.prep.double_randoms(flat.shape)
    rx, tag = await _reduce(s, F.mul(_rb(key, flat.shape), np.ascontiguousarray(flat)), rt, r2t)
    _record(s, key, tag, flat, rx, value=False)  # refused (blaming nobody) if a verification retired `key`
    k = 0
    for i in stale:
        x = xs[i]
        out[i] = MShare(x.x, Share(rx[k : k + x.size].reshape(x.shape), s), key)
        k += x.size
    return out


async def clip_many(s: Session, items: Sequence[tuple[MShare, int | np.ndarray, int | np.ndarray]],
                    *, bits: int | None = None) -> list[MShare]:
    """Every x of `items` (x, lo, hi) clipped to [lo, hi] (public integers or integer arrays
    broadcast to x, lo <= hi), in one batch: two malicious comparisons per element
    (`compare.ltz` on x - lo and hi - x, one call for every item [CdH10]) and the selects
    x + [x < lo](lo - x) + [x > hi](hi - x) (one checked product of the stacked bits and
    differences; at most one bit is 1). Exact.
    Range: |x - lo| and |hi - x| < 2^(l-1) (`compare.ltz`'s range: l = `bits`, default 64 on
    GF(2^127 - 1); a narrower l for x proven in a smaller range is a shorter comparison).
    Rounds: ltz 9 + 2 (+15 + 2 if no comparison masks are prepared; +2 to re-key stale x).
    Preprocessing: 2 ltz masks per element (`prepare_batch(..., ltz=2 * elements)`, or
    `ltz_bits={bits: 2 * elements}`)."""
    if not items:
        return []
    xs = await refresh_many(s, *[x for x, _, _ in items])
    D = s.domain
    los, his = [], []
    for x, lo, hi in items:
        lo_a = np.broadcast_to(np.asarray(lo, dtype=object), x.shape).reshape(-1)
        hi_a = np.broadcast_to(np.asarray(hi, dtype=object), x.shape).reshape(-1)
        if any(a > b for a, b in zip(lo_a, hi_a, strict=True)):
            raise ParameterError("clip_many: a lower bound exceeds its upper bound")
        los.append(lo_a)
        his.append(hi_a)
    LO = D.from_int(np.concatenate(los))
    HI = D.from_int(np.concatenate(his))
    flat = concat([x.reshape(x.size) for x in xs])
    below = await mcmp.ltz(s, stack([flat - LO, (-flat) + HI]), bits=bits)  # [x < lo], [hi < x]
    flat, below = await refresh_many(s, flat, below)
    adj = await mul(s, below, stack([(-flat) + LO, (-flat) + HI]))
    out = flat + adj[0] + adj[1]
    res, k = [], 0
    for x in xs:
        res.append(out[k : k + x.size].reshape(*x.shape))
        k += x.size
    return res


async def prepare_batch(s: Session, truncs: Mapping[int, int], ltz: int = 0, *, kappa: int = KAPPA,
                        ltz_bits: Mapping[int, int] | None = None) -> None:
    """Masks for `truncs[f]` future truncations by 2^f (each f), `ltz` future ltz / lt
    comparisons at the default width and `ltz_bits[l]` at width l (`compare.ltz(...,
    bits=l)`: values proven below 2^(l-1); l - 1 + kappa + 1 bits per mask instead of 64 +
    kappa, and fewer products online), all under one verification (module docstring); they
    join the pools `fixed.trunc` and `compare.ltz` take from.

    Rounds: `random_bits` 5 + 2 (MACs under the next key) + verify 3 + 1 (`compress_pending`:
    the pairs under the next key folded into one, offline) = 11, + 4 with ltz masks (their
    block products: `compare._block_products`).
    Bytes: those of `random_bits` on sum_f (l + kappa) * truncs[f] + (l + kappa) * ltz
    bits, one `_reduce` of the MACed rows, the verification's, and the block products'.
    Raises: ParameterError (counts, f out of range), CheatingDetectedError."""
    plan: list[tuple[str, int, int, int]] = []  # (kind, f or ell, count, bits per element)
    for f, count in sorted(truncs.items()):
        if int(count) < 0:
            raise ParameterError(f"prepare_batch: negative count {count} for f={f}")
        if count:
            plan.append(("trunc", int(f), int(count), mfix._mask_params(s, int(f), kappa) + kappa))
    widths: dict[int | None, int] = {None: int(ltz)}
    for b, cnt in sorted((ltz_bits or {}).items()):
        widths[int(b)] = widths.get(int(b), 0) + int(cnt)
    for width, cnt in widths.items():
        if cnt < 0:
            raise ParameterError(f"prepare_batch: negative ltz count {cnt} (bits {width})")
        ell, w = mcmp._width(s, "ltz", kappa, width)
        if cnt:
            plan.append(("ltz", ell, cnt, w + kappa + 1))
    if not plan:
        return
    t0, c0, before = time.perf_counter(), time.process_time(), s.stats.copy()
    await _prepare(s, plan, kappa)
    d = s.stats - before  # the offline share of a job's cost (smpc bench reports it so)
    acc = s._state.ext.setdefault(OFFLINE, [0.0, 0, 0, 0.0])
    acc[0] += time.perf_counter() - t0
    acc[1] += d.rounds
    acc[2] += d.bytes_sent
    acc[3] += time.process_time() - c0


#: Session._state.ext key: [seconds, rounds, bytes sent, process CPU seconds] spent in
#: prepare_batch (offline work; the CPU is the process's, exact when a party has its own)
OFFLINE = "malicious-offline"
#: random bits per xor_bits call in prepare_batch (about 1 GB of temporaries per party)
BITS_CHUNK = 1 << 20


async def _prepare(s: Session, plan: list[tuple[str, int, int, int]], kappa: int) -> None:
    D = s.domain
    total = sum(c * nb for _, _, c, nb in plan)
    # in chunks: each xor_bits verifies its own products, so memory stays bounded (one
    # 10^7-bit batch took 9 GB per party)
    chunks = [min(BITS_CHUNK, total - k) for k in range(0, total, BITS_CHUNK)]
    bits = np.concatenate([(await xor_bits(s, m)).x.data for m in chunks]) if len(chunks) > 1 \
        else (await xor_bits(s, total)).x.data
    vals: list[np.ndarray] = []
    bits_rows: list[np.ndarray] = []  # the ltz masks' R
    parts: list[tuple[str, int, int, np.ndarray, np.ndarray]] = []  # kind, f/ell, count, b, extra
    k = 0
    for kind, par, count, nb in plan:
        b = bits[k : k + count * nb].reshape(nb, count)
        k += count * nb
        if kind == "trunc":
            hi = _hi_sum(D, b, par)
            vals.append(hi.reshape(-1))
            parts.append((kind, par, count, b, hi))
        else:
            w = par - 1  # ltz at width l = par: w = l - 1 mask bits R
            rows = mcmp._mac_rows("ltz", w)
            R = np.ascontiguousarray(b[:w])
            bits_rows.append(R)
            rlow = _pow2_sum(D, R)
            vals.append(R[rows].reshape(-1))
            vals.append(rlow.reshape(-1))
            parts.append((kind, par, count, b, rlow))
    macs, key = await mfix.verify_into_next_key(s, np.concatenate(vals))
    pairs: list[tuple[np.ndarray, np.ndarray]] = []  # the ltz masks' block products (P, Pm)
    k = 0
    for kind, par, count, _, _ in parts:
        if kind == "trunc":
            k += count
            continue
        rows = mcmp._mac_rows("ltz", par - 1)
        Rm = macs[k : k + rows.size * count].reshape(rows.size, count)
        k += (rows.size + 1) * count
        R = np.ascontiguousarray(bits_rows[len(pairs)])
        pairs.append(await mcmp._block_products(s, key, R, Rm))
    k = 0
    for kind, par, count, b, extra in parts:
        if kind == "trunc":
            r = _hi_sum(D, b, 0)
            m = macs[k : k + count]
            k += count
            hi_m = MShare(Share(extra, s), Share(m, s), key)
            mfix._pool(s).setdefault((par, kappa), []).append(mfix._Masks(r.reshape(-1), hi_m))
        else:
            w = par - 1
            rows = mcmp._mac_rows("ltz", w)
            R = np.ascontiguousarray(b[:w])
            Rm = macs[k : k + rows.size * count].reshape(rows.size, count)
            k += rows.size * count
            rlow_m = macs[k : k + count]
            k += count
            rr = _pow2_sum(D, b[w:])
            P, Pm = pairs.pop(0)
            mcmp._pool(s).setdefault(("ltz", par, kappa), []).append(
                mcmp._Masks(R, np.ascontiguousarray(Rm), extra, rlow_m, rr, key, P, Pm))
    await compress_pending(s)  # the MACs' and block products' share of the next verification
    masks_made(s)


async def agree_ints(s: Session, mine: np.ndarray) -> np.ndarray:
    """Broadcast this party's small public int64 vector (e.g. its input's shape) so that
    every honest party holds the same table, or all abort: every party sends its vector
    (1 round), then the BLAKE2b digest of the whole table it received (1 round, an echo
    check in the style of Bracha's consistent broadcast); any difference raises
    CheatingDetectedError (check "input") naming the party that disagreed.
    Shapes: mine (k,) int64, the same k at every party; returns (n, k).
    Rounds: 2.   Bytes: (n - 1) * (8k + 32) per party.
    Raises: CheatingDetectedError."""
    mine = np.ascontiguousarray(mine, dtype=np.int64).reshape(-1)
    got = await _raw_round(s, s.tag("agree"), mine)
    got[s.pid] = mine
    table = np.stack([got[j] for j in range(s.n)])
    dg = np.frombuffer(hashlib.blake2b(table.tobytes(), digest_size=32, person=b"smpc-mal-agree").digest(),
                       dtype=np.uint8)
    echo = await _raw_round(s, s.tag("agree-echo"), dg)
    for j in s.peers:
        if not np.array_equal(echo[j], dg):
            await _fail(s, "input", f"party {s.pid}: party {j} received different public input sizes")
    return table


async def zero_check(s: Session, T: MShare, what: str) -> bool:
    """Whether every element of T is 0, revealing nothing else (`zero_check_each` on one
    array). Rounds: coin 2 + 5, rho 2, product 2, open 5 (+3 for its verification)."""
    return (await zero_check_each(s, [T], what))[0]


async def zero_check_each(s: Session, Ts: Sequence[MShare], what: str) -> list[bool]:
    """For each T in Ts whether every element of it is 0, revealing nothing else (the
    sum-check of Corrigan-Gibbs and Boneh, "Prio", NSDI 2017, sec. 4), all in one batch: a
    coin opened after verifying everything so far (malicious.open), gamma = PRG(coin),
    v_i = rho_i * sum_k gamma_k T_ik with fresh random MShares rho_i, the v_i opened
    together. A non-zero T_i gives v_i = 0 with probability <= 2/p; each v_i is uniform
    unless 0. (One T per input owner names the owner whose input failed.)
    Rounds: coin 2 + 5, rho 2, product 2, open 5 (+3 for its verification), for any len(Ts).
    Bytes: those of zero_check with len(Ts) elements for rho, the product and the opening."""
    from protocols.malicious.chida18 import mul, open
    from protocols.prg import CryptoRNG

    D, k = s.domain, len(Ts)
    coin = await mfix.random(s, (1,))
    (c,) = await open(s, coin)
    rng = CryptoRNG.from_seed(bytes(np.ascontiguousarray(D.to_wire(c)).tobytes()), "mal-zero-check",
                              what.encode())
    vs = [(T.reshape(T.size) * D.random(rng, (T.size,))).sum().reshape(1) for T in Ts]
    v = vs[0] if k == 1 else concat(vs)
    rho = await mfix.random(s, (k,))
    rho, v = await refresh_many(s, rho, v)
    (out,) = await open(s, await mul(s, rho, v))
    return [bool(o == 0) for o in D.to_int(out)]


async def xor_bits(s: Session, M: int) -> MShare:
    """M uniform random bits as an MShare: parties 0..t each input M bits from their own
    CSPRNG (malicious.input: a consistent sharing), every input checked to be 0/1 (T = b (b -
    1) by checked products, `zero_check`), and the t + 1 inputs XORed (x + y - 2xy, checked
    products). At least one of any t + 1 parties is honest and inputs before seeing anything
    of the others' bits (they are shared), so the XOR is uniform; a non-bit input aborts
    (CheatingDetectedError, check "bits"). The bits are verified (zero_check's openings
    verify every input and product) before this returns.
    Cost per bit (n = 3): 2 inputs and 2 + 1 checked products, against fixed.random_bits' 2
    products, one opening and a 125-squaring square root on GF(2^127 - 1) (the reason for
    this variant: about 6x less computation).
    Rounds: (t + 1) * 4 (inputs) + 2 (bit check) + 2t (XOR) + zero_check's 19."""
    from protocols.malicious.chida18 import input_unchecked as minput
    from protocols.malicious.chida18 import mul

    D, t = s.domain, (s.n - 1) // 2
    mine = D.from_int((s.rng.uint64((M,)) & np.uint64(1)).astype(np.int64))
    got = [await minput(s, mine if o == s.pid else None, o, (M,)) for o in range(t + 1)]
    B = stack(got)
    sq = await mul(s, B, B - 1)
    acc = got[0]
    for g in got[1:]:
        acc = acc + g - (await mul(s, acc, g)) * 2
    if not await zero_check(s, sq, "bits"):
        await _fail(s, "bits", f"party {s.pid}: a party's random-bit input is not 0/1")
    return acc


async def _raw_round(s: Session, tag: str, arr: np.ndarray) -> dict[int, np.ndarray]:
    """One round: arr (int64 or uint8, the same shape at every party) to and from every peer."""
    try:
        for j in s.peers:
            await s.channel.send(j, tag, arr)
        got = {j: await s.channel.recv_array(j, tag, dtype=arr.dtype, shape=arr.shape) for j in s.peers}
    except SmpcError as e:
        await s.abort(e)
        raise
    s.stats.rounds += 1
    return got


def _hi_sum(D: Domain, b: np.ndarray, lo: int) -> np.ndarray:
    """sum_{j >= lo} 2^(j - lo) b[j] (Horner: additions only; any number of rows)."""
    acc = b[-1].copy()
    for j in range(b.shape[0] - 2, lo - 1, -1):
        acc = D.add(D.add(acc, acc), b[j])
    return acc


__all__ = ["agree_ints", "bcast", "xor_bits", "zero_check", "zero_check_each", "concat", "const", "prepare_batch", "refresh_many", "stack"]
