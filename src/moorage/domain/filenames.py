"""Distribution filenames: wheels (binary distribution format) and sdists (PEP 625)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import InvalidVersion, Version

from moorage.domain.decisions import Denied

PackageType = Literal["sdist", "bdist_wheel"]
_UNSAFE = re.compile(r"[/\\\x00-\x1f\x7f]")
_NAME_PART = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?$")
MAX_FILENAME_LENGTH = 255


@dataclass(frozen=True, slots=True)
class DistFilename:
    filename: str
    name: str  # the name part as written in the filename
    version: Version
    packagetype: PackageType
    python_version: str  # "source" for an sdist, the wheel's python tags otherwise
    # Every (name part, version) the filename can be read as. One for a wheel or a PEP 625
    # sdist; an older sdist name ("Foo-Bar-1.0-1.tar.gz") may split at more than one hyphen,
    # and the metadata decides which (check_agreement).
    readings: tuple[tuple[str, Version], ...] = field(default=(), compare=False)
    pep625: bool = field(default=True, compare=False)  # an sdist named as PEP 625 writes it


def _deny(reason: str) -> Denied:
    return Denied.by("invalid-filename", reason)


def parse_filename(filename: str, filetype: str) -> DistFilename:
    """Parse and check a distribution filename for the given form ``filetype``."""
    if not filename or len(filename) > MAX_FILENAME_LENGTH:
        raise _deny(f"invalid filename {filename!r}: empty or longer than {MAX_FILENAME_LENGTH}")
    if _UNSAFE.search(filename) or filename in (".", ".."):
        raise _deny(f"invalid filename {filename!r}: path separators and control characters are not allowed")
    if filetype == "bdist_wheel":
        if not filename.endswith(".whl"):
            raise _deny(f"invalid filename {filename!r}: a bdist_wheel must end in .whl")
        try:
            name, version, _build, tags = parse_wheel_filename(filename)
        except InvalidWheelFilename as exc:
            raise _deny(f"invalid wheel filename {filename!r}: {exc}") from None
        pythons = sorted({t.interpreter for t in tags})
        name_part = filename.split("-", 1)[0]
        return DistFilename(filename, name_part, version, "bdist_wheel", ".".join(pythons), ((name_part, version),))
    if filetype == "sdist":
        return _parse_sdist(filename)
    raise Denied.by("invalid-filetype", f"unsupported filetype {filetype!r}: use sdist or bdist_wheel")


SDIST_SUFFIXES = (".tar.gz", ".zip")


def _parse_sdist(filename: str) -> DistFilename:
    """A PEP 625 name (``foo_bar-1.0.tar.gz``) or an older one that pip still installs
    (``Foo-Bar-1.0.tar.gz``, ``foo.bar-1.0-1.zip``): the public index has refused the older
    forms for new uploads since it enforced PEP 625, but they are most of the sdists people
    re-host, and pip and uv read them (docs/api.md says why moorage takes them)."""
    suffix = next((s for s in SDIST_SUFFIXES if filename.endswith(s)), None)
    if suffix is None:
        raise _deny(f"invalid filename {filename!r}: a source distribution must be a .tar.gz (PEP 625) "
                    "or, for older releases, a .zip")
    stem = filename[: -len(suffix)]
    readings: list[tuple[str, Version]] = []
    for at in reversed([i for i, c in enumerate(stem) if c == "-"]):
        name_part, version_part = stem[:at], stem[at + 1:]
        if not _NAME_PART.match(name_part):
            continue
        try:
            readings.append((name_part, Version(version_part)))
        except (InvalidVersion, ValueError):  # ValueError: a number too long to convert
            continue
    if not readings:
        raise _deny(f"invalid sdist filename {filename!r}: expected NAME-VERSION{suffix} with a valid version")
    name_part, version = readings[0]
    normal = suffix == ".tar.gz" and len(readings) == 1 and name_part == re.sub(r"[-_.]+", "_", name_part).lower() \
        and stem[len(name_part) + 1:] == str(version)
    return DistFilename(filename, name_part, version, "sdist", "source", tuple(readings), normal)


def version_of(filename: str) -> Version:
    """The version a distribution filename names, as packaging reads it (wheels, and .tar.gz or
    .zip sdists of any era); ValueError with the reason when it names none (.egg, .exe, ...)."""
    try:
        if filename.endswith(".whl"):
            return parse_wheel_filename(filename)[1]
        if filename.endswith((".tar.gz", ".zip")):
            return parse_sdist_filename(filename)[1]
    except (InvalidWheelFilename, InvalidSdistFilename, InvalidVersion) as exc:
        raise ValueError(f"no version can be read from the filename: {exc}") from None
    raise ValueError("not a wheel, .tar.gz or .zip source distribution")
