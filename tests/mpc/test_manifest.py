import json

import pytest

from mpc.node.manifest import (
    ManifestError,
    SignatureError,
    generate_signing_key,
    load_manifest_file,
    manifest_hash,
    sign_manifest,
    verify_envelope,
)

BODY = {
    "computation": "aggregate_sum",
    "idempotency_key": "q3",
    "recipients": ["analyst"],
    "consortium": "demo",
    "not_after": 4102444800,
    "parameters": {},
    "inputs": {"bank0": {"source": "tx", "columns": ["amount"]},
               "bank1": {"source": "tx", "columns": ["amount"]}},
}


def test_sign_verify_roundtrip_and_toml_json_hash_alike(tmp_path):
    seed, vk = generate_signing_key()
    m = sign_manifest(BODY, seed)
    got = verify_envelope(json.loads(json.dumps(m.envelope())))
    assert got.hash == m.hash and got.job_id == m.job_id and got.analyst_key == vk
    (tmp_path / "m.toml").write_text(
        'computation = "aggregate_sum"\nidempotency_key = "q3"\nrecipients = ["analyst"]\n'
        'consortium = "demo"\nnot_after = 4102444800\n'
        '[parameters]\n[inputs.bank1]\nsource = "tx"\ncolumns = ["amount"]\n'
        '[inputs.bank0]\ncolumns = ["amount"]\nsource = "tx"\n')
    assert manifest_hash(load_manifest_file(tmp_path / "m.toml")) == manifest_hash(BODY)


def test_job_id_depends_on_analyst_and_key_only():
    s1, _ = generate_signing_key()
    s2, _ = generate_signing_key()
    a = sign_manifest(BODY, s1)
    b = sign_manifest({**BODY, "parameters": {"x": 1}}, s1)
    c = sign_manifest(BODY, s2)
    assert a.job_id == b.job_id != c.job_id and a.hash != b.hash


def test_tampered_unsigned_and_malformed_are_refused():
    seed, _ = generate_signing_key()
    env = sign_manifest(BODY, seed).envelope()
    with pytest.raises(SignatureError, match="not signed"):
        verify_envelope({"manifest": env["manifest"]})
    tampered = json.loads(json.dumps(env))
    tampered["manifest"]["recipients"] = ["bank0"]
    with pytest.raises(SignatureError, match="does not verify"):
        verify_envelope(tampered)
    other, _ = generate_signing_key()
    swapped = json.loads(json.dumps(env))
    swapped["manifest"]["analyst"] = sign_manifest(BODY, other).body["analyst"]
    with pytest.raises(SignatureError):
        verify_envelope(swapped)
    with pytest.raises(ManifestError, match="computation: missing"):
        verify_envelope({"manifest": {k: v for k, v in BODY.items() if k != "computation"},
                         "signature": "00"})
    with pytest.raises(ManifestError, match="unknown field"):
        verify_envelope({"manifest": {**BODY, "evil": 1}, "signature": "00"})
    with pytest.raises(ManifestError):
        verify_envelope(["not", "a", "dict"])
    with pytest.raises(ManifestError, match="NaN"):
        sign_manifest({**BODY, "parameters": {"lr": float("nan")}}, seed)
