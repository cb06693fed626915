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
