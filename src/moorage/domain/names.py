"""Project names: validity (PEP 508), normalization (PEP 503) and look-alike keys."""

from __future__ import annotations

import re

from packaging.utils import canonicalize_name

from moorage.domain.decisions import Decision

# PEP 508 / core metadata "Name": ASCII letters and digits, with . _ - inside.
# re.ASCII: without it IGNORECASE lets [A-Z] match the long s, the Kelvin sign and dotless i.
_VALID_NAME = re.compile(r"[A-Z0-9]|[A-Z0-9][A-Z0-9._-]*[A-Z0-9]", re.IGNORECASE | re.ASCII)
_SEPARATORS = re.compile(r"[-_.]+")
# Characters that are easy to confuse when read: fold them to one representative.
_CONFUSABLE = str.maketrans({"l": "1", "i": "1", "o": "0"})
MAX_NAME_LENGTH = 100


def is_valid_name(name: str) -> bool:
    # fullmatch: with match() and $, a trailing newline would pass ("foo\n").
    return len(name) <= MAX_NAME_LENGTH and bool(_VALID_NAME.fullmatch(name))


def normalize(name: str) -> str:
    """PEP 503 normalized form: lower case, runs of -_. become one dash."""
    return str(canonicalize_name(name))


def similarity_key(name: str) -> str:
    """Two names with the same key are too alike to belong to different projects.

    Folds case, drops the separators -_. and folds l/i/1 and o/0.
    """
    return _SEPARATORS.sub("", name.lower()).translate(_CONFUSABLE)


def check_name(name: str) -> Decision:
    if not is_valid_name(name):
        return Decision.deny(
            "invalid-name",
            f"{name!r} is not a valid project name: use ASCII letters, digits and . _ - "
            f"(starting and ending with a letter or digit), at most {MAX_NAME_LENGTH} characters",
        )
    return Decision.allow()


def check_new_name(
    name: str, *, prohibited: frozenset[str], similar_existing: str | None
) -> Decision:
    """May a project of this name be created? ``similar_existing`` is a look-alike, if any."""
    decision = check_name(name)
    if not decision.allowed:
        return decision
    if normalize(name) in prohibited:
        return Decision.deny(
            "prohibited-name", f"the name {normalize(name)!r} is prohibited on this index"
        )
    key = similarity_key(name)
    for banned in sorted(prohibited):
        if similarity_key(banned) == key:
            return Decision.deny(
                "prohibited-name",
                f"the name {name!r} is too similar to the prohibited name {banned!r}",
            )
    if similar_existing is not None:
        return Decision.deny(
            "similar-name",
            f"the name {name!r} is too similar to the existing project {similar_existing!r}",
        )
    return Decision.allow()
