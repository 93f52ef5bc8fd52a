"""The log as the server serves it: the signed checkpoint, tiles, entry bundles and proofs."""

from __future__ import annotations

import threading

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from moorage.log import merkle, tiles
from moorage.log.compact import CompactRange
from moorage.log.note import Checkpoint, Signer
from moorage.services.context import Context
from moorage.store.tables import checkpoints, log_entries, log_state


def current(conn: Connection) -> CompactRange:
    state = conn.execute(sa.select(log_state.c.size, log_state.c.nodes).where(log_state.c.id == 1)).first()
    if state is None:
        return CompactRange()
    return CompactRange.from_json({"size": state.size, "nodes": state.nodes})


def leaf_hashes(conn: Connection, start: int, end: int) -> list[bytes]:
    rows = conn.execute(sa.select(log_entries.c.leaf_hash).where(log_entries.c.idx >= start, log_entries.c.idx < end)
                        .order_by(log_entries.c.idx)).scalars().all()
    return [bytes(r) for r in rows]


def entries(conn: Connection, start: int, end: int) -> list[bytes]:
    rows = conn.execute(sa.select(log_entries.c.entry).where(log_entries.c.idx >= start, log_entries.c.idx < end)
                        .order_by(log_entries.c.idx)).scalars().all()
    return [bytes(r) for r in rows]


class LogService:
    """Signs checkpoints on demand (at most one per tree size, stored) and builds tiles.
    Full tiles never change, so they are kept in memory once built."""

    def __init__(self, ctx: Context, signer: Signer) -> None:
        self.ctx = ctx
        self.signer = signer
        self._tiles: dict[tuple[str, int], bytes] = {}
        self._lock = threading.Lock()

    def checkpoint(self) -> str:
        with self.ctx.db.read() as conn:
            compact = current(conn)
            note = conn.execute(sa.select(checkpoints.c.note).where(checkpoints.c.size == compact.size)).scalar()
        if note is not None:
            return str(note)
        # Every checkpoint is a head of the same append-only leaves, so any two are consistent.
        text = Checkpoint(self.signer.name, compact.size, compact.root()).text()
        note = self.signer.sign(text)
        try:
            with self.ctx.db.write() as conn:
                stored = conn.execute(sa.select(checkpoints.c.size).where(checkpoints.c.size == compact.size)).first()
                if stored is None:
                    conn.execute(checkpoints.insert().values(size=compact.size, note=note,
                                                             created_at=self.ctx.clock.now()))
                    return note
        except IntegrityError:
            pass  # another process stored this size first: serve what it stored
        with self.ctx.db.read() as conn:
            return str(conn.execute(sa.select(checkpoints.c.note).where(checkpoints.c.size == compact.size)).scalar())

    def size(self) -> int:
        with self.ctx.db.read() as conn:
            return current(conn).size

    def tile(self, level: str, n: int, width: int) -> bytes | None:
        """A tile's bytes, or None when the tree has no such tile (yet)."""
        key = (level, n)
        if width == tiles.TILE_WIDTH and key in self._tiles:
            return self._tiles[key]  # a full tile, once built, exists and never changes
        numeric = 0 if level == "entries" else int(level)
        if not tiles.tile_exists(numeric, n, width, self.size()):
            return None
        first = n * tiles.TILE_WIDTH
        with self.ctx.db.read() as conn:
            if level == "entries":
                data = tiles.encode_bundle(entries(conn, first, first + width))
            else:
                data = b"".join(tiles.tile_hashes(numeric, n, width, lambda a, b: leaf_hashes(conn, a, b)))
        if width == tiles.TILE_WIDTH:
            with self._lock:
                if len(self._tiles) > 4096:
                    self._tiles.clear()
                self._tiles[key] = data
        return data

    def inclusion(self, index: int, size: int) -> list[bytes]:
        with self.ctx.db.read() as conn:
            return merkle.inclusion_proof(index, leaf_hashes(conn, 0, size))

    def consistency(self, size1: int, size2: int) -> list[bytes]:
        with self.ctx.db.read() as conn:
            return merkle.consistency_proof(size1, leaf_hashes(conn, 0, size2))
