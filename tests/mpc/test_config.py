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


def test_consortium_cipher(tmp_path):
    """consortium.cipher (issue 15): ChaChaPoly by default (the fingerprint of such a consortium
    is unchanged), AESGCM on TCP (part of the fingerprint, so a node configured otherwise fails
    the per-job agreement), refused over MQTT and when unknown, by field."""
    from network.keys import load_private_key, public_key

    def fp(c):
        return c.fingerprint(public_key(load_private_key(c.key_file)))

    plain = [load_config(p) for p in write_consortium(tmp_path / "a", 2)["configs"]]
    assert [c.cipher for c in plain] == ["ChaChaPoly"] * 2
    info = write_consortium(tmp_path / "b", 2, cipher="AESGCM")
    aes = [load_config(p) for p in info["configs"]]
    assert [c.cipher for c in aes] == ["AESGCM"] * 2 and fp(aes[0]) == fp(aes[1])
    p = info["configs"][0]
    _edit(p, 'cipher = "AESGCM"', 'cipher = "ChaChaPoly"')
    assert fp(load_config(p)) != fp(aes[1])
    _edit(p, 'cipher = "ChaChaPoly"', 'cipher = "ROT13"')
    with pytest.raises(ConfigError, match=re.escape("consortium.cipher")):
        load_config(p)
    _edit(p, 'cipher = "ROT13"', 'cipher = "AESGCM"')
    _edit(p, 'transport = "tcp"', 'transport = "mqtt"')
    with pytest.raises(ConfigError, match=re.escape("consortium.cipher") + ".*tcp' only"):
        load_config(p)


def test_init_writes_the_cipher(tmp_path, capsys):
    from mpc.cli.main import main

    assert main(["init", "--parties", "2", "--out", str(tmp_path / "a"), "--cipher", "AESGCM"]) == 0
    assert load_config(tmp_path / "a" / "bank1.toml").cipher == "AESGCM"
    assert main(["init", "--parties", "2", "--out", str(tmp_path / "b")]) == 0
    assert load_config(tmp_path / "b" / "bank1.toml").cipher == "ChaChaPoly"
    assert main(["init", "--parties", "2", "--out", str(tmp_path / "c"), "--cipher", "AESGCM",
                 "--transport", "mqtt"]) != 0
    assert "--cipher AESGCM applies to --transport tcp" in capsys.readouterr().err
    assert not (tmp_path / "c").exists()


def test_free_ports_are_outside_the_ephemeral_range():
    """write_consortium's ports come from below the kernel's ephemeral range, which outgoing
    connections draw from (a port from bind(0) was taken by one before the node bound it)."""
    import socket

    from mpc.node.consortium import _ephemeral_low, _free_port

    low = _ephemeral_low()
    ports = {_free_port() for _ in range(20)}
    assert all(10_000 <= p < low for p in ports) and len(ports) > 1, ports
    for p in list(ports)[:3]:
        with socket.socket() as s:
            s.bind(("127.0.0.1", p))  # free when returned
