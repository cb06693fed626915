"""Differential-privacy noise with malicious security (Shamir, t < n/2; issue 16): the
samplers of protocols.apps.dp on MShares of protocols.malicious [CGHIKLN18].

The distributions, public thresholds and costs are those of protocols.apps.dp (discrete
Laplace as V (1 + M) from L + 2 biased coins, Canonne-Kamath-Steinke NeurIPS 2020 Def. 28;
discrete Gaussian by a cumulative distribution table; coins [U < P] for U uniform in
[0, 2^kappa), Eriguchi-Ichikawa-Kunihiro-Nuida IEEE TDSC 2023). What changes:

- U = sum_i 2^i b_i over kappa random bits from `batch.xor_bits`: parties 0..t each input
  bits from their own CSPRNG, each checked 0/1 under MPC and XORed with checked products.
  Any t + 1 parties include an honest one, whose bits are uniform and independent of the
  others' (they are fixed, shared, before anything is opened), so U is uniform whatever a
  cheater inputs; a non-bit aborts (check "bits"). The sign bit of the Gaussian is one more.
- The coins are `malicious.ltz` on U - P (|U - P| < 2^kappa: width kappa + 1) and the last
  products `malicious.mul`: every step is covered by the verification that precedes any
  output, so a cheater that changes a share of U, a coin or a product is caught
  (security.cheating_detected) on every honest party and no noisy value is released.
- Nobody learns the noise: it is never opened; only x + noise is, by the caller, after the
  verification.

Rounds (n = 3): xor_bits (2 * 4 + 2 + 2 + 19) + ltz (9 at width kappa + 1 = 49, + its masks) + 2 (one product), plus
re-keying (2) where a verification retired the key. Security: malicious with abort, t < n/2.
  [CGHIKLN18] Chida, Genkin, Hamada, Ikarashi, Kikuchi, Lindell, Nof, CRYPTO 2018.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import numpy.typing as npt

from protocols import malicious as mal
from protocols.apps.dp import (
    KAPPA,
    LaplacePlan,
    Noise,
    gaussian_table,
    laplace_thresholds,
    noise_plan,
)
from protocols.errors import ParameterError
from protocols.malicious.batch import concat, refresh_many, xor_bits
from protocols.malicious.chida18 import MShare
from protocols.session import Session


def _weights(s: Session, kappa: int, cols: int) -> np.ndarray:
    D = s.domain
    w = np.array([1 << i for i in range(kappa)], dtype=np.int64).reshape(kappa, 1)
    return D.from_int(np.ascontiguousarray(np.broadcast_to(w, (kappa, cols))))


async def uniform(s: Session, shape: tuple[int, ...], kappa: int = KAPPA) -> MShare:
    """U uniform in [0, 2^kappa) of `shape`, as an MShare: sum_i 2^i b_i over checked random
    bits (`batch.xor_bits`; see the module docstring for why U is uniform under attack).
    Preprocessing and cost: xor_bits on kappa * prod(shape) bits."""
    if not 0 < kappa < 63:
        raise ParameterError(f"dp: kappa must be in [1, 62], got {kappa}")
    shape = tuple(int(d) for d in shape)
    N = int(np.prod(shape, dtype=np.int64))
    B = (await xor_bits(s, kappa * N)).reshape(kappa, N)
    return (B * _weights(s, kappa, N)).sum(axis=0).reshape(shape)


async def discrete_laplace(s: Session, shape: tuple[int, ...], scale: Fraction | npt.ArrayLike, *,
                           kappa: int = KAPPA) -> MShare:
    """MShares of integers X ~ discrete Laplace(scale), as protocols.apps.dp.discrete_laplace
    (same thresholds, same distribution), checked."""
    shape = tuple(shape)
    L, N, thr = laplace_thresholds(shape, scale, kappa)
    U = await uniform(s, (L + 1, N), kappa)
    U_all = concat([U[:1], U[:1], U[1:]])
    B = await mal.ltz(s, U_all - s.domain.from_int(np.ascontiguousarray(thr)), bits=kappa + 1)
    V = B[0] + B[1] - 1
    w = np.array([1 << j for j in range(L)], dtype=np.int64).reshape(L, 1)
    M = (B[2:] * s.domain.from_int(np.ascontiguousarray(np.broadcast_to(w, (L, N))))).sum(axis=0)
    X = await mal.mul(s, V, M + 1)
    return X.reshape(shape)


async def discrete_gaussian(s: Session, shape: tuple[int, ...], sigma2: float | Fraction, *,
                            kappa: int = KAPPA) -> MShare:
    """MShares of integers X ~ discrete Gaussian(sigma2), as
    protocols.apps.dp.discrete_gaussian (same table, same distribution), checked."""
    shape = tuple(shape)
    C = gaussian_table(sigma2, kappa)
    T, N = len(C), int(np.prod(shape, dtype=np.int64))
    U = (await uniform(s, (N,), kappa)).reshape(1, N)
    Ub = U[np.zeros(T, dtype=np.intp)]  # (T, N): one U per sample, T thresholds
    Cb = np.ascontiguousarray(np.broadcast_to(C.reshape(T, 1), (T, N)))
    below = await mal.ltz(s, Ub - s.domain.from_int(Cb), bits=kappa + 1)
    S = await xor_bits(s, N)
    mag = (-below.sum(axis=0)) + T
    S, mag = await refresh_many(s, S, mag)
    sm = await mal.mul(s, S, mag)
    return (mag - sm - sm).reshape(shape)


async def add_noise(s: Session, x: MShare, noise: Noise | list[Noise], *,
                    kappa: int = KAPPA) -> MShare:
    """x + fresh joint noise on every entry, as protocols.apps.dp.add_noise, on MShares;
    returns an MShare under the current key (x is re-keyed if a verification retired its
    key)."""
    flat = x.reshape(-1)
    plan = noise_plan(flat.shape[0], noise)
    if plan is None:
        return x
    if isinstance(plan, LaplacePlan):
        z = await discrete_laplace(s, flat.shape, plan.scale, kappa=kappa)
        flat, z = await refresh_many(s, flat, z)
        return (flat + z).reshape(x.shape)
    zs = [await discrete_gaussian(s, (len(idx),), Fraction(sigma) ** 2, kappa=kappa)
          for sigma, idx in plan]
    got = await refresh_many(s, flat, *zs)
    back = np.argsort(np.concatenate([idx for _, idx in plan]))  # sigma order -> entry order
    return (got[0] + concat(got[1:])[back]).reshape(x.shape)


__all__ = ["add_noise", "discrete_gaussian", "discrete_laplace", "uniform"]
