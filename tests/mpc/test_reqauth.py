"""mpc.node.reqauth against an allowed but hostile key (T25): the replay cache is shared by
every key, so one key must not be able to fill it and lock the others out."""

import time

import pytest

from mpc.node.manifest import generate_signing_key
from mpc.node.reqauth import RequestAuthError, RequestVerifier, sign_request

NODE = "127.0.0.1:7100"  # the node the requests are addressed to (its Host)


def _keys(k):
    return [generate_signing_key() for _ in range(k)]


def test_one_key_cannot_fill_the_replay_cache_for_the_others():
    """A flooding analyst (every request validly signed, each with a fresh nonce: a rate
    limiter answers them 429 only after the nonce is recorded) gets `auth.busy` once it holds
    its share of the cache; the other keys' requests are still accepted. Before the per-key
    share, the flooder's requests filled the whole cache and every other key got auth.busy
    for the next 2 * max_skew seconds."""
    (a_seed, a_vk), (b_seed, b_vk), (c_seed, c_vk) = _keys(3)
    v = RequestVerifier({a_vk, b_vk, c_vk}, max_skew=60, cache_max=30)
    now = time.time()
    accepted, busy = 0, 0
    for _ in range(100):
        h = sign_request(a_seed, "GET", "/status", now=now, node=NODE)
        try:
            v.verify("GET", "/status", b"", h, now=now, host=NODE)
            accepted += 1
        except RequestAuthError as e:
            assert e.code == "auth.busy"
            busy += 1
    assert 0 < accepted <= 10 and busy == 100 - accepted  # a's share: 30 // 3 keys
    for seed, vk in ((b_seed, b_vk), (c_seed, c_vk)):  # the others are not locked out
        for _ in range(10):
            h = sign_request(seed, "GET", "/status", now=now, node=NODE)
            assert v.verify("GET", "/status", b"", h, now=now, host=NODE) == vk
    # replay protection is unchanged: a recorded request is refused as a replay
    with pytest.raises(RequestAuthError) as e:
        v.verify("GET", "/status", b"", h, now=now, host=NODE)
    assert e.value.code == "auth.replay"
    # entries expire after 2 * max_skew: the flooder's share is free again
    later = now + 121
    h = sign_request(a_seed, "GET", "/status", now=later, node=NODE)
    assert v.verify("GET", "/status", b"", h, now=later, host=NODE) == a_vk
    with pytest.raises(RequestAuthError) as e:
        v.verify("GET", "/status", b"", h, now=later, host=NODE)
    assert e.value.code == "auth.replay"


def test_a_signature_binds_the_node_it_was_addressed_to():
    """Issue 14: smpc-request-v2 signs the node the client addressed (its Host). The same
    headers checked by another node (another Host) are refused with `auth.node`, a request
    signed without the binding (v1) with `auth.unbound`, and a rewritten X-Smpc-Node header
    breaks the signature."""
    (seed, vk), = _keys(1)
    now = time.time()
    node_b, node_c = "127.0.0.1:7101", "127.0.0.1:7102"
    b, c = (RequestVerifier({vk}, max_skew=60) for _ in range(2))
    h = sign_request(seed, "POST", "/jobs", b"{}", now=now, node=node_b)
    assert h["X-Smpc-Node"] == node_b
    with pytest.raises(RequestAuthError) as e:  # replayed to node c, Host rewritten to c's
        c.verify("POST", "/jobs", b"{}", h, now=now, host=node_c)
    assert e.value.code == "auth.node"
    assert b.verify("POST", "/jobs", b"{}", h, now=now, host=node_b) == vk
    with pytest.raises(RequestAuthError) as e:  # the node header rewritten to c's
        c.verify("POST", "/jobs", b"{}", {**h, "X-Smpc-Node": node_c}, now=now, host=node_c)
    assert e.value.code == "auth.signature"
    legacy = sign_request(seed, "POST", "/jobs", b"{}", now=now)  # v1: no node bound
    assert "X-Smpc-Node" not in legacy
    with pytest.raises(RequestAuthError) as e:
        b.verify("POST", "/jobs", b"{}", legacy, now=now, host=node_b)
    assert e.value.code == "auth.unbound"
    # the Host comparison ignores case (the node lowercases it), nothing else
    h = sign_request(seed, "GET", "/status", now=now, node="LocalHost:7101")
    assert b.verify("GET", "/status", b"", h, now=now, host="localhost:7101") == vk


def test_node_authority_is_the_host_header_the_client_sends():
    from mpc.node.client import Client, ClientError
    from mpc.node.reqauth import node_authority

    assert node_authority("http://127.0.0.1:7100") == "127.0.0.1:7100"
    assert node_authority("https://User@Bank.Example:7100/") == "bank.example:7100"
    assert node_authority("https://[::1]:7100") == "[::1]:7100"
    for bad in ("127.0.0.1:7100", "localhost:7100", "", "/jobs"):
        with pytest.raises(ValueError):
            node_authority(bad)
    (seed, _), = _keys(1)
    with pytest.raises(ClientError, match="host:port"):
        Client(["localhost:7100"], key=seed)
