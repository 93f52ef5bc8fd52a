"""The clocks that read the time: the system's, and one a number of seconds ahead of it.

The domain only names the Clock protocol (domain/clock.py); reading the time is I/O, so the
clocks that do it live here, where the context is assembled. The offset clock is for tests
of a real server process: they write an offset to a file instead of sleeping through a
72-hour deletion window (MOORAGE_CLOCK_OFFSET_FILE; never set in production).
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class OffsetFileClock:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp: tuple[int, int] | None = None
        self._offset = timedelta()

    def _read(self) -> timedelta:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return timedelta()
        stamp = (st.st_mtime_ns, st.st_size)
        if stamp != self._stamp:  # re-read only when the file changed
            text = self.path.read_text().strip()
            self._offset = timedelta(seconds=float(text or 0))
            self._stamp = stamp
        return self._offset

    def now(self) -> datetime:
        return datetime.now(UTC) + self._read()
