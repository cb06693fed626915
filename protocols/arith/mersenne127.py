"""GF(2^127 - 1) on two uint64 limbs (see protocols.arith.field)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from types import ModuleType

import numpy as np

from protocols.arith._fieldops import (
    _M32,
    _S3,
    _S32,
    _U64,
    M127,
    _add,
    _as_shape,
    _broadcast_operands,
    _finish,
    _matmul_finish,
    _matmul_prepare,
    _prod,
    _Scratch,
    _sub,
    _sum_axes,
    _u,
    _VectorInv,
    _wire_in,
)
from protocols.arith._m127_numpy import (
    _ADD_BLOCK,
    _M63,
    _M64,
    DT127,
    _add_product,
    _canonical,
    _limbs26,
    _lincomb_terms,
    _mul127_block,
    _reduce_cols127,
    _sub_limbs,
)
from protocols.arith.domain import PrimeField, Shape, check_same_shape
from protocols.errors import DomainError, ShapeMismatch
from protocols.prg import CryptoRNG

_A = np.ndarray
_Term = tuple[int, tuple[int, bool] | None, np.ndarray, int]

#: the compiled kernels (protocols.arith._m127_jit), False for the numpy code, None before the
#: first use: importing numba costs about 0.3 s, so it happens on the first hot operation, not
#: when the package is imported
_JIT_KERNELS: ModuleType | bool | None = None


def _jit_kernels() -> ModuleType | None:
    """The kernel module, or None when SMPC_NO_JIT is set (other than "" or "0") or numba
    cannot be imported. Decided once per process."""
    global _JIT_KERNELS
    if _JIT_KERNELS is None:
        _JIT_KERNELS = False
        if os.environ.get("SMPC_NO_JIT", "").strip() in ("", "0"):
            try:
                from protocols.arith import _m127_jit
            except ImportError:
                pass
            else:
                _JIT_KERNELS = _m127_jit
                _m127_jit.tune_malloc()
    return _JIT_KERNELS if isinstance(_JIT_KERNELS, ModuleType) else None


def _words(a: np.ndarray) -> np.ndarray:
    """The flat uint64 words (lo, hi, lo, hi, ...) of a DT127 array (a copy if it is not
    C-contiguous)."""
    return np.ascontiguousarray(a).reshape(-1).view(_U64)


def _words_u64(w: np.ndarray) -> np.ndarray:
    """A flat C-contiguous uint64 array (a copy if w is not contiguous)."""
    return np.ascontiguousarray(w).reshape(-1)


def _unalias(w: np.ndarray, ow: np.ndarray) -> np.ndarray:
    """w, or a copy of it when it overlaps the output words ow other than as the very same
    words (the kernels read element i of every input before writing element i of the
    output, so only exact aliasing is safe)."""
    if np.may_share_memory(w, ow) and (
        w.size != ow.size or w.__array_interface__["data"][0] != ow.__array_interface__["data"][0]
    ):
        return w.copy()
    return w


class Mersenne127(_VectorInv, PrimeField):
    """GF(p) for the Mersenne prime p = 2^127 - 1.

    Representation: a numpy structured dtype `[('lo', '<u8'), ('hi', '<u8')]` (value
    lo + hi*2^64, canonical in [0, p), so hi < 2^63), so the array's shape is the secret's
    shape. Wire format: uint64 array of shape (*shape, 2) holding (lo, hi) pairs (16 bytes per
    element); `from_wire` rejects values >= p.

    Costs: `mul` splits each operand into five 26-bit limbs, forms the 25 limb products
    (< 2^52) and folds the ones of weight >= 2^130 with 2^130 = 8 (Mersenne reduction), then
    propagates carries; about 110 vectorised passes on blocks of 2^14 elements, measured about
    6x the time of Mersenne61.mul (30 ns against 5 ns per element). `add`/`sub` are a two-limb subtraction with borrow and a
    conditional + p (9-11 passes), `neg` a complement; `lincomb` turns coefficients +-2^k
    into rotations; `muladd` (Beaver's c + d*b + e*(a + d)) reduces once for all pairs. `matmul` uses the same limbs with numpy uint64 matmuls of the 25 limb pairs
    (inner dimension chunked by 64 so column sums stay below 2^64; (10^4 x 100) @ (100 x 10)
    in about 0.23 s, against 0.04 s for Mersenne61). `sum` goes through Python
    integers (not a hot path). `inv`/`batch_inv`: vectorised product tree.
    """

    name = "GF(2^127-1)"
    modulus = M127
    bits = 127
    dtype = DT127
    elem_bytes = 16

    #: elements per block in mul (measured 2^12: 39 ms, 2^14: 30 ms, 2^16: 28 ms per 10^6)
    block = 1 << 14
    matmul_chunk = 64
    #: compiled kernels: None = when numba is importable and SMPC_NO_JIT is unset, True =
    #: always (ImportError without numba), False = never (the numpy code)
    use_jit: bool | None = None

    def __init__(self) -> None:
        self._scratch = _Scratch()

    def _kernels(self) -> ModuleType | None:
        """The compiled kernel module, or None for the numpy code."""
        if self.use_jit is None:
            return _jit_kernels()
        if self.use_jit:
            from protocols.arith import _m127_jit

            return _m127_jit
        return None

    # -- helpers -----------------------------------------------------------------------
    @staticmethod
    def _pack(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        out = np.empty(lo.shape, dtype=DT127)
        out["lo"] = lo
        out["hi"] = hi
        return out

    def check_dtype(self, x: object) -> None:
        if not isinstance(x, np.ndarray) or x.dtype != self.dtype:
            got = x.dtype if isinstance(x, np.ndarray) else type(x).__name__
            raise DomainError(f"{self.name}: expected an array of dtype {self.dtype}, got {got}")

    # -- construction ------------------------------------------------------------------
    def zeros(self, shape: Shape) -> np.ndarray:
        return np.zeros(shape, dtype=DT127)

    def from_int(self, values: int | np.ndarray | Sequence[int]) -> np.ndarray:
        p = self.modulus
        if isinstance(values, np.ndarray):
            kind = values.dtype.kind
            if kind in "bu":
                v = values.astype(_U64)
                return self._pack(v, np.zeros_like(v))
            if kind == "i":
                v = values.astype(np.int64)
                neg = v < 0
                lo = np.asarray(v.view(_U64) - neg.astype(_U64))  # p + v = (2^63-1)*2^64 + (2^64-1+v)
                hi = np.asarray(np.where(neg, _M63, _u(0)), dtype=_U64)
                return self._pack(lo, hi)
            if values.dtype == object:
                ints = [int(v) % p for v in values.reshape(-1)]
                lo = np.array([v & 0xFFFFFFFFFFFFFFFF for v in ints], dtype=_U64)
                hi = np.array([v >> 64 for v in ints], dtype=_U64)
                return self._pack(lo.reshape(values.shape), hi.reshape(values.shape))
            raise DomainError(f"{self.name}: cannot read integers from dtype {values.dtype}")
        if isinstance(values, int | np.integer):
            return self.from_int(np.array(int(values), dtype=object))
        return self.from_int(np.array(values, dtype=object))

    def to_int(self, x: np.ndarray) -> np.ndarray:
        self.check(x)
        lo = x["lo"].reshape(-1).astype(object)
        hi = x["hi"].reshape(-1).astype(object)
        return (lo + (hi << 64)).reshape(x.shape)

    def random(self, rng: CryptoRNG, shape: Shape) -> np.ndarray:
        """Uniform on [0, 2^127) by masking 128 random bits, redrawing the (2^-127 likely)
        value p: exactly uniform on [0, p)."""
        shape = _as_shape(shape)
        w = rng.uint64(shape + (2,))
        w[..., 1] &= _M63
        flat = w.reshape(-1, 2)
        bad = np.flatnonzero((flat[:, 1] == _M63) & (flat[:, 0] == _M64))
        while bad.size:
            fresh = rng.uint64((bad.size, 2))
            fresh[:, 1] &= _M63
            flat[bad] = fresh
            bad = bad[(fresh[:, 1] == _M63) & (fresh[:, 0] == _M64)]
        return w.view(DT127).reshape(shape)  # (lo, hi) words are DT127's layout: no copy

    def check(self, x: np.ndarray) -> np.ndarray:
        super().check(x)
        k = self._kernels()
        if k is not None and x.flags.c_contiguous:
            if k.count_noncanonical(x.reshape(-1).view(_U64), x.size):
                raise DomainError(f"{self.name}: non-canonical element (>= p)")
            return x
        if x.size and not _canonical(x["lo"], x["hi"]):
            raise DomainError(f"{self.name}: non-canonical element (>= p)")
        return x

    def _has_zero(self, x: np.ndarray) -> bool:
        return bool(x.size) and bool(((x["lo"] == 0) & (x["hi"] == 0)).any())

    # -- arithmetic --------------------------------------------------------------------
    def mul(self, x: _A, y: _A, out: _A | None = None) -> _A:
        k = self._kernels()
        if k is not None:
            return self._jit_binary(k, "mul", x, y, out)
        xf, yf, out, of = _broadcast_operands(self, x, y, out)
        n = of.shape[0]
        bs = self.block
        u = self._scratch.get(_U64, 16, bs)
        bl = self._scratch.get(np.bool_, 2, bs)
        for i in range(0, n, bs):
            j = min(n, i + bs)
            m = j - i
            v = [b[:m] for b in u]
            xb, yb, ob = xf[i:j], yf[i:j], of[i:j]
            _mul127_block(
                xb["lo"], xb["hi"], yb["lo"], yb["hi"], ob["lo"], ob["hi"],
                v[0:5], v[5:10], v[10:15], v[15], bl[0][:m], bl[1][:m],
            )
        return _finish(out, of)

    def muladd(self, c: _A, pairs: Sequence[tuple[_A, _A]], out: _A | None = None) -> _A:
        """c + sum_i x_i * y_i with one reduction (see Domain.muladd): the limb products of
        every pair go into the same five columns (each pair adds less than 2^58 to a column,
        so up to 4 pairs stay below the 2^63.5 the carry step takes), c's limbs are added
        to them, and one carry pass and one canonicalisation finish. For two pairs about
        0.65x the time of two `mul` and two `add`."""
        if not 1 <= len(pairs) <= 4:
            raise ValueError("muladd takes 1 to 4 pairs")
        ops = [c] + [a for pair in pairs for a in pair]
        for a in ops:
            self.check_dtype(a)
        shape = check_same_shape(*ops)
        if out is None:
            out = np.empty(shape, dtype=DT127)
        elif not isinstance(out, np.ndarray) or out.dtype != DT127 or out.shape != shape:
            raise ShapeMismatch(f"{self.name}: out must be an array of dtype {DT127} and shape {shape}")
        of = out.reshape(-1) if out.flags.c_contiguous else np.empty(_prod(shape), dtype=DT127)
        k = self._kernels()
        if k is not None:
            ow = of.view(_U64)
            w = [_unalias(_words(a), ow) for a in ops]
            w += [w[0]] * (9 - len(w))  # unused pair slots
            k.muladd(*w, len(pairs), ow, of.shape[0])
            return _finish(out, of)
        flat = [np.ascontiguousarray(a).reshape(-1) for a in ops]
        n = of.shape[0]
        bs = self.block
        u = self._scratch.get(_U64, 16, bs)
        bl = self._scratch.get(np.bool_, 2, bs)
        for i in range(0, n, bs):
            j = min(n, i + bs)
            m = j - i
            v = [b[:m] for b in u]
            X, Y, C, t = v[0:5], v[5:10], v[10:15], v[15]
            for q in range(len(pairs)):
                xb, yb = flat[1 + 2 * q][i:j], flat[2 + 2 * q][i:j]
                _limbs26(xb["lo"], xb["hi"], X, t)
                _limbs26(yb["lo"], yb["hi"], Y, t)
                _add_product(X, Y, C, t, q == 0)
            cb = flat[0][i:j]
            _limbs26(cb["lo"], cb["hi"], X, t)
            for col in range(5):
                _add(C[col], X[col], C[col])
            ob = of[i:j]
            _reduce_cols127(C, ob["lo"], ob["hi"], t, bl[0][:m], bl[1][:m])
        return _finish(out, of)

    def _addsub(self, x: _A, y: _A, out: _A | None, subtract: bool) -> _A:
        """x - y, or x + y = x - (p - y) with p - y = (~lo, (2^63-1) - hi) in [1, p], blocked.

        Two-limb subtraction with borrow gives d = x - y in [-p, p) as a 128-bit two's
        complement (hi's top bit is the sign); a negative d becomes d + p = (d + 2^128) -
        2^127 - 1: clear the top bit and subtract 1 with borrow. The limbs are read straight
        from the interleaved structured layout and the last pass writes into it: 9 passes
        for sub, 11 for add (about 3x faster than the version with gathered limbs and a
        fold)."""
        k = self._kernels()
        if k is not None:
            return self._jit_binary(k, "sub" if subtract else "add", x, y, out)
        xv, yv, out, of = self._limb_operands(x, y, out)
        return self._addsub_views(xv, yv, out, of, subtract)

    def _jit_binary(self, k: ModuleType, op: str, x: _A, y: _A, out: _A | None) -> _A:
        """The compiled kernel of op ("add", "sub", "mul"): a single element against an
        array (a public constant) is passed as two words (no broadcast copy), other
        broadcasts are materialised."""
        xv, yv, out, of = self._limb_operands(x, y, out)
        n = of.shape[0]
        if n == 0:
            return out
        ow = of.view(_U64)
        if not yv.strides[0]:
            cl, ch = yv[0]
            getattr(k, op + "1")(_unalias(xv.reshape(-1), ow), cl, ch, ow, n)
        elif not xv.strides[0]:
            cl, ch = xv[0]
            yw = _unalias(yv.reshape(-1), ow)
            if op == "sub":
                k.rsub1(cl, ch, yw, ow, n)
            else:
                getattr(k, op + "1")(yw, cl, ch, ow, n)
        else:
            getattr(k, op)(_unalias(xv.reshape(-1), ow), _unalias(yv.reshape(-1), ow), ow, n)
        return _finish(out, of)

    def _limb_operands(self, x: _A, y: _A, out: _A | None) -> tuple[_A, _A, _A, _A]:
        """(x, y) as flat (N, 2) uint64 limb views, the result and its flat view. A single
        element against an array (a public constant) becomes a stride-0 view of its limbs
        instead of a materialised broadcast (structured-dtype copies are slow)."""
        if (
            isinstance(x, np.ndarray) and isinstance(y, np.ndarray)
            and x.dtype == DT127 and y.dtype == DT127 and x.shape != y.shape
        ):
            for one, big, first in ((x, y, True), (y, x, False)):
                if one.size == 1 and one.ndim <= big.ndim:
                    bf, _, out, of = _broadcast_operands(self, big, big, out)
                    bv = bf.view(_U64).reshape(-1, 2)
                    sv = np.broadcast_to(one.reshape(1).view(_U64).reshape(1, 2), bv.shape)
                    return (sv, bv, out, of) if first else (bv, sv, out, of)
        xf, yf, out, of = _broadcast_operands(self, x, y, out)
        return xf.view(_U64).reshape(-1, 2), yf.view(_U64).reshape(-1, 2), out, of

    def _addsub_views(self, xv: _A, yv: _A, out: _A, of: _A, subtract: bool) -> _A:
        ov = of.view(_U64).reshape(-1, 2)
        total = xv.shape[0]
        bs = min(_ADD_BLOCK, max(total, 1))
        u, v, w = self._scratch.get(_U64, 3, bs)
        (c,) = self._scratch.get(np.bool_, 1, bs)
        for i in range(0, total, bs):
            k = min(bs, total - i)
            xl, xh = xv[i : i + k, 0], xv[i : i + k, 1]
            yl, yh = yv[i : i + k, 0], yv[i : i + k, 1]
            _sub_limbs(xl, xh, yl, yh, ov[i : i + k, 0], ov[i : i + k, 1],
                       u[:k], v[:k], w[:k], c[:k], negate_y=not subtract)
        return _finish(out, of)

    def add(self, x: _A, y: _A, out: _A | None = None) -> _A:
        return self._addsub(x, y, out, subtract=False)

    def sub(self, x: _A, y: _A, out: _A | None = None) -> _A:
        return self._addsub(x, y, out, subtract=True)

    def neg(self, x: _A) -> _A:
        """p - x, and 0 for x = 0: complement the 127 bits, then map p back to 0 (5 passes)."""
        self.check_dtype(x)
        out = np.empty(x.shape, dtype=DT127)
        k = self._kernels()
        if k is not None:
            k.neg(_words(x), out.reshape(-1).view(_U64), out.size)
            return out
        xv = np.ascontiguousarray(x).reshape(-1).view(_U64).reshape(-1, 2)
        ov = out.reshape(-1).view(_U64).reshape(-1, 2)
        lo, hi = ov[:, 0], ov[:, 1]
        np.invert(xv[:, 0], out=lo)
        _sub(_M63, xv[:, 1], out=hi)
        z = (lo == _M64) & (hi == _M63)  # x was 0
        if z.any():
            lo[z] = 0
            hi[z] = 0
        return out

    def lincomb(self, coeffs: Sequence[int], arrays: Sequence[_A]) -> _A:
        """sum_j coeffs[j] * arrays[j] (public integer coefficients, equal shapes).

        Multiplying by 2^k (0 <= k < 64) or -2^k is a rotation of the 127 bits (2^127 = 1),
        which keeps canonical elements canonical: the Lagrange coefficients of the usual
        party sets (points {1, 2}: 2 and -1; the check of point 3: -1 and 2) cost one
        rotation (7 passes) and one addition or subtraction (9-11 passes) per term, on
        blocks of limbs read straight from the structured layout. Other coefficients take
        a full multiplication."""
        p = self.modulus
        for a in arrays:
            self.check_dtype(a)
        shape = check_same_shape(*arrays)
        kern = self._kernels()
        if kern is not None:
            return self._jit_lincomb(kern, coeffs, arrays, shape)
        terms: list[tuple[int, bool, _A]] = []  # (rotation k or 0, negate, flat (N, 2) words)
        for c, a in zip(coeffs, arrays, strict=True):
            c = int(c) % p
            if c == 0:
                continue
            neg = c > p // 2
            m = p - c if neg else c
            if m & (m - 1) == 0 and m.bit_length() <= 64:
                k = m.bit_length() - 1
            else:
                a, k, neg = self.mul(a, self.from_int(c)), 0, False
            terms.append((k, neg, np.ascontiguousarray(a).reshape(-1).view(_U64).reshape(-1, 2)))
        return _lincomb_terms(terms, shape, self._scratch)

    @staticmethod
    def _jit_terms(p: int, coeffs: Sequence[int], arrays: Sequence[_A]) -> list[_Term]:
        """Nonzero terms as (c mod p, rotation (shift, negate) or None, words, index)."""
        terms: list[_Term] = []
        for j, (c, a) in enumerate(zip(coeffs, arrays, strict=True)):
            c = int(c) % p
            if c == 0:
                continue
            neg = c > p // 2
            m = p - c if neg else c
            rot = (m.bit_length() - 1, neg) if m & (m - 1) == 0 and m.bit_length() <= 64 else None
            terms.append((c, rot, _words(a), j))
        return terms

    @staticmethod
    def _jit_coeffs(batch: Sequence[_Term]) -> tuple[list[_A], bool, _A, _A, _A, _A]:
        """Kernel arguments for up to 4 terms (padded by repeating the first): (arrays, all
        rotations, shift, flip, coefficient lo, coefficient hi)."""
        batch = list(batch) + [batch[0]] * (4 - len(batch))
        rots = [t[1] if t[1] is not None else (0, False) for t in batch]
        rot = all(t[1] is not None for t in batch)
        shift = np.array([r[0] if rot else 0 for r in rots], dtype=_U64)
        flip = np.array([_M64 if rot and r[1] else 0 for r in rots], dtype=_U64)
        cl = np.array([t[0] & 0xFFFFFFFFFFFFFFFF for t in batch], dtype=_U64)
        ch = np.array([t[0] >> 64 for t in batch], dtype=_U64)
        return [t[2] for t in batch], rot, shift, flip, cl, ch

    def _jit_lincomb(self, k: ModuleType, coeffs: Sequence[int], arrays: Sequence[_A], shape: Shape) -> _A:
        """lincomb with the compiled kernels, up to 4 terms per pass (a longer sum carries
        its partial result into the next pass as a term of coefficient 1). Coefficients
        +-2^j (j < 64) are rotations when all terms of a pass are; otherwise every term is a
        multiplication by its canonical coefficient."""
        terms = self._jit_terms(self.modulus, coeffs, arrays)
        out = np.empty(shape, dtype=DT127)
        ow = out.reshape(-1).view(_U64)
        n = out.size
        if not terms:
            ow[:] = 0
            return out
        batch, terms = terms[:4], terms[4:]
        while True:
            nt = len(batch)
            arrs, rot, shift, flip, cl, ch = self._jit_coeffs(batch)
            if rot:
                k.lincomb_rot(*arrs, nt, shift, flip, ow, n)
            else:
                k.lincomb_mul(*arrs, nt, cl, ch, ow, n)
            if not terms:
                return out
            batch, terms = [(1, (0, False), ow, -1)] + terms[:3], terms[3:]

    def lincomb_checked(self, coeffs: Sequence[int], arrays: Sequence[_A],
                        checks: Sequence[tuple[Sequence[int], _A]]) -> tuple[_A, int | None]:
        """See PrimeField.lincomb_checked. With the compiled kernels, a Shamir reconstruction
        from up to 4 shares with rotation coefficients and its first check run in one pass
        (no array for the expected share); further checks count mismatches without writing."""
        k = self._kernels()
        if k is None:
            return super().lincomb_checked(coeffs, arrays, checks)
        for a in arrays:
            self.check_dtype(a)
        shape = check_same_shape(*arrays)
        p = self.modulus
        checks = list(checks)
        for _, e in checks:
            self.check_dtype(e)
            if e.shape != shape:
                raise ShapeMismatch(f"{self.name}: checked share of shape {e.shape}, expected {shape}")
        terms = self._jit_terms(p, coeffs, arrays)
        n = _prod(shape)
        failed: int | None = None
        done = 0
        out: _A | None = None
        if checks and 1 <= len(terms) <= 4:
            cterms = self._jit_terms(p, checks[0][0], arrays)
            arrs, rot, shift, flip, _, _ = self._jit_coeffs(terms)
            # one pass when both combinations are rotations of the same arrays, in order
            if [t[3] for t in terms] == [t[3] for t in cterms]:
                _, crot, cshift, cflip, _, _ = self._jit_coeffs(cterms)
                if rot and crot:
                    out = np.empty(shape, dtype=DT127)
                    ow = out.reshape(-1).view(_U64)
                    ew = _words(checks[0][1])
                    if k.lincomb_rot_check(*arrs, len(terms), shift, flip, ow, cshift, cflip, ew, n):
                        failed = 0
                    done = 1
        if out is None:
            out = self._jit_lincomb(k, coeffs, arrays, shape)
        for j in range(done, len(checks)):
            if failed is not None:
                break
            c, e = checks[j]
            if not self._jit_equal(k, c, arrays, e, shape):
                failed = j
        return out, failed

    def _jit_equal(self, k: ModuleType, coeffs: Sequence[int], arrays: Sequence[_A], e: _A, shape: Shape) -> bool:
        """lincomb(coeffs, arrays) == e elementwise, without writing the combination when
        it has at most 4 terms."""
        terms = self._jit_terms(self.modulus, coeffs, arrays)
        n = _prod(shape)
        if terms and len(terms) <= 4:
            arrs, _, _, _, cl, ch = self._jit_coeffs(terms)
            return not k.lincomb_mul_ne(*arrs, len(terms), cl, ch, _words(e), n)
        got = self._jit_lincomb(k, coeffs, arrays, shape)
        return bool(np.array_equal(got.reshape(-1).view(_U64), _words(e)))

    def matmul(self, x: _A, y: _A) -> _A:
        """Exact (x @ y) mod p: 26-bit limbs of both sides, one stacked uint64 matmul per
        inner-dimension chunk of 64 computes all 25 limb products (each sum < 64*2^52), the
        columns of weight >= 2^130 are folded with 2^130 = 8 and carried as in `mul`."""
        self.check_dtype(x)
        self.check_dtype(y)
        x2, y2, squeeze = _matmul_prepare(self.name, x, y)
        k = x2.shape[-1]
        rows, cols = x2.shape[-2], y2.shape[-1]
        acc: _A | None = None
        for k0 in range(0, max(k, 1), self.matmul_chunk):
            k1 = min(k, k0 + self.matmul_chunk)
            xs, ys = x2[..., k0:k1], y2[..., k0:k1, :]
            X = [np.empty(xs.shape, _U64) for _ in range(5)]
            Y = [np.empty(ys.shape, _U64) for _ in range(5)]
            _limbs26(xs["lo"], xs["hi"], X, np.empty(xs.shape, _U64))
            _limbs26(ys["lo"], ys["hi"], Y, np.empty(ys.shape, _U64))
            prods = np.matmul(np.concatenate(X, axis=-2), np.concatenate(Y, axis=-1))
            Cs: list[_A | None] = [None] * 5
            for i in range(5):
                for j in range(5):
                    blk = prods[..., i * rows : (i + 1) * rows, j * cols : (j + 1) * cols]
                    s = i + j
                    if s >= 5:
                        blk = blk << _S3
                        s -= 5
                    c = Cs[s]
                    Cs[s] = blk.copy() if c is None else _add(c, blk)
            C = [c for c in Cs if c is not None]  # i + j covers every column 0..4
            shape = C[0].shape
            part = np.empty(shape, dtype=DT127)
            t = np.empty(shape, _U64)
            lo_o, hi_o = np.empty(shape, _U64), np.empty(shape, _U64)
            _reduce_cols127(C, lo_o, hi_o, t, np.empty(shape, bool), np.empty(shape, bool))
            part["lo"], part["hi"] = lo_o, hi_o
            acc = part if acc is None else self.add(acc, part)
        assert acc is not None  # the loop runs at least once
        return _matmul_finish(acc, squeeze)

    def sum(self, x: _A, axis: int | tuple[int, ...] | None = None) -> _A:
        self.check_dtype(x)
        x2, rest = _sum_axes(x, axis)
        # four 32-bit limb sums in uint64 are exact for < 2^32 terms; recombine in Python ints
        n = x2.shape[-1]
        acc = np.zeros(x2.shape[0], dtype=object)
        chunk = 1 << 31
        for k0 in range(0, n, chunk):
            xs = x2[:, k0 : k0 + chunk]
            lo, hi = xs["lo"], xs["hi"]
            for i, part in enumerate((lo & _M32, lo >> _S32, hi & _M32, hi >> _S32)):
                acc = acc + (np.sum(part, axis=-1, dtype=_U64).astype(object) << (32 * i))
        return self.from_int(acc.reshape(rest))

    # -- wire format -------------------------------------------------------------------
    @property
    def wire_dtype(self) -> np.dtype:
        return _U64

    def wire_shape(self, shape: Shape) -> Shape:
        return tuple(shape) + (2,)

    def to_wire(self, x: _A) -> _A:
        self.check_dtype(x)
        return np.ascontiguousarray(x).reshape(-1).view(_U64).reshape(tuple(x.shape) + (2,))

    def from_wire(self, w: _A, shape: Shape) -> _A:
        shape = _as_shape(shape)
        w = _wire_in(self.name, w, _U64, shape + (2,))
        k = self._kernels()
        if k is not None:
            # one pass: copy the words and count the elements >= p
            out = np.empty(shape, dtype=DT127)
            if k.copy_canonical(_words_u64(w), out.reshape(-1).view(_U64), out.size):
                raise DomainError(f"{self.name}: non-canonical element on the wire (>= p)")
            return out
        if w.size and not _canonical(w[..., 0], w[..., 1]):
            raise DomainError(f"{self.name}: non-canonical element on the wire (>= p)")
        # copy as uint64 (a structured-dtype copy is ~10x slower), then reinterpret
        return np.array(w, dtype=_U64, order="C").reshape(-1).view(DT127).reshape(shape)


# =============================================================================================
# Any prime: gmpy2
# =============================================================================================
