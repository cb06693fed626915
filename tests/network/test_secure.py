"""T10/T11/T12 at the Noise level: authentication, binding, tampering, nonces, forward secrecy."""

import asyncio

import pytest

from network.errors import ChannelAuthError, NonceExhaustedError
from network.keys import generate_keypair
from network.secure import MAX_NONCE, CipherState, HandshakeState, kk_handshake, make_prologue

A, B, C = generate_keypair(), generate_keypair(), generate_keypair()
PRO = make_prologue(b"consortium", b"session-1", 0, 1)


def _pair(pro_i=PRO, pro_r=PRO, i_s=A[0], i_rs=B[1], r_s=B[0], r_rs=A[1]):
    i = HandshakeState("KK", True, pro_i, s=i_s, rs=i_rs)
    r = HandshakeState("KK", False, pro_r, s=r_s, rs=r_rs)
    return i, r


def _complete(i, r):
    r.read_message(i.write_message())
    i.read_message(r.write_message())
    return i.split(), r.split()


def test_kk_roundtrip_and_distinct_keys():
    (is_, ir), (rs_, rr) = _complete(*_pair())
    assert rr.decrypt(b"", is_.encrypt(b"", b"hi")) == b"hi"
    assert ir.decrypt(b"", rs_.encrypt(b"", b"yo")) == b"yo"
    # T12: fresh ephemerals give fresh session keys every time
    (is2, _), _ = _complete(*_pair())
    assert is_.encrypt(b"", b"x" * 32) != is2.encrypt(b"", b"x" * 32)


@pytest.mark.parametrize(
    "case",
    [
        "unknown_initiator_key",   # initiator holds a key the responder does not pin
        "wrong_pinned_responder",  # initiator pins the wrong responder key
        "other_session",
        "other_consortium",
        "swapped_indices",         # a known key presented under another party index
    ],
)
def test_handshake_mismatch_fails(case):
    kw = {}
    if case == "unknown_initiator_key":
        kw = dict(i_s=C[0])
    elif case == "wrong_pinned_responder":
        kw = dict(i_rs=C[1])
    elif case == "other_session":
        kw = dict(pro_r=make_prologue(b"consortium", b"session-2", 0, 1))
    elif case == "other_consortium":
        kw = dict(pro_r=make_prologue(b"other", b"session-1", 0, 1))
    elif case == "swapped_indices":
        kw = dict(pro_r=make_prologue(b"consortium", b"session-1", 1, 0))
    i, r = _pair(**kw)
    with pytest.raises(ChannelAuthError):
        r.read_message(i.write_message())


@pytest.mark.parametrize("point", [bytes(32), (1).to_bytes(32, "little"), bytes.fromhex(
    "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800")])
def test_low_order_ephemeral_rejected(point):
    i, r = _pair()
    msg = bytearray(i.write_message())
    msg[:32] = point
    with pytest.raises(ChannelAuthError):
        r.read_message(bytes(msg))


def test_handshake_tamper_and_truncation():
    i, r = _pair()
    msg = i.write_message()
    for bad in (msg[:-1], msg[:10], msg[:32] + bytes([msg[32] ^ 1]) + msg[33:], b""):
        _, r2 = _pair()
        with pytest.raises(ChannelAuthError):
            r2.read_message(bad)


def test_transport_tamper_replay_reorder_do_not_advance():
    (snd, _), (_, rcv) = _complete(*_pair())
    c0, c1 = snd.encrypt(b"", b"zero"), snd.encrypt(b"", b"one")
    with pytest.raises(ChannelAuthError):
        rcv.decrypt(b"", c1)  # reordered
    bad = bytearray(c0)
    bad[0] ^= 0x80
    with pytest.raises(ChannelAuthError):
        rcv.decrypt(b"", bytes(bad))  # modified
    with pytest.raises(ChannelAuthError):
        rcv.decrypt(b"", c0[:-1])  # truncated
    assert rcv.n == 0  # failures did not advance the state
    assert rcv.decrypt(b"", c0) == b"zero"
    with pytest.raises(ChannelAuthError):
        rcv.decrypt(b"", c0)  # replayed
    assert rcv.decrypt(b"", c1) == b"one"


def test_nonce_never_wraps():
    cs = CipherState(bytes(32))
    cs.n = MAX_NONCE - 1
    cs.encrypt(b"", b"last")
    with pytest.raises(NonceExhaustedError):
        cs.encrypt(b"", b"wrap")
    with pytest.raises(NonceExhaustedError):
        cs.decrypt(b"", bytes(20))
    assert issubclass(NonceExhaustedError, ChannelAuthError)


def test_async_kk_handshake_over_queues():
    async def main():
        q1, q2 = asyncio.Queue(), asyncio.Queue()
        a = kk_handshake(initiator=True, static_key=A[0], peer_public_key=B[1], prologue=PRO,
                         send=q1.put, recv=q2.get)
        b = kk_handshake(initiator=False, static_key=B[0], peer_public_key=A[1], prologue=PRO,
                         send=q2.put, recv=q1.get)
        sa, sb = await asyncio.gather(a, b)
        assert sa.handshake_hash == sb.handshake_hash
        assert sb.recv.decrypt(b"", sa.send.encrypt(b"", b"m")) == b"m"
    asyncio.run(main())


def test_auxiliary_key_is_secret_and_shared():
    """The MQTT control-message key must not be computable from the handshake hash (which
    mixes only public values an observer of the handshake sees)."""
    import hashlib

    async def main():
        q1, q2 = asyncio.Queue(), asyncio.Queue()
        a = kk_handshake(initiator=True, static_key=A[0], peer_public_key=B[1], prologue=PRO,
                         send=q1.put, recv=q2.get)
        b = kk_handshake(initiator=False, static_key=B[0], peer_public_key=A[1], prologue=PRO,
                         send=q2.put, recv=q1.get)
        return await asyncio.gather(a, b)

    sa, sb = asyncio.run(main())
    label = b"smpc-mqtt-control"
    assert sa.derive_key(label) == sb.derive_key(label)
    public_guess = hashlib.blake2b(label, key=sa.handshake_hash[:64], digest_size=32).digest()
    assert sa.derive_key(label) != public_guess
    assert sa.derive_key(b"other") != sa.derive_key(label)
