"""One error taxonomy: distinct classes for distinct failures, the deprecated names still
work, and the node's error codes are one set of constants whose values (a wire contract)
do not drift."""

import pytest

from mpc.node import codes
from mpc.node.client import JobFailedError
from mpc.node.config import ConfigError as OldNodeConfigError
from mpc.node.config import InsecureConfigError, NodeConfigError, load_config
from mpc.node.daemon import JobAbortError, JobFailed, error_code
from protocols.errors import (
    ConfigError,
    ParameterError,
    PartyIndexError,
    PreprocessingExhausted,
    PreprocessingUnsupported,
)


def test_classes_are_distinct_and_old_names_alias_them():
    assert ConfigError is ParameterError and OldNodeConfigError is NodeConfigError
    assert JobFailed is JobAbortError
    assert not issubclass(NodeConfigError, ParameterError) and not issubclass(ParameterError, NodeConfigError)
    assert issubclass(InsecureConfigError, NodeConfigError) and issubclass(PartyIndexError, ParameterError)
    assert issubclass(PreprocessingUnsupported, PreprocessingExhausted)
    names = [c.__name__ for c in (ParameterError, NodeConfigError, JobAbortError, JobFailedError)]
    assert len(set(names)) == len(names)


def test_node_config_errors_are_node_config_errors(tmp_path):
    with pytest.raises(NodeConfigError, match="no such config"):
        load_config(tmp_path / "missing.toml")


def test_code_values_are_the_wire_contract():
    """Spot checks with literals: a wrong constant is caught here, not only by the node tests."""
    assert codes.NODE_SHUTDOWN == "node.shutdown" and codes.NODE_RESTARTED == "node.restarted"
    assert codes.POLICY_ANALYST == "policy.analyst" and codes.SOURCE_MISSING == "source.missing"
    assert codes.PEER_UNAVAILABLE == "peer.unavailable" and codes.JOB_PARAMETERS == "job.parameters"
    assert codes.AGREEMENT_ALIGNMENT == "agreement.alignment" and codes.HTTP_ERROR == "http.error"
    assert len(codes.ALL) == len({getattr(codes, k) for k in dir(codes) if k.isupper() and k not in (
        "ALL", "REFUSED", "GENERIC", "JOB_ERROR_PREFIX")})
    assert all(c.count(".") == 1 for c in codes.ALL)


def test_error_code_maps_errors_to_codes():
    from network.errors import ChannelAuthError, PeerUnavailableError

    assert error_code(JobAbortError(codes.DELIVER_SEAL, "x")) == "deliver.seal"
    assert error_code(PeerUnavailableError("gone")) == codes.PEER_UNAVAILABLE
    assert error_code(ChannelAuthError("bad")) == codes.PEER_AUTH
    assert error_code(TimeoutError()) == codes.JOB_TIMEOUT
    # issue 14: the broker's refusal has its own code (it was job.error.BrokerRefusedError)
    from network.errors import BrokerRefusedError, BrokerUnavailableError

    assert error_code(BrokerRefusedError("no")) == "transport.broker_refused"
    assert error_code(BrokerUnavailableError("down")) == "transport.broker_unavailable"
    assert codes.generic_reason("transport.broker_refused") == \
        "a node could not use the message broker"
    assert not codes.TRANSPORT_BROKER_REFUSED.startswith(codes.REFUSED)  # failed, not refused
    assert error_code(ValueError("?")) == "job.error.ValueError" == codes.job_error(ValueError())
    assert codes.POLICY_COMPUTATION.startswith(codes.REFUSED)
    assert not codes.PEER_UNAVAILABLE.startswith(codes.REFUSED)
