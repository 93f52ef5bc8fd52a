"""Pending removal: when an announced removal takes a project's files off the default index.

An owner announces a removal with an instant, ``removal_at``, at least the grace period ahead.
Until that instant the default root (``/simple/``) offers the project's files as before, and
its answer holds only until then; from that instant on the default root offers none of its
files or releases (the project stays listed, with its status and reason). The opt-in root
(``/pending/simple/``) offers them whatever the instant, to the clients that ask there.

This is the one place that says so: the sources of pages and files (``sources/local.py``,
``sources/pending.py``), the cancel rule (``lifecycle.may_cancel_removal``) and the pages for
people ask here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


def removal_in_effect(removal_at: datetime | None, now: datetime) -> bool:
    """Whether a project's announced removal (``removal_at``, None when none is) has taken
    effect at ``now``: from its instant on, not a moment before."""
    return removal_at is not None and now >= removal_at


@dataclass(frozen=True, slots=True)
class RemovalOffer:
    """What one index root offers of a project's files at an instant, as far as its announced
    removal decides: the files (and releases), or none of them; and until when that answer
    holds by the passing of time alone (None: until something about the project changes)."""

    files: bool
    until: datetime | None = None


def removal_offer(removal_at: datetime | None, now: datetime, *, opted_in: bool = False) -> RemovalOffer:
    """The default root offers the files until the removal takes effect (that instant is when
    its answer changes) and none from then on; the root clients opt in to (``opted_in``)
    offers them at every instant. A project with no announced removal: the files, for good."""
    if opted_in or removal_at is None:
        return RemovalOffer(files=True)
    if removal_in_effect(removal_at, now):
        return RemovalOffer(files=False)
    return RemovalOffer(files=True, until=removal_at)
