"""Durations as people read them: the one function that writes a duration into a sentence or a
table ("72 hours", "1 second", "14 days"), in the unit the configuration used.

A duration read from the configuration is a ``Span``: a timedelta that remembers its unit, so
``deletion_window = "72h"`` reads "72 hours" in `moorage policy show` and in the refusal alike,
and ``"3d"`` reads "3 days" in both.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

# The units a configured duration may be written in: the letter, its name, its length.
UNITS: dict[str, tuple[str, int]] = {
    "s": ("second", 1), "m": ("minute", 60), "h": ("hour", 3600), "d": ("day", 86400), "w": ("week", 7 * 86400),
}


class Span(timedelta):
    """A timedelta that remembers the unit it was written in (a letter of UNITS)."""

    __slots__ = ("unit",)
    unit: str

    def __new__(cls, seconds: float = 0.0, unit: str = "s") -> Span:
        if unit not in UNITS:
            raise ValueError(f"unknown unit {unit!r}")
        span = super().__new__(cls, seconds=seconds)
        span.unit = unit
        return span

    def __reduce__(self) -> tuple[Any, ...]:
        return (Span, (self.total_seconds(), self.unit))

    def __repr__(self) -> str:
        return f"Span({self.total_seconds()!r}, {self.unit!r})"


def span(amount: float, unit: str) -> Span:
    """``span(72, "h")``: 72 hours."""
    return Span(amount * UNITS[unit][1], unit)


def _natural_unit(seconds: float) -> str:
    """For a duration not written in a unit: the largest of days, hours, minutes that divides it."""
    for unit in ("d", "h", "m"):
        if seconds and seconds % UNITS[unit][1] == 0:
            return unit
    return "s"


def describe(delta: timedelta) -> str:
    """"72 hours", "1 second", "1.5 days": in the Span's unit, else the largest whole one."""
    seconds = delta.total_seconds()
    unit = delta.unit if isinstance(delta, Span) else _natural_unit(seconds)
    name, size = UNITS[unit]
    amount = seconds / size
    number = str(int(amount)) if amount == int(amount) else f"{amount:g}"
    return f"{number} {name}{'' if amount == 1 else 's'}"
