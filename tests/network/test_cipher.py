"""The AESGCM cipher of the secure channel (issue 15): Noise_*_25519_AESGCM_* reproduces the
cacophony vectors byte for byte (T10), AESGCM records reject tampering and replays like
ChaChaPoly's (T11), and a TCP channel whose two ends are configured for different ciphers
fails its setup with CipherMismatchError on both ends; a hello whose cipher byte is changed
on the way fails the handshake (no downgrade)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import numpy as np
import pytest

from network.errors import ChannelAuthError, CipherMismatchError, PeerUnavailableError
from network.keys import generate_keypair
from network.secure import (
    AESGCM_NAME,
    CHACHAPOLY,
    CipherState,
    HandshakeState,
    aes_hardware,
    make_prologue,
    preferred_cipher,
)
from network.tcp import RECORD_SIZE, TcpChannel, local_tcp_mesh

VECTORS = Path(__file__).resolve().parent / "vectors" / "noise-cacophony-aesgcm.json"
_VECTORS = json.loads(VECTORS.read_text())["vectors"]
KEYS = [generate_keypair() for _ in range(2)]
SKS = [sk for sk, _ in KEYS]
PKS = [pk for _, pk in KEYS]


def _h(v, key):
    return bytes.fromhex(v[key]) if key in v else None


@pytest.mark.parametrize("v", _VECTORS, ids=[v["name"] for v in _VECTORS])
def test_aesgcm_cacophony_vector(v):
    """T10 for AESGCM: handshake and transport messages equal the vectors byte for byte
    (this pins the big-endian counter nonce of Noise sec. 12.4)."""
    assert v["dh"] == "25519" and v["cipher"] == "AESGCM"
    kw = {"hash_name": v["hash"], "cipher": v["cipher"]}
    init = HandshakeState(v["pattern"], True, _h(v, "init_prologue"), s=_h(v, "init_static"),
                          e=_h(v, "init_ephemeral"), rs=_h(v, "init_remote_static"), **kw)
    resp = HandshakeState(v["pattern"], False, _h(v, "resp_prologue"), s=_h(v, "resp_static"),
                          e=_h(v, "resp_ephemeral"), rs=_h(v, "resp_remote_static"), **kw)
    i_send = i_recv = r_send = r_recv = None
    for k, m in enumerate(v["messages"]):
        payload, expected = bytes.fromhex(m["payload"]), bytes.fromhex(m["ciphertext"])
        from_init = k % 2 == 0
        if not init.complete:
            w, r = (init, resp) if from_init else (resp, init)
            ct = w.write_message(payload)
            assert ct == expected, f"handshake message {k}"
            assert r.read_message(ct) == payload
            if init.complete:
                assert init.handshake_hash == resp.handshake_hash == bytes.fromhex(v["handshake_hash"])
                i_send, i_recv = init.split()
                r_send, r_recv = resp.split()
        else:
            w, r = (i_send, r_recv) if from_init else (r_send, i_recv)
            ct = w.encrypt(b"", payload)
            assert ct == expected, f"transport message {k}"
            assert r.decrypt(b"", ct) == payload
    assert i_send is not None and i_send.n > 0  # the vector reached its transport messages


def test_vector_file_has_our_suite():
    assert "Noise_KK_25519_AESGCM_BLAKE2b" in [v["name"] for v in _VECTORS]


def test_aesgcm_nonce_is_big_endian():
    """A broken variant: the little-endian (ChaChaPoly) nonce layout with the AES key does not
    reproduce the vector's first transport message, so the vector test has power."""
    v = next(v for v in _VECTORS if v["name"] == "Noise_NN_25519_AESGCM_BLAKE2b")
    init = HandshakeState("NN", True, _h(v, "init_prologue"), e=_h(v, "init_ephemeral"), cipher="AESGCM")
    resp = HandshakeState("NN", False, _h(v, "resp_prologue"), e=_h(v, "resp_ephemeral"), cipher="AESGCM")
    resp.read_message(init.write_message(bytes.fromhex(v["messages"][0]["payload"])))
    init.read_message(resp.write_message(bytes.fromhex(v["messages"][1]["payload"])))
    send, _ = init.split()
    m2, m4 = v["messages"][2], v["messages"][4]  # the initiator's transport messages (n = 0, 1)
    assert send.encrypt(b"", bytes.fromhex(m2["payload"])) == bytes.fromhex(m2["ciphertext"])
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    key = send._aead  # the same key, nonce n = 1 laid out little-endian
    assert isinstance(key, AESGCM)
    wrong = key.encrypt(b"\0" * 4 + (1).to_bytes(8, "little"), bytes.fromhex(m4["payload"]), None)
    assert wrong != bytes.fromhex(m4["ciphertext"])
    assert send.encrypt(b"", bytes.fromhex(m4["payload"])) == bytes.fromhex(m4["ciphertext"])


def _kk(ci: str, cr: str):
    pro = make_prologue(b"c", b"s", 0, 1)
    i = HandshakeState("KK", True, pro, s=SKS[0], rs=PKS[1], cipher=ci)
    r = HandshakeState("KK", False, pro, s=SKS[1], rs=PKS[0], cipher=cr)
    return i, r


def test_handshake_with_different_ciphers_fails():
    i, r = _kk(AESGCM_NAME, CHACHAPOLY)
    with pytest.raises(ChannelAuthError):
        r.read_message(i.write_message())


def test_unknown_cipher_is_refused():
    with pytest.raises(CipherMismatchError):
        CipherState(bytes(32), "AES128")
    with pytest.raises(CipherMismatchError):
        TcpChannel(0, 2, session_id=b"s", static_key=SKS[0], peer_keys=PKS, cipher="aes")


def test_aesgcm_records_tamper_and_replay():
    """T11 on AESGCM CipherStates: a flipped bit, a replay and a skipped record fail, and a
    failed decryption does not advance the receiver."""
    i, r = _kk(AESGCM_NAME, AESGCM_NAME)
    r.read_message(i.write_message())
    i.read_message(r.write_message())
    (send, _), (_, recv) = i.split(), r.split()
    assert send.cipher == recv.cipher == AESGCM_NAME
    c0, c1, c2 = (send.encrypt(b"", bytes([k]) * 100) for k in range(3))
    bad = bytearray(c0)
    bad[5] ^= 1
    with pytest.raises(ChannelAuthError):
        recv.decrypt(b"", bytes(bad))
    with pytest.raises(ChannelAuthError):
        recv.decrypt(b"", c1)  # skips record 0
    assert recv.n == 0
    assert recv.decrypt(b"", c0) == bytes(100)
    with pytest.raises(ChannelAuthError):
        recv.decrypt(b"", c0)  # replay
    assert recv.decrypt(b"", c1) == b"\1" * 100
    out = bytearray(100)
    recv.decrypt_into(b"", c2, out)
    assert bytes(out) == b"\2" * 100


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("processor\t: 0\nflags\t\t: fpu sse2 aes avx2 pclmulqdq\n", True),
        ("flags\t\t: fpu sse2 avx2 pclmulqdq\n", False),  # no AES-NI
        ("flags\t\t: fpu sse2 aes avx2\n", False),  # no carry-less multiply for GHASH
        ("Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32\n", True),  # ARMv8
        ("Features\t: fp asimd evtstrm crc32\n", False),
        ("", False),
    ],
)
def test_aes_hardware_detection(text, expected):
    assert aes_hardware(text) is expected


def test_preferred_cipher_follows_the_cpu():
    assert preferred_cipher() == (AESGCM_NAME if aes_hardware() else CHACHAPOLY)


@pytest.mark.timeout(30)
def test_tcp_mesh_over_aesgcm():
    """Three parties over AESGCM links: small and multi-record messages arrive intact, and the
    links really run AESGCM."""

    async def main():
        chans = await local_tcp_mesh(3, session_id=b"aes-mesh", cipher=AESGCM_NAME, timeout=10)
        try:
            big = np.arange(3 * RECORD_SIZE // 8 + 5, dtype=np.uint64)
            for ch in chans:
                for j in range(3):
                    if j != ch.pid:
                        await ch.send(j, "small", np.full(3, ch.pid, dtype=np.uint64))
                        await ch.send(j, "big", big + np.uint64(ch.pid))
            for ch in chans:
                for j in range(3):
                    if j != ch.pid:
                        got = await ch.recv_array(j, "small", dtype=np.uint64, shape=(3,))
                        assert got.tolist() == [j] * 3
                        got = await ch.recv_array(j, "big", dtype=np.uint64, shape=big.shape)
                        assert np.array_equal(got, big + np.uint64(j))
            ciphers = {(ch.pid, j): (link.session.send.cipher, link.session.recv.cipher)
                       for ch in chans for j, link in ch._links.items()}
            assert set(ciphers.values()) == {(AESGCM_NAME, AESGCM_NAME)}, ciphers
        finally:
            for ch in chans:
                await ch.close()

    asyncio.run(main())


@pytest.mark.timeout(30)
def test_tcp_cipher_refused_on_both_ends():
    """The dialer proposes AESGCM, the listener accepts only ChaChaPoly: both ends end with
    CipherMismatchError (the dialer from the listener's status byte, the listener from its
    recorded refusal at the connect deadline)."""

    async def main():
        c0 = TcpChannel(0, 2, session_id=b"s", static_key=SKS[0], peer_keys=PKS, cipher=AESGCM_NAME,
                        timeout=2, connect_timeout=1.5)
        c1 = TcpChannel(1, 2, session_id=b"s", static_key=SKS[1], peer_keys=PKS,
                        accept_ciphers=(CHACHAPOLY,), timeout=2, connect_timeout=1.5)
        addrs = [await c.listen() for c in (c0, c1)]
        res = await asyncio.gather(c0.connect(addrs), c1.connect(addrs), return_exceptions=True)
        for c in (c0, c1):
            await c.close()
        return res

    res = asyncio.run(main())
    assert all(isinstance(r, CipherMismatchError) for r in res), res
    assert "AESGCM" in str(res[0]) and "ChaChaPoly" in str(res[1])


@pytest.mark.timeout(30)
@pytest.mark.parametrize("offered", [CHACHAPOLY, AESGCM_NAME])
def test_tcp_hello_cipher_byte_changed_in_transit(offered):
    """A man in the middle rewrites the hello's cipher byte (ChaChaPoly <-> AESGCM); the
    listener accepts both, so it runs the handshake with the rewritten cipher, and the
    handshake fails (the cipher is in the Noise protocol name): ChannelAuthError, never a
    channel on a cipher the dialer did not choose."""

    async def main():
        kw = dict(session_id=b"s", peer_keys=PKS, timeout=2, connect_timeout=1.5)
        c0 = TcpChannel(0, 2, static_key=SKS[0], cipher=offered, **kw)
        c1 = TcpChannel(1, 2, static_key=SKS[1], **kw)
        a1 = await c1.listen()

        async def relay(reader, writer, first_hook):
            try:
                first = True
                while data := await reader.read(1 << 16):
                    if first:
                        data, first = first_hook(data), False
                    writer.write(data)
                    await writer.drain()
            except ConnectionError:
                pass
            finally:
                writer.close()

        def rewrite(data: bytes) -> bytes:
            b = bytearray(data)
            assert b[:4] == b"SMPH" and b[6] in (1, 2)
            b[6] = 3 - b[6]  # 1 <-> 2
            return bytes(b)

        async def on_client(cr, cw):
            sr, sw = await asyncio.open_connection(*a1)
            await asyncio.gather(relay(cr, sw, rewrite), relay(sr, cw, lambda d: d))

        proxy = await asyncio.start_server(on_client, "127.0.0.1", 0)
        pa = proxy.sockets[0].getsockname()[:2]
        res = await asyncio.gather(c0.connect([("127.0.0.1", 0), pa]), c1.connect([("127.0.0.1", 0), a1]),
                                   return_exceptions=True)
        for c in (c0, c1):
            await c.close()
        proxy.close()
        return res

    res = asyncio.run(main())
    assert all(isinstance(r, ChannelAuthError | PeerUnavailableError) for r in res), res
    assert all(not isinstance(r, CipherMismatchError) for r in res), res
    assert any(isinstance(r, ChannelAuthError) for r in res), res
