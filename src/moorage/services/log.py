"""The log as the server serves it: the signed checkpoint, tiles, entry bundles and proofs."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from moorage.log import merkle, tiles
from moorage.log.compact import CompactRange
from moorage.log.entry import encode_entry
from moorage.log.note import Checkpoint, NoteError, Signer, Verifier
from moorage.services.context import Context
from moorage.store.tables import checkpoints, events, log_entries, log_state

_BATCH = 1000


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


@dataclass
class LogCheck:
    """What ``check_log`` found: the tree its leaves make, and every way the stored log does
    not add up (at most ``limit`` problems are described; ``more`` counts the rest)."""

    size: int = 0
    root: bytes = b""
    checkpoints: int = 0
    events: int = 0
    problems: list[str] = field(default_factory=list)
    more: int = 0

    def problem(self, text: str, limit: int) -> None:
        if len(self.problems) < limit:
            self.problems.append(text)
        else:
            self.more += 1


def check_log(conn: Connection, verifier: Verifier | None = None, *, against_events: bool = True,
              limit: int = 100) -> LogCheck:
    """The stored log as a verifier would rebuild it: every leaf hashes its entry, the indexes
    run 0..n-1, the state's size and root are the leaves', and every stored checkpoint is a head
    of this tree (signed by ``verifier``'s key when one is given). With ``against_events``, each
    entry is also the encoding of its event (docs/log.md) and every event has its entry: what
    `moorage admin fsck` checks; `moorage db migrate-from-sqlite` checks the tree alone."""
    found = LogCheck()
    notes = {int(size): str(note) for size, note in conn.execute(sa.select(checkpoints.c.size, checkpoints.c.note))}
    roots: dict[int, bytes] = {}
    compact = CompactRange()
    if 0 in notes:
        roots[0] = compact.root()
    query = (sa.select(log_entries.c.idx, log_entries.c.serial, log_entries.c.entry, log_entries.c.leaf_hash,
                       events.c.serial.label("event_serial"), events.c.created_at, events.c.actor, events.c.action,
                       events.c.subject, events.c.project, events.c.payload)
             .select_from(log_entries.outerjoin(events, events.c.serial == log_entries.c.serial))
             .order_by(log_entries.c.idx))
    for row in conn.execution_options(yield_per=_BATCH).execute(query):
        idx, entry, leaf = int(row.idx), bytes(row.entry), bytes(row.leaf_hash)
        if idx != compact.size:
            found.problem(f"the log has no entry {compact.size} (the next is {idx})", limit)
        if merkle.leaf_hash(entry) != leaf:
            found.problem(f"the log entry {idx} does not match its leaf hash", limit)
        if against_events:
            if row.event_serial is None:
                found.problem(f"the log entry {idx} is of event {row.serial}, which is not in the events table",
                              limit)
            elif encode_entry(idx, int(row.event_serial), row.created_at, row.actor, row.action, row.subject,
                              row.project, row.payload) != entry:
                found.problem(f"the log entry {idx} is not what event {row.serial} ({row.action}) says", limit)
        compact.append(leaf)
        if compact.size in notes:
            roots[compact.size] = compact.root()
    found.size, found.root = compact.size, compact.root()
    state = current(conn)
    if (state.size, state.root()) != (found.size, found.root):
        found.problem(f"the log's state says {state.size} entries with root {state.root().hex()}, its leaves give "
                      f"{found.size} with root {found.root.hex()}", limit)
    if against_events:
        found.events = int(conn.execute(sa.select(sa.func.count()).select_from(events)).scalar_one())
        unlogged = conn.execute(
            sa.select(events.c.serial, events.c.action)
            .select_from(events.outerjoin(log_entries, log_entries.c.serial == events.c.serial))
            .where(log_entries.c.idx.is_(None)).order_by(events.c.serial))
        for serial, action in unlogged:
            found.problem(f"event {serial} ({action}) has no log entry", limit)
    for size, note in sorted(notes.items()):
        try:
            text = verifier.verify(note) if verifier is not None else note.partition("\n\n")[0] + "\n"
            checkpoint = Checkpoint.parse(text)
        except NoteError as exc:
            found.problem(f"the stored checkpoint of size {size} does not verify with the log key: {exc}", limit)
            continue
        if checkpoint.size != size or roots.get(size) != checkpoint.root:
            found.problem(f"the stored checkpoint of size {size} is not a head of the log", limit)
    found.checkpoints = len(notes)
    return found
