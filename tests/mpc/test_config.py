import re

import pytest

from mpc.node.config import ConfigError, load_config
from mpc.node.consortium import write_consortium


@pytest.fixture
def consortium(tmp_path):
    return write_consortium(tmp_path, 3, sources={0: {"tx": {"kind": "csv", "path": "tx.csv"}}})


def _edit(path, old, new):
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new, 1))


def test_init_configs_load_and_agree(consortium):
    cfgs = [load_config(p) for p in consortium["configs"]]
    assert [c.index for c in cfgs] == [0, 1, 2] and all(c.n == 3 for c in cfgs)
    from network.keys import load_private_key, public_key

    fps = {c.fingerprint(public_key(load_private_key(c.key_file))) for c in cfgs}
    assert len(fps) == 1  # every node derives the same consortium fingerprint
    assert cfgs[0].sources["tx"].path.name == "tx.csv" and cfgs[0].insecure_options() == []
    assert "private" not in consortium["configs"][0].read_text().lower()


@pytest.mark.parametrize("old,new,field", [
    ('index = 0', 'index = 7', "node.index"),
    ('listen = "127.0.0.1:', 'listen = "nohost', "node.listen"),
    ('api = "127.0.0.1', 'api = "10.0.0.1', "node.api"),
    ('scheme = "additive"', 'scheme = "magic"', "consortium.scheme"),
    ('transport = "tcp"', 'transport = "carrier-pigeon"', "consortium.transport"),
    ('public_key = "x25519:', 'public_key = "x25519:00', "peers[0].public_key"),
    ('connect = 30', 'connect = -1', "timeouts.connect"),
    ('kind = "csv"', 'kind = "excel"', "sources.tx.kind"),
    ('min_group_size = 1', 'min_group_size = "ten"', "policy.min_group_size"),
    ('analyst_keys = ["ed25519:', 'analyst_keys = ["ed25519:zz', "policy.analyst_keys[0]"),
    ('[node]', '[node]\nprivate_key = "abc"', "node.private_key"),
    ('[policy]', '[sources.pg]\nkind = "postgres"\nquery = "select 1"\n'
     'dsn = "host=x password=hunter2"\n\n[policy]', "sources.pg.dsn"),
])
def test_bad_field_is_named(consortium, old, new, field):
    p = consortium["configs"][0]
    _edit(p, old, new)
    with pytest.raises(ConfigError, match=re.escape(field)):
        load_config(p)


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(ConfigError, match="no such config"):
        load_config(tmp_path / "nope.toml")
    (tmp_path / "bad.toml").write_text("[node\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(tmp_path / "bad.toml")


def test_insecure_options_are_named(consortium):
    p = consortium["configs"][0]
    _edit(p, 'broker =', 'preprocessing = "shared_seed_dealer"\nbroker =')
    _edit(p, "max_rows", "max_rows")
    p.write_text(p.read_text() + "\n[insecure]\nplaintext_channels = true\n")
    bad = load_config(p).insecure_options()
    assert any("plaintext_channels" in b for b in bad)
    assert any("shared_seed_dealer" in b for b in bad)


def test_dealer_needs_explicit_allow_and_shamir_threshold(tmp_path):
    r = write_consortium(tmp_path / "a", 3)
    p = r["configs"][1]
    _edit(p, 'broker =', 'preprocessing = "dealer"\nbroker =')
    assert any("allow_dealer_node" in b for b in load_config(p).insecure_options())
    p.write_text(p.read_text() + "\n[insecure]\nallow_dealer_node = true\n")
    assert load_config(p).insecure_options() == []
    r = write_consortium(tmp_path / "b", 3, scheme="shamir")
    p = r["configs"][0]
    assert load_config(p).t == 1 and load_config(p).preprocessing == "dn07"
    _edit(p, 'scheme = "shamir"', 'scheme = "shamir"\nthreshold = 2')
    assert any("threshold" in b for b in load_config(p).insecure_options())
