import pytest

from mpc import Client
from mpc.node.client import ClientError
from mpc.node.manifest import generate_signing_key, verify_envelope


def test_sign_by_name_and_kwargs_and_unreachable_node():
    seed, vk = generate_signing_key()
    c = Client(["http://127.0.0.1:1"], key=seed, http_timeout=2, consortium="demo")
    m = c.sign("aggregate_sum", inputs={"bank0": {"source": "tx", "columns": ["a"]}},
               idempotency_key="x")
    got = verify_envelope(m.envelope())
    assert got.analyst_key == vk and got.body["recipients"] == ["analyst"]
    with pytest.raises(ClientError, match="unreachable"):
        c.submit(m)
    with pytest.raises(ClientError):
        Client([], key=seed)
