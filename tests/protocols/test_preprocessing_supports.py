"""`Preprocessing.supports(kind)`: every source declares what it supplies, the declaration
matches what it hands out (an undeclared kind raises PreprocessingUnsupported with nothing
dealt or sent), and the comparison backend is chosen from it."""

import asyncio

import numpy as np
import pytest

from mpc.local import close_sessions, open_sessions
from protocols import comparison, core
from protocols.arith.field import Mersenne61, Mersenne127
from protocols.arith.ring import Ring64
from protocols.comparison.backend import backend
from protocols.errors import PreprocessingExhausted, PreprocessingUnsupported
from protocols.preprocessing.base import KINDS, RING64_KINDS, Preprocessing
from protocols.preprocessing.trusted_dealer import InsecureTrustedDealer
from protocols.prg import CryptoRNG
from protocols.sharing.schemes import AdditiveScheme, ShamirShares

pytestmark = pytest.mark.timeout(60)

#: one small request of each kind
ARGS = {
    "triples": ((2,),), "matrix_triples": ((2, 3), (3,)), "square_pairs": ((2,),), "bits": ((2,),),
    "randoms": ((2,),), "trunc_pairs": ((2,), 4, 20), "trunc_triples": ((2,), 4),
    "bounded_randoms": ((2,), 8), "edabits": ((2,), 16), "dabits": ((2,),), "bool_triples": ((2,),),
    "ltz_tuples": ((2,),), "matrix_trunc_triples": ((2, 3), (3,), 4),
}
ALL = set(KINDS)


def test_args_cover_every_kind():
    assert set(ARGS) == ALL


def _dealer(kind, domain, n=3):
    sch = AdditiveScheme(domain, n) if kind == "additive" else ShamirShares(domain, n, 1)
    return InsecureTrustedDealer(sch, CryptoRNG.from_seed(1, "d"))


@pytest.mark.parametrize("scheme,domain,missing", [
    ("additive", Ring64(), set()),
    ("shamir", Mersenne127(), set(RING64_KINDS)),
    ("additive", Mersenne61(), set(RING64_KINDS)),
])
def test_trusted_dealer_declares_what_it_deals(scheme, domain, missing):
    dealer = _dealer(scheme, domain)
    views = [dealer.for_party(p) for p in range(dealer.n)]
    assert {k for k in KINDS if not views[0].supports(k)} == missing

    async def main():
        for kind in KINDS:
            if kind in missing:
                used = dealer.used
                with pytest.raises(PreprocessingUnsupported):
                    await getattr(views[0], kind)(*ARGS[kind])
                assert dealer.used == used  # nothing dealt
            else:
                for v in views:
                    assert await getattr(v, kind)(*ARGS[kind]) is not None

    asyncio.run(main())
    with pytest.raises(ValueError):
        views[0].supports("triple")


def test_base_default_is_what_the_class_implements():
    class OnlyTriples(Preprocessing):
        async def triples(self, shape):
            raise AssertionError

    assert {k for k in KINDS if OnlyTriples().supports(k)} == {"triples"}
    assert not any(Preprocessing().supports(k) for k in KINDS)


@pytest.mark.parametrize("source,scheme,domain,missing,chosen", [
    ("trusted_dealer", "additive", None, set(), "ring3"),
    ("trusted_dealer", "shamir", Mersenne127(), set(RING64_KINDS), "edabits"),
    ("ot", "additive", None, set(), "ring3"),
    ("rss3", "additive", None, set(), "ring3"),
    # dn07 also has the GF(p) form of matrix_trunc_triples (truncation.sub_trunc_matmul "cs")
    ("dn07", "shamir", Mersenne127(), set(RING64_KINDS) - {"matrix_trunc_triples"}, "edabits"),
    ("dealer", "additive", None, set(), "ring3"),
    ("dealer", "additive", Mersenne127(), set(RING64_KINDS) | {"edabits", "dabits", "bool_triples"}, "field_bits"),
])
def test_sources_declare_refuse_locally_and_choose_the_backend(source, scheme, domain, missing, chosen):
    """Each source (wrapped in Buffered, as run_local and the node use it) declares the same
    kinds on every party; an undeclared kind is refused before anything is sent or drawn;
    the comparison backend follows the declaration."""

    async def main():
        ss = await open_sessions(3, scheme=scheme, domain=domain, preprocessing=source, seed=3)
        try:
            for s in ss:
                assert {k for k in KINDS if not s.prep.supports(k)} == missing
                assert backend(s).name == chosen
            s = ss[0]
            before = s.stats.copy()
            inner = getattr(s.prep.source, "stats", None)
            inner_before = None if inner is None else inner.copy()
            for kind in sorted(missing):
                with pytest.raises(PreprocessingUnsupported):
                    await getattr(s.prep, kind)(*ARGS[kind])
                with pytest.raises(PreprocessingUnsupported):
                    await s.prep.fill(kind, *ARGS[kind])
            assert s.stats.as_dict() == before.as_dict()
            if inner is not None:
                assert inner.as_dict() == inner_before.as_dict()
        finally:
            await close_sessions(ss)

    asyncio.run(main())


def test_comparison_without_material_fails_typed_and_sends_nothing():
    """A source that declares no comparison material (here: triples only) makes ltz fail
    with PreprocessingUnsupported on every party before any message; the broken variant
    (a source that lies, declaring edaBits it cannot deal) fails at the request instead."""

    class TriplesOnly(Preprocessing):
        name = "triples-only"

        def __init__(self, inner):
            self.inner = inner

        async def triples(self, shape):
            return await self.inner.triples(shape)

    class Liar(TriplesOnly):
        def supports(self, kind):
            return True

    X = np.array([-1, 0, 2])

    async def main(wrap):
        import dataclasses

        ss = await open_sessions(3, seed=5)
        ss = [dataclasses.replace(s, prep=wrap(s.prep)) for s in ss]
        try:
            xs = await asyncio.gather(*(core.input(s, s.domain.from_int(X) if s.pid == 0 else None, 0)
                                        for s in ss))
            before = [s.stats.copy().as_dict() for s in ss]
            res = await asyncio.gather(*(comparison.ltz(s, x) for s, x in zip(ss, xs, strict=True)),
                                       return_exceptions=True)
            return res, before, [s.stats.as_dict() for s in ss]
        finally:
            await close_sessions(ss)

    res, before, after = asyncio.run(main(TriplesOnly))
    assert all(isinstance(r, PreprocessingUnsupported) for r in res)
    assert before == after
    res, _, _ = asyncio.run(main(Liar))
    assert all(isinstance(r, PreprocessingExhausted) for r in res)  # refused at the request


def test_backend_chosen_once_per_source():
    """The choice is made once per preprocessing source and shared by the session's children;
    asking again does not consult the source, and a declaration that changes mid-session does
    not switch paths (every party keeps the path it started with)."""

    async def main():
        ss = await open_sessions(3, seed=9)
        try:
            s = ss[0]
            calls = []
            plain = s.prep.supports

            def counting(kind):
                calls.append(kind)
                return plain(kind)

            s.prep.supports = counting
            first = backend(s)
            n_calls = len(calls)
            assert first.name == "ring3" and n_calls > 0
            assert backend(s.child("x")) is first and backend(s) is first
            assert len(calls) == n_calls
            s.prep.supports = lambda kind: kind != "ltz_tuples" and plain(kind)
            assert backend(s) is first  # chosen once: a later declaration does not switch paths
            assert backend(ss[1]).name == "ring3"
        finally:
            await close_sessions(ss)

    asyncio.run(main())
