"""The backend seam of the malicious trainers: one name per operation the trainers
(protocols.apps.ml.malicious) and the fixed-point functions (protocols.malicious.nonlinear)
call, routed by the session's scheme to

- Shamir with an honest majority (chida18 / fixed / compare / batch: Chida et al., CRYPTO
  2018), the default, or
- additive sharing over Z_2^64 with a dishonest majority (SPDZ2k, Cramer et al., CRYPTO
  2018: spdz2k / spdz2k_fixed / spdz2k_matmul / spdz2k_ml).

Each function is the named one of the chosen backend, with its own docstring's rounds,
bytes and security; this module adds no protocol of its own. Shamir calls behave exactly as
before (the same functions, called with the same arguments).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from protocols.malicious import batch, chida18, compare, fixed, spdz2k, spdz2k_matmul, spdz2k_ml
from protocols.malicious import spdz2k_fixed as sf
from protocols.malicious.chida18 import InputRangeCheatingError, range_bits
from protocols.malicious.spdz2k import AShare
from protocols.session import Session

__all__ = [
    "InputRangeCheatingError", "agree_ints", "bcast", "clip_many", "concat", "const", "input_many",
    "is_spdz2k", "ltz", "matmul", "mul", "open", "prepare_batch", "prepared_trunc", "range_bits",
    "refresh_many", "relu", "reveal_to", "select", "stack", "trunc",
]


def is_spdz2k(s: Session) -> bool:
    """Whether the session runs SPDZ2k (additive sharing) rather than malicious Shamir."""
    return bool(s.scheme.kind == "additive")


async def input_many(s: Session, x: np.ndarray | None, shapes: dict[int, tuple[int, ...]], *,
                     bits: int | None = None, signed: bool = True) -> dict[int, Any]:
    if is_spdz2k(s):
        return await spdz2k_ml.input_many(s, x, shapes, bits=bits, signed=signed)
    return dict(await chida18.input_many(s, x, shapes, bits=bits, signed=signed))


async def mul(s: Session, x: Any, y: Any) -> Any:
    return await (spdz2k.mul(s, x, y) if is_spdz2k(s) else chida18.mul(s, x, y))


async def matmul(s: Session, x: Any, y: Any) -> Any:
    return await (spdz2k_matmul.matmul(s, x, y) if is_spdz2k(s) else chida18.matmul(s, x, y))


async def trunc(s: Session, x: Any, f: int) -> Any:
    return await (sf.trunc(s, x, f) if is_spdz2k(s) else fixed.trunc(s, x, f))


async def ltz(s: Session, x: Any, *, bits: int | None = None) -> Any:
    """[x < 0]; `bits`: a proved bound |x| < 2^(bits - 1), a shorter comparison (SPDZ2k's
    spdz2k_ml.ltz_bits, Shamir's compare.ltz(bits=))."""
    if is_spdz2k(s):
        return await (sf.ltz(s, x) if bits is None else spdz2k_ml.ltz_bits(s, x, bits))
    return await compare.ltz(s, x, bits=bits)


async def select(s: Session, b: Any, x: Any, y: Any) -> Any:
    return await (spdz2k_ml.select(s, b, x, y) if is_spdz2k(s) else compare.select(s, b, x, y))


async def relu(s: Session, x: Any) -> Any:
    return await (spdz2k_ml.relu(s, x) if is_spdz2k(s) else compare.relu(s, x))


async def open(s: Session, *xs: Any) -> list[np.ndarray]:  # noqa: A001
    return await (spdz2k.open(s, *xs) if is_spdz2k(s) else chida18.open(s, *xs))


async def reveal_to(s: Session, x: Any, party: int) -> np.ndarray | None:
    return await (spdz2k.reveal_to(s, x, party) if is_spdz2k(s) else chida18.reveal_to(s, x, party))


async def refresh_many(s: Session, *xs: Any) -> list[Any]:
    return await (spdz2k_ml.refresh_many(s, *xs) if is_spdz2k(s) else batch.refresh_many(s, *xs))


async def const(s: Session, value: int | np.ndarray, shape: tuple[int, ...]) -> Any:
    return await (spdz2k_ml.const(s, value, shape) if is_spdz2k(s) else batch.const(s, value, shape))


async def clip_many(s: Session, items: Sequence[tuple[Any, int | np.ndarray, int | np.ndarray]], *,
                    bits: int | None = None) -> list[Any]:
    """`bits`: a proved bound |x - lo|, |hi - x| < 2^(bits - 1): both backends then compare
    on that many bits (spdz2k_ml.ltz_bits; compare.ltz(bits=) with masks of that width)."""
    if is_spdz2k(s):
        return await spdz2k_ml.clip_many(s, items, bits=bits)
    return await batch.clip_many(s, items, bits=bits)


async def prepare_batch(s: Session, truncs: Mapping[int, int], ltz: int = 0, *,
                        ltz_bits: Mapping[int, int] | None = None) -> None:
    """`ltz_bits` {width: count}: comparisons of a proved shorter width (Shamir prepares masks
    of that width; SPDZ2k's comparison masks serve every width, so they count with `ltz`)."""
    if is_spdz2k(s):
        await spdz2k_ml.prepare_batch(s, truncs, ltz + sum((ltz_bits or {}).values()))
    else:
        await batch.prepare_batch(s, truncs, ltz, ltz_bits=ltz_bits)


async def agree_ints(s: Session, mine: np.ndarray) -> np.ndarray:
    return await (spdz2k_ml.agree_ints(s, mine) if is_spdz2k(s) else batch.agree_ints(s, mine))


def prepared_trunc(s: Session, f: int) -> int:
    """Prepared truncation masks usable for f (SPDZ2k's serve any f)."""
    return sf.prepared(s, "trunc") if is_spdz2k(s) else fixed.prepared(s, f)


# local array plumbing: routed by the operands' type (no session)
def concat(xs: Sequence[Any], axis: int = 0) -> Any:
    return spdz2k_ml.concat(xs, axis) if isinstance(xs[0], AShare) else batch.concat(xs, axis)


def stack(xs: Sequence[Any], axis: int = 0) -> Any:
    return spdz2k_ml.stack(xs, axis) if isinstance(xs[0], AShare) else batch.stack(xs, axis)


def bcast(x: Any, shape: tuple[int, ...]) -> Any:
    return spdz2k_ml.bcast(x, shape) if isinstance(x, AShare) else batch.bcast(x, shape)
