"""Asserting refusals: what was named is not there."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from moorage.domain.decisions import NOT_FOUND, Denied


@contextmanager
def raises_not_found() -> Iterator[None]:
    """The block is refused by the rule ``not-found`` (the CLI's exit status 4, the web's 404)."""
    with pytest.raises(Denied) as refused:
        yield
    assert refused.value.decision.rule == NOT_FOUND, refused.value.decision
