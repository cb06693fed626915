"""mpc.node.reqauth against an allowed but hostile key (T25): the replay cache is shared by
every key, so one key must not be able to fill it and lock the others out."""

import time

import pytest

from mpc.node.manifest import generate_signing_key
from mpc.node.reqauth import RequestAuthError, RequestVerifier, sign_request


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
        h = sign_request(a_seed, "GET", "/status", now=now)
        try:
            v.verify("GET", "/status", b"", h, now=now)
            accepted += 1
        except RequestAuthError as e:
            assert e.code == "auth.busy"
            busy += 1
    assert 0 < accepted <= 10 and busy == 100 - accepted  # a's share: 30 // 3 keys
    for seed, vk in ((b_seed, b_vk), (c_seed, c_vk)):  # the others are not locked out
        for _ in range(10):
            h = sign_request(seed, "GET", "/status", now=now)
            assert v.verify("GET", "/status", b"", h, now=now) == vk
    # replay protection is unchanged: a recorded request is refused as a replay
    with pytest.raises(RequestAuthError) as e:
        v.verify("GET", "/status", b"", h, now=now)
    assert e.value.code == "auth.replay"
    # entries expire after 2 * max_skew: the flooder's share is free again
    later = now + 121
    h = sign_request(a_seed, "GET", "/status", now=later)
    assert v.verify("GET", "/status", b"", h, now=later) == a_vk
    with pytest.raises(RequestAuthError) as e:
        v.verify("GET", "/status", b"", h, now=later)
    assert e.value.code == "auth.replay"
