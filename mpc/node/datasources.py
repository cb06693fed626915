"""A node's own data: CSV and Parquet files, SQL queries against SQLite and PostgreSQL.

Sources are named in the node config; a job names a source and columns, and the node reads
only those columns (for SQL: `SELECT "a", "b" FROM (<configured query>)`, read-only) into a
float64 array of shape (rows, columns). Every problem is a `DataSourceError` with a code:
`source.missing` (no file / database unreachable), `source.columns` (a named column does not
exist), `source.empty` (no rows), `source.nonnumeric` (a value is empty, NULL, not a number
or not finite), `source.unavailable` (an optional driver is not installed). Values never
appear in error messages: they name the column and row only.

Optional drivers: PostgreSQL needs `psycopg` (3.x), Parquet needs `pyarrow`.
"""

from __future__ import annotations

import csv
import math
import sqlite3
from collections.abc import Sequence

import numpy as np

from mpc.node import codes
from mpc.node.config import SourceConfig
from network.errors import SmpcError


class DataSourceError(SmpcError):
    """A data source could not provide the requested columns as numbers. `code` names why."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


def load_columns(src: SourceConfig, columns: Sequence[str], *, max_rows: int | None = None
                 ) -> np.ndarray:
    """The named columns of `src` as float64 (rows, len(columns)); see the module docstring."""
    if not columns:
        raise DataSourceError(codes.SOURCE_COLUMNS, f"source {src.name!r}: no columns requested")
    if len(set(columns)) != len(columns):
        raise DataSourceError(codes.SOURCE_COLUMNS, f"source {src.name!r}: a column is named twice")
    reader = {"csv": _csv, "sqlite": _sqlite, "postgres": _postgres, "parquet": _parquet}[src.kind]
    rows = reader(src, list(columns), max_rows)
    if rows.shape[0] == 0:
        raise DataSourceError(codes.SOURCE_EMPTY, f"source {src.name!r} has no rows")
    if max_rows is not None and rows.shape[0] > max_rows:
        from mpc.node.policy import PolicyError

        raise PolicyError(codes.POLICY_MAX_ROWS, f"source {src.name!r} has more than "
                          f"policy.max_rows = {max_rows} rows")
    return rows


def _number(v, src: str, col: str, row: int) -> float:
    if v is None or isinstance(v, bool) or (isinstance(v, str) and not v.strip()):
        raise DataSourceError(codes.SOURCE_NONNUMERIC, f"source {src!r}: column {col!r} row {row} is "
                              "empty / NULL")
    try:
        x = float(v)
    except (TypeError, ValueError):
        raise DataSourceError(codes.SOURCE_NONNUMERIC, f"source {src!r}: column {col!r} row {row} is "
                              "not a number") from None
    if not math.isfinite(x):
        raise DataSourceError(codes.SOURCE_NONNUMERIC, f"source {src!r}: column {col!r} row {row} is "
                              "not finite")
    return x


def _check_columns(src: SourceConfig, have: Sequence[str], want: Sequence[str]) -> None:
    missing = [c for c in want if c not in have]
    if missing:
        raise DataSourceError(codes.SOURCE_COLUMNS, f"source {src.name!r} has no column(s) {missing} "
                              f"(it has {list(have)})")


def _to_array(src: SourceConfig, cols: list[str], rows) -> np.ndarray:
    out = [[_number(v, src.name, c, i) for v, c in zip(r, cols, strict=True)]
           for i, r in enumerate(rows, start=1)]
    return np.asarray(out, dtype=np.float64).reshape(len(out), len(cols))


def _limit(max_rows: int | None):
    return None if max_rows is None else max_rows + 1


def _csv(src: SourceConfig, cols: list[str], max_rows: int | None) -> np.ndarray:
    try:
        f = open(src.path, newline="", encoding="utf-8")  # noqa: SIM115
    except OSError as e:
        raise DataSourceError(codes.SOURCE_MISSING, f"source {src.name!r}: {src.path}: "
                              f"{e.strerror}") from None
    with f:
        r = csv.reader(f)
        header = next(r, None)
        if header is None:
            raise DataSourceError(codes.SOURCE_EMPTY, f"source {src.name!r}: {src.path} is empty")
        header = [h.strip() for h in header]
        _check_columns(src, header, cols)
        idx = [header.index(c) for c in cols]
        rows = []
        lim = _limit(max_rows)
        for line in r:
            if not line:
                continue
            if len(line) != len(header):
                raise DataSourceError(codes.SOURCE_NONNUMERIC, f"source {src.name!r}: row "
                                      f"{len(rows) + 1} has {len(line)} fields, header has "
                                      f"{len(header)}")
            rows.append([line[i] for i in idx])
            if lim is not None and len(rows) >= lim:
                break
    return _to_array(src, cols, rows)


def _sqlite(src: SourceConfig, cols: list[str], max_rows: int | None) -> np.ndarray:
    if not src.path.exists():
        raise DataSourceError(codes.SOURCE_MISSING, f"source {src.name!r}: {src.path}: no such "
                              "database")
    try:
        db = sqlite3.connect(f"file:{src.path}?mode=ro", uri=True)
    except sqlite3.Error as e:
        raise DataSourceError(codes.SOURCE_MISSING, f"source {src.name!r}: {e}") from None
    try:
        cur = db.execute(f"SELECT * FROM ({src.query}) LIMIT 0")  # noqa: S608 (operator's query)
        _check_columns(src, [d[0] for d in cur.description], cols)
        sel = ", ".join('"' + c.replace('"', '""') + '"' for c in cols)
        q = f"SELECT {sel} FROM ({src.query})"  # noqa: S608 (names checked against the query)
        if max_rows is not None:
            q += f" LIMIT {int(max_rows) + 1}"
        rows = db.execute(q).fetchall()
    except sqlite3.Error as e:
        raise DataSourceError(codes.SOURCE_MISSING, f"source {src.name!r}: query failed: "
                              f"{type(e).__name__}") from None
    finally:
        db.close()
    return _to_array(src, cols, rows)


def _postgres(src: SourceConfig, cols: list[str], max_rows: int | None) -> np.ndarray:
    try:
        import psycopg
        from psycopg import sql
    except ImportError:
        raise DataSourceError(codes.SOURCE_UNAVAILABLE, f"source {src.name!r}: PostgreSQL sources "
                              "need psycopg (pip install 'psycopg[binary]')") from None
    try:
        with psycopg.connect(src.dsn, connect_timeout=5) as conn:
            conn.read_only = True
            with conn.cursor() as cur:
                cur.execute(sql.SQL("SELECT * FROM ({}) AS q LIMIT 0").format(sql.SQL(src.query)))
                _check_columns(src, [d.name for d in cur.description], cols)
                q = sql.SQL("SELECT {} FROM ({}) AS q").format(
                    sql.SQL(", ").join(sql.Identifier(c) for c in cols), sql.SQL(src.query))
                if max_rows is not None:
                    q = q + sql.SQL(" LIMIT {}").format(sql.Literal(int(max_rows) + 1))
                cur.execute(q)
                rows = cur.fetchall()
    except psycopg.OperationalError as e:
        raise DataSourceError(codes.SOURCE_MISSING, f"source {src.name!r}: cannot connect: "
                              f"{str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
    except psycopg.Error as e:
        raise DataSourceError(codes.SOURCE_MISSING, f"source {src.name!r}: query failed: "
                              f"{type(e).__name__}") from None
    return _to_array(src, cols, rows)


def _parquet(src: SourceConfig, cols: list[str], max_rows: int | None) -> np.ndarray:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise DataSourceError(codes.SOURCE_UNAVAILABLE, f"source {src.name!r}: Parquet sources need "
                              "pyarrow (pip install pyarrow)") from None
    if not src.path.exists():
        raise DataSourceError(codes.SOURCE_MISSING, f"source {src.name!r}: {src.path}: no such file")
    try:
        schema = pq.read_schema(src.path)
        _check_columns(src, schema.names, cols)
        table = pq.read_table(src.path, columns=cols)
    except DataSourceError:
        raise
    except Exception as e:  # pyarrow raises many untyped errors
        raise DataSourceError(codes.SOURCE_MISSING, f"source {src.name!r}: cannot read Parquet: "
                              f"{type(e).__name__}") from None
    if max_rows is not None:
        table = table.slice(0, max_rows + 1)
    columns = [table.column(c).to_pylist() for c in cols]
    return _to_array(src, cols, zip(*columns, strict=True))
