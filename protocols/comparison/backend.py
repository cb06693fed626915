"""The comparison backend of a session, chosen once from what its preprocessing source
declares it supplies (`prep.supports(kind)`), never by asking for an item and catching
PreprocessingExhausted: a source that runs out is an error, not a signal to switch paths.

  Ring3      Z_2^64 (additive) with `ltz_tuples` (the dealers): ltz and ltz_mul in 3 rounds
             (protocols.comparison.ring3); eqz from edaBits.
  EdaBits    Z_2^64 (additive) without ltz_tuples (the OT source), or GF(p) (any scheme) with
             edaBits, daBits and boolean triples (the trusted dealer, dn07): the packed
             boolean circuits of protocols.comparison.eda [EGKRS20].
  FieldBits  GF(p) whose source has no edaBits (the dealer node over a field): Catrina and
             de Hoogh's circuits in field products (protocols.comparison.field) [CdH10].

All parties hold the same kind of source, so they choose the same backend and exchange the
same messages. The choice is cached per preprocessing object (a session and its children
share it). The costs of each backend are in protocols.costs (ltz, ltz_mul, eqz by backend
name).
"""

from __future__ import annotations

import asyncio
import weakref

import numpy as np

from protocols import beaver
from protocols.arith.domain import Domain
from protocols.comparison import eda, field, ring3
from protocols.comparison.factor import Factor, OpenWith, resolve
from protocols.errors import ParameterError, PreprocessingUnsupported, ShapeMismatch
from protocols.session import Session, Share
from protocols.truncation import KAPPA, check_field_room, check_same, is_ring64, value_bits

#: the kinds each circuit family draws
EDA_KINDS = ("edabits", "dabits", "bool_triples")
FIELD_BITS_KINDS = ("bits", "bounded_randoms", "triples")


class Backend:
    """One way to compute the comparisons of a session. `ell`: the value width l on GF(p),
    None on Z_2^64 (see `width`)."""

    name = "abstract"

    async def ltz(self, s: Session, x: Share, ell: int | None, kappa: int) -> Share:
        raise NotImplementedError

    async def ltz_mul(self, s: Session, x: Share, y: Factor, ell: int | None) -> tuple[Share, Share]:
        raise NotImplementedError

    async def eqz(self, s: Session, x: Share, ell: int | None, kappa: int) -> Share:
        return await eda.eqz(s, x, ell, kappa)


class EdaBits(Backend):
    """From edaBits: ltz_mul's product rides in the comparison's rounds (the daBit's Beaver
    product, opened in the first message or, for a factor not yet a Share, in a child
    session during the AND levels)."""

    name = "edabits"

    async def ltz(self, s: Session, x: Share, ell: int | None, kappa: int) -> Share:
        return (await eda.ltz(s, x, ell, kappa))[0]

    async def ltz_mul(self, s: Session, x: Share, y: Factor, ell: int | None) -> tuple[Share, Share]:
        if isinstance(y, Share):
            check_same(s, y)
            if y.shape != x.shape:
                raise ShapeMismatch(f"ltz_mul: shapes differ: {x.shape} and {y.shape}")
            b, by = await eda.ltz(s, x, ell, KAPPA, y)
        else:
            b, by = await eda.ltz(s, x, ell, KAPPA, later=lambda: resolve(s, y))
        assert by is not None
        return b, by


class Ring3(EdaBits):
    """Z_2^64 with ltz_tuples: ltz and ltz_mul in 3 rounds; eqz from edaBits."""

    name = "ring3"

    async def ltz(self, s: Session, x: Share, ell: int | None, kappa: int) -> Share:
        return (await ring3.ltz3(s, x))[0]

    async def ltz_mul(self, s: Session, x: Share, y: Factor, ell: int | None) -> tuple[Share, Share]:
        b, by = await ring3.ltz3(s, x, y)
        assert by is not None
        return b, by


class FieldBits(Backend):
    """GF(p) from shared random bits: ltz then one Beaver product for ltz_mul."""

    name = "field_bits"

    async def ltz(self, s: Session, x: Share, ell: int | None, kappa: int) -> Share:
        assert ell is not None
        return await field.ltz_bits(s, x, kappa, ell)

    async def ltz_mul(self, s: Session, x: Share, y: Factor, ell: int | None) -> tuple[Share, Share]:
        if isinstance(y, OpenWith):  # open it concurrently with the comparison's first round
            y = asyncio.ensure_future(resolve(s, y))
        try:
            b = await self.ltz(s, x, ell, KAPPA)
            y = await resolve(s, y)
        finally:
            if isinstance(y, asyncio.Future):
                y.cancel()
        return b, await beaver.mul(s, b, y)

    async def eqz(self, s: Session, x: Share, ell: int | None, kappa: int) -> Share:
        assert ell is not None
        return await field.eqz_bits(s, x, kappa, ell)


RING3, EDABITS, FIELD_BITS = Ring3(), EdaBits(), FieldBits()

_chosen: weakref.WeakKeyDictionary[object, tuple[Domain, str, Backend]] = weakref.WeakKeyDictionary()


def backend(s: Session) -> Backend:
    """The session's comparison backend, from `s.prep.supports` (cached per source object).
    Raises ParameterError for a domain or scheme with no comparison protocol,
    PreprocessingUnsupported if the source supplies none of the backends' kinds."""
    D, kind = s.domain, s.scheme.kind
    try:
        hit = _chosen.get(s.prep)
    except TypeError:  # a source that cannot be weakly referenced: choose every time
        return _choose(s)
    if hit is not None and hit[0] == D and hit[1] == kind:
        return hit[2]
    chosen = _choose(s)
    _chosen[s.prep] = (D, kind, chosen)
    return chosen


def _choose(s: Session) -> Backend:
    D, prep = s.domain, s.prep
    has_eda = all(prep.supports(k) for k in EDA_KINDS)
    if is_ring64(D):
        if s.scheme.kind != "additive":
            raise ParameterError("comparison over Z_2^64 needs additive sharing")
        if prep.supports("ltz_tuples"):
            return RING3
        if has_eda:
            return EDABITS
        raise PreprocessingUnsupported(
            f"{prep.name} supplies neither ltz_tuples nor {', '.join(EDA_KINDS)}: no comparison over {D}"
        )
    if not D.is_field:
        raise ParameterError(f"no comparison protocol for {D}")
    if has_eda:
        return EDABITS
    if all(prep.supports(k) for k in FIELD_BITS_KINDS):
        return FIELD_BITS
    raise PreprocessingUnsupported(
        f"{prep.name} supplies neither {', '.join(EDA_KINDS)} nor {', '.join(FIELD_BITS_KINDS)}: "
        f"no comparison over {D}"
    )


def width(s: Session, kappa: int, bits: int | None) -> int | None:
    """The value width l of a comparison: None on Z_2^64 (the circuit is exact on every
    int64; `bits` is only validated, 2..64); on GF(p) `bits` if given (2 <= bits <=
    value_bits(domain)), else value_bits(domain). Raises ParameterError."""
    if is_ring64(s.domain):
        if bits is not None:
            check_bits(bits, 64)
        return None
    ell = value_bits(s.domain, kappa)
    check_field_room(s.domain, ell, kappa, "comparison")
    if ell < 2:
        raise ParameterError(f"comparison on {s.domain} leaves no room for values")
    return ell if bits is None else check_bits(bits, ell)


def check_bits(bits: object, top: int) -> int:
    if isinstance(bits, bool) or not isinstance(bits, int | np.integer):
        raise ParameterError(f"comparison: bits must be an integer, got {bits!r}")
    if not 2 <= bits <= top:
        raise ParameterError(f"comparison: bits must satisfy 2 <= bits <= {top}, got {bits}")
    return int(bits)
