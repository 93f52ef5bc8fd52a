"""Direct access to a test server's database, SQLite or PostgreSQL alike (for inspection)."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tests.support.server import database_url


class TestDB:
    """A DB-API connection with ``?`` placeholders on both backends."""

    __test__ = False  # not a pytest test class

    def __init__(self, data_dir: Path, *, readonly: bool = False) -> None:
        url = database_url(data_dir)
        self.pg = url is not None
        if url is not None:
            import psycopg

            self.conn: Any = psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"))
        elif readonly:
            self.conn = sqlite3.connect(f"file:{data_dir / 'moorage.db'}?mode=ro", uri=True, timeout=10)
        else:
            self.conn = sqlite3.connect(data_dir / "moorage.db", timeout=10)

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        if self.pg:
            return self.conn.execute(sql.replace("?", "%s"), tuple(params))
        return self.conn.execute(sql, tuple(params))

    def commit(self) -> None:
        self.conn.commit()

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> TestDB:
        return self

    def __exit__(self, *exc: object) -> None:
        if exc[0] is None:
            self.commit()
        self.close()
