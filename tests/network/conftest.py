"""Fixtures of the network tests."""

import pytest
from net_helpers import TRANSPORTS


@pytest.fixture(params=TRANSPORTS)
def transport(request) -> str:
    """The transport under test: memory, tcp, tcp-plain, mqtt, mqtt-plain."""
    return request.param
