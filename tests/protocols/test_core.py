"""input, open, reveal_to; bad input; abort is terminal."""

import numpy as np
import pytest

import mpc
from mpc.local import default_domain
from network.errors import FrameError, PeerUnavailableError
from protocols import beaver, core
from protocols.arith.field import Mersenne61
from protocols.errors import (
    DomainError,
    PartyIndexError,
    PreprocessingExhausted,
    SessionAbortedError,
)


@pytest.mark.parametrize("scheme,n", [("additive", 2), ("additive", 3), ("shamir", 3), ("shamir", 5)])
def test_input_shapes_and_reveal_to_one_party(scheme, n):
    X = np.arange(24).reshape(2, 3, 4)

    async def job(s):
        x = await core.input(s, s.domain.from_int(X) if s.pid == 1 else None, 1)
        assert x.shape == X.shape
        before = s.stats.copy()
        got = await core.reveal_to(s, x, 0)
        return None if got is None else s.domain.to_int(got), s.stats - before

    res = mpc.run_local(n, job, scheme=scheme)
    e = default_domain(scheme).elem_bytes  # 8 on Z_2^64, 16 on GF(2^127 - 1)
    assert (res.results[0][0].astype(np.int64) == X).all()
    for pid in range(1, n):
        got, delta = res.results[pid]
        assert got is None
        assert delta.bytes_sent == X.size * e and delta.messages_sent == 1
    assert res.results[0][1].bytes_sent == 0 and res.results[0][1].bytes_received == (n - 1) * X.size * e


def test_input_bytes_and_zero_d():
    async def job(s):
        before = s.stats.copy()
        x = await core.input(s, s.domain.from_int(7) if s.pid == 0 else None, 0)
        d = s.stats - before
        (v,) = await core.open(s, x)
        return int(v), d

    res = mpc.run_local(3, job)
    assert all(v == 7 for v, _ in res.results)
    assert res.results[0][1].bytes_sent == 2 * 8  # a 0-d array: no shape words
    assert res.results[1][1].bytes_sent == 0


def test_wrong_owner_arguments():
    async def owner_none(s):
        return await core.input(s, None, 0)

    with pytest.raises(DomainError):
        mpc.run_local(3, owner_none)

    async def bad_owner(s):
        return await core.input(s, None, 5)

    with pytest.raises(PartyIndexError):
        mpc.run_local(3, bad_owner)


def test_exhausted_preprocessing_is_typed_on_every_party():
    async def job(s):
        x = await core.input(s, s.domain.from_int(np.ones(10, dtype=np.int64)) if s.pid == 0 else None, 0)
        return await beaver.mul(s, x, x)

    with pytest.raises(PreprocessingExhausted) as ei:
        mpc.run_local(3, job, prep_limit=29)
    assert all(isinstance(e, PreprocessingExhausted) for e in ei.value.party_errors)
    mpc.run_local(3, job, prep_limit=30)


def test_malformed_peer_message_aborts_and_session_is_dead():
    """Party 1 sends a share of the wrong shape: party 0 raises FrameError, its session is
    aborted for good, and party 1 sees the abort as PeerUnavailableError."""

    async def job(s):
        x = await core.input(s, s.domain.from_int(np.ones(4, dtype=np.int64)) if s.pid == 0 else None, 0)
        if s.pid == 1:
            await s.channel.send(0, s.tag("open"), np.zeros(5, dtype=np.uint64))
            return await core.reveal_to(s, x, 1)
        try:
            await core.open(s, x)
        except FrameError:
            with pytest.raises(SessionAbortedError):
                await core.open(s, x)
            raise

    with pytest.raises(FrameError) as ei:
        mpc.run_local(2, job, timeout=5)
    assert isinstance(ei.value.party_errors[1], PeerUnavailableError)


def test_non_canonical_field_element_rejected():
    async def job(s):
        x = await core.input(s, s.domain.from_int(np.ones(2, dtype=np.int64)) if s.pid == 0 else None, 0)
        if s.pid == 1:
            bad = np.full(2, s.domain.modulus + 3, dtype=np.uint64)  # >= p: not canonical
            tag = s.tag("open")
            await s.channel.send(0, tag, bad)
            await s.channel.send(2, tag, bad)
            return None
        return await core.open(s, x)

    with pytest.raises(DomainError):
        mpc.run_local(3, job, scheme="shamir", domain=Mersenne61(), timeout=5)  # uint64 words


def test_aborted_session_draws_no_more_preprocessing():
    """T06: after an abort, asking for a triple raises SessionAbortedError and the dealer
    hands out nothing more."""

    async def job(s):
        x = await core.input(s, s.domain.from_int(np.ones(3, dtype=np.int64)) if s.pid == 0 else None, 0)
        await s.abort(RuntimeError("a check failed"))
        with pytest.raises(SessionAbortedError):
            await beaver.mul(s, x, x)
        with pytest.raises(SessionAbortedError):
            await s.prep.triples((3,))
        return s.prep.source.d.used

    used = mpc.run_local(2, job).results
    assert used == [0, 0]
