import socket

import pytest


def _broker_up(host: str = "127.0.0.1", port: int = 1883) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def mqtt_broker():
    if not _broker_up():
        pytest.skip("no MQTT broker answers on 127.0.0.1:1883 (.ci/run starts one)")
    return ("127.0.0.1", 1883)


@pytest.fixture
def no_trusted_dealer(monkeypatch):
    """Fail any test that draws an item from the insecure in-process dealer (for tests of
    the dealer-free sources and the dealer node)."""
    from protocols.preprocessing.trusted_dealer import InsecureTrustedDealer

    def refuse(*a, **k):
        raise AssertionError("the insecure trusted dealer was asked for an item")

    monkeypatch.setattr(InsecureTrustedDealer, "take", refuse)
    monkeypatch.setattr(InsecureTrustedDealer, "take_parts", refuse)


@pytest.fixture
def field_random_bits(monkeypatch):
    """Make the in-process dealer declare no edaBits over fields, as the dealer node does,
    so GF(p) comparisons take their random-bit circuit (Catrina-de Hoogh in field
    products); a request for them anyway fails the test."""
    from protocols.errors import PreprocessingUnsupported
    from protocols.preprocessing.trusted_dealer import _DealerView

    plain_supports, plain = _DealerView.supports, _DealerView.edabits

    def supports(self, kind):
        return not (kind == "edabits" and self.d.domain.is_field) and plain_supports(self, kind)

    async def edabits(self, shape, bits=64):
        if self.d.domain.is_field:
            raise PreprocessingUnsupported("test: no edaBits for fields")
        return await plain(self, shape, bits)

    monkeypatch.setattr(_DealerView, "supports", supports)
    monkeypatch.setattr(_DealerView, "edabits", edabits)
