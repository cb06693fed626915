import sqlite3

import numpy as np
import pytest

from mpc.node import codes
from mpc.node.config import SourceConfig
from mpc.node.datasources import DataSourceError, load_columns
from mpc.node.policy import PolicyError


def _csv(tmp_path, text, name="d.csv"):
    p = tmp_path / name
    p.write_text(text)
    return SourceConfig("tx", "csv", path=p)


def test_csv_reads_only_named_columns(tmp_path):
    src = _csv(tmp_path, "amount,secret_name,flag\n1.5,alice,0\n2,bob,1\n")
    got = load_columns(src, ["flag", "amount"])
    assert got.dtype == np.float64 and got.tolist() == [[0, 1.5], [1, 2.0]]


@pytest.mark.parametrize("text,cols,code", [
    ("amount\n1\n", ["nope"], codes.SOURCE_COLUMNS),
    ("amount\n", ["amount"], codes.SOURCE_EMPTY),
    ("", ["amount"], codes.SOURCE_EMPTY),
    ("amount\n1\nabc\n", ["amount"], codes.SOURCE_NONNUMERIC),
    ("amount,b\n1,2\n,3\n", ["amount"], codes.SOURCE_NONNUMERIC),
    ("amount\ninf\n", ["amount"], codes.SOURCE_NONNUMERIC),
])
def test_csv_errors_are_typed_and_never_show_values(tmp_path, text, cols, code):
    with pytest.raises(DataSourceError) as e:
        load_columns(_csv(tmp_path, text), cols)
    assert e.value.code == code and "abc" not in str(e.value)


def test_missing_file_and_row_limit(tmp_path):
    with pytest.raises(DataSourceError) as e:
        load_columns(SourceConfig("tx", "csv", path=tmp_path / "none.csv"), ["a"])
    assert e.value.code == codes.SOURCE_MISSING
    with pytest.raises(PolicyError, match="max_rows"):
        load_columns(_csv(tmp_path, "a\n1\n2\n3\n"), ["a"], max_rows=2)


def test_sqlite_query_and_errors(tmp_path):
    db = tmp_path / "bank.db"
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE tx (amount REAL, flag INTEGER, note TEXT)")
    con.executemany("INSERT INTO tx VALUES (?, ?, ?)", [(10.0, 0, "x"), (20.5, 1, None)])
    con.commit()
    con.close()
    src = SourceConfig("db", "sqlite", path=db, query="SELECT amount, flag, note FROM tx")
    assert load_columns(src, ["amount", "flag"]).tolist() == [[10.0, 0], [20.5, 1]]
    for cols, code in ((["missing"], codes.SOURCE_COLUMNS), (["note"], codes.SOURCE_NONNUMERIC)):
        with pytest.raises(DataSourceError) as e:
            load_columns(src, cols)
        assert e.value.code == code
    empty = SourceConfig("db", "sqlite", path=db, query="SELECT amount FROM tx WHERE 0")
    with pytest.raises(DataSourceError, match="no rows"):
        load_columns(empty, ["amount"])
    with pytest.raises(DataSourceError) as e:
        load_columns(SourceConfig("db", "sqlite", path=tmp_path / "x.db", query="SELECT 1"), ["a"])
    assert e.value.code == codes.SOURCE_MISSING


def test_parquet(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    p = tmp_path / "d.parquet"
    pq.write_table(pa.table({"a": [1.0, 2.0], "b": [3, None], "s": ["x", "y"]}), p)
    src = SourceConfig("pq", "parquet", path=p)
    assert load_columns(src, ["a"]).tolist() == [[1.0], [2.0]]
    with pytest.raises(DataSourceError) as e:
        load_columns(src, ["b"])
    assert e.value.code == codes.SOURCE_NONNUMERIC
    with pytest.raises(DataSourceError) as e:
        load_columns(src, ["zz"])
    assert e.value.code == codes.SOURCE_COLUMNS


def _pg_dsn():
    psycopg = pytest.importorskip("psycopg")
    for user in ("postgres", "root"):
        dsn = f"host=127.0.0.1 port=5432 dbname=test user={user}"
        try:
            with psycopg.connect(dsn, connect_timeout=2):
                return dsn
        except psycopg.Error:
            continue
    pytest.skip("PostgreSQL at 127.0.0.1:5432 (db test) is not reachable")


def test_postgres(tmp_path):
    import psycopg

    dsn = _pg_dsn()
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute("DROP TABLE IF EXISTS smpc_ds_test")
        c.execute("CREATE TABLE smpc_ds_test (amount double precision, flag int, note text)")
        c.execute("INSERT INTO smpc_ds_test VALUES (1.5, 0, 'a'), (2.5, 1, NULL)")
    try:
        src = SourceConfig("pg", "postgres", dsn=dsn, query="SELECT * FROM smpc_ds_test")
        assert load_columns(src, ["amount", "flag"]).tolist() == [[1.5, 0], [2.5, 1]]
        with pytest.raises(DataSourceError) as e:
            load_columns(src, ["note"])
        assert e.value.code == codes.SOURCE_NONNUMERIC
        with pytest.raises(DataSourceError) as e:
            load_columns(src, ["nope"])
        assert e.value.code == codes.SOURCE_COLUMNS
        bad = SourceConfig("pg", "postgres", dsn="host=127.0.0.1 port=1 dbname=test",
                           query="SELECT 1")
        with pytest.raises(DataSourceError) as e:
            load_columns(bad, ["a"])
        assert e.value.code == codes.SOURCE_MISSING
    finally:
        with psycopg.connect(dsn, autocommit=True) as c:
            c.execute("DROP TABLE IF EXISTS smpc_ds_test")
