import pytest

from mpc.node import codes
from mpc.node.config import load_config, write_consortium
from mpc.node.jobs import REGISTRY, JobParameterError
from mpc.node.manifest import generate_signing_key, load_signing_key, sign_manifest
from mpc.node.policy import PolicyError, check_manifest, check_rows


@pytest.fixture
def setup(tmp_path):
    r = write_consortium(tmp_path, 3, computations=["aggregate_sum"], min_group_size=5,
                         max_rows=100,
                         sources={i: {"tx": {"kind": "csv", "path": "tx.csv"}} for i in range(3)})
    return load_config(r["configs"][0]), load_signing_key(r["analyst_key"])


def _body(**kw):
    b = {"computation": "aggregate_sum", "idempotency_key": "k", "recipients": ["analyst"],
         "inputs": {f"bank{i}": {"source": "tx", "columns": ["a"]} for i in range(3)},
         "consortium": "demo", "not_after": 4102444800}
    b.update(kw)
    return b


def test_allowed_manifest_passes(setup):
    cfg, key = setup
    check_manifest(sign_manifest(_body(), key), cfg, REGISTRY)


@pytest.mark.parametrize("kw,code", [
    ({"computation": "aggregate_mean"}, codes.POLICY_COMPUTATION),
    ({"computation": "teleport"}, codes.POLICY_UNKNOWN_COMPUTATION),
    ({"recipients": ["mallory"]}, codes.POLICY_RECIPIENT),
    ({"consortium": "other"}, codes.POLICY_CONSORTIUM),
    ({"inputs": {"bank0": {"source": "nope", "columns": ["a"]}}}, codes.SOURCE_UNKNOWN),
    ({"inputs": {"bank9": {"source": "tx", "columns": ["a"]}}}, codes.POLICY_PARTY),
])
def test_refusals_have_codes(setup, kw, code):
    cfg, key = setup
    with pytest.raises(PolicyError) as e:
        check_manifest(sign_manifest(_body(**kw), key), cfg, REGISTRY)
    assert e.value.code == code


def test_unknown_analyst(setup):
    cfg, _ = setup
    stranger, _ = generate_signing_key()
    with pytest.raises(PolicyError) as e:
        check_manifest(sign_manifest(_body(), stranger), cfg, REGISTRY)
    assert e.value.code == codes.POLICY_ANALYST


def test_parameters_and_widths_checked(setup):
    cfg, key = setup
    with pytest.raises(JobParameterError, match="parameters.bogus"):
        check_manifest(sign_manifest(_body(parameters={"bogus": 1}), key), cfg, REGISTRY)
    inputs = {f"bank{i}": {"source": "tx", "columns": ["a"] * (i + 1)} for i in range(3)}
    with pytest.raises(JobParameterError, match="same number"):
        check_manifest(sign_manifest(_body(inputs=inputs), key), cfg, REGISTRY)


def test_row_limits(setup):
    cfg, _ = setup
    check_rows(50, cfg)
    for rows, code in ((4, codes.POLICY_MIN_GROUP_SIZE), (101, codes.POLICY_MAX_ROWS)):
        with pytest.raises(PolicyError) as e:
            check_rows(rows, cfg)
        assert e.value.code == code
