"""T10: the Noise implementation reproduces the cacophony test vectors byte for byte."""

import json
from pathlib import Path

import pytest

from network.secure import HandshakeState

REPO_ROOT = Path(__file__).resolve().parents[2]
VECTORS = REPO_ROOT.parent / "shared" / "vectors" / "noise-cacophony-subset.json"


def _load():
    if not VECTORS.exists():
        return []
    return json.loads(VECTORS.read_text())["vectors"]


_VECTORS = _load()


def _h(v, key):
    return bytes.fromhex(v[key]) if key in v else None


@pytest.mark.skipif(not VECTORS.exists(), reason=f"Noise vectors not found at {VECTORS}")
@pytest.mark.parametrize("v", _VECTORS, ids=[v["name"] for v in _VECTORS])
def test_cacophony_vector(v):
    assert v["dh"] == "25519" and v["cipher"] == "ChaChaPoly"
    init = HandshakeState(
        v["pattern"], True, _h(v, "init_prologue"), s=_h(v, "init_static"),
        e=_h(v, "init_ephemeral"), rs=_h(v, "init_remote_static"), hash_name=v["hash"],
    )
    resp = HandshakeState(
        v["pattern"], False, _h(v, "resp_prologue"), s=_h(v, "resp_static"),
        e=_h(v, "resp_ephemeral"), rs=_h(v, "resp_remote_static"), hash_name=v["hash"],
    )
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
                assert resp.complete and init.handshake_hash == resp.handshake_hash
                i_send, i_recv = init.split()
                r_send, r_recv = resp.split()
        else:
            w, r = (i_send, r_recv) if from_init else (r_send, i_recv)
            ct = w.encrypt(b"", payload)
            assert ct == expected, f"transport message {k}"
            assert r.decrypt(b"", ct) == payload


def test_kk_blake2b_vector_present():
    """smpc's own suite must be among the vectors (guards against a silently empty file)."""
    if not VECTORS.exists():
        pytest.skip(f"Noise vectors not found at {VECTORS}")
    assert "Noise_KK_25519_ChaChaPoly_BLAKE2b" in [v["name"] for v in _VECTORS]
