"""review4 (issue 16): the TCP hello's cipher byte against a stranger without keys.

A stranger that knows the session id (it travels in the clear in every hello) connects to a
listener first, claiming to be party 0, with a cipher the listener refuses (AESGCM when it
accepts only ChaChaPoly), an unknown cipher byte, and an accepted cipher with a garbage Noise
message. Each is refused, dropped and counted (sender unknown: -1); none is charged to party
0's link or ends the setup: the genuine party 0 then connects on ChaChaPoly and its message
arrives (T27 for the cipher negotiation). Checked on main too (passes): a regression guard
that a CipherMismatchError from an unauthenticated connection stays non-terminal."""

from __future__ import annotations

import asyncio
import time

import pytest

from network.keys import generate_keypair
from network.secure import CHACHAPOLY, CIPHER_IDS, PROTOCOL_VERSION
from network.tcp import _HELLO, HELLO_MAGIC, TcpChannel

KEYS = [generate_keypair() for _ in range(2)]
SKS = [sk for sk, _ in KEYS]
PKS = [pk for _, pk in KEYS]


@pytest.mark.timeout(20)
def test_stranger_hellos_with_refused_or_unknown_ciphers_never_abort():
    async def main():
        kw = dict(session_id=b"sess", peer_keys=PKS, timeout=2, connect_timeout=5)
        c0 = TcpChannel(0, 2, static_key=SKS[0], cipher=CHACHAPOLY, **kw)
        c1 = TcpChannel(1, 2, static_key=SKS[1], accept_ciphers=(CHACHAPOLY,), **kw)
        addrs = [await c.listen() for c in (c0, c1)]
        statuses = []
        for cid, tail in ((CIPHER_IDS["AESGCM"], b""), (9, b""),
                          (CIPHER_IDS[CHACHAPOLY], b"\x40\x00" + bytes(64))):
            r, w = await asyncio.open_connection(*addrs[1])
            w.write(_HELLO.pack(HELLO_MAGIC, PROTOCOL_VERSION, cid, 0, 1) + b"\x04sess" + tail)
            await w.drain()
            statuses.append(await r.read(1))
            w.close()
        await asyncio.gather(c0.connect(addrs), c1.connect(addrs))
        await c0.send(1, "t", b"ok")
        got = await c1.recv(0, "t")
        t_end = time.monotonic() + 5
        while c1.link_stats()["rejected"] < 3 and time.monotonic() < t_end:
            await asyncio.sleep(0.01)
        out = (statuses, got, c1.link_stats()["rejected_by_peer"], dict(c1._peer_error),
               c1._links[0].session.send.cipher)
        for c in (c0, c1):
            await c.close()
        return out

    statuses, got, rejected, peer_error, cipher = asyncio.run(main())
    assert statuses == [b"\x03", b"\x03", b"\x01"]  # cipher refused x 2, handshake failed
    assert got == b"ok" and cipher == CHACHAPOLY
    assert rejected == {-1: 3} and not peer_error
