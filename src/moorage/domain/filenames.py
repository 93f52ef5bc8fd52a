"""Distribution filenames: wheels (binary distribution format) and sdists (PEP 625)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import InvalidVersion, Version

from moorage.domain.decisions import Decision, Denied

PackageType = Literal["sdist", "bdist_wheel"]
_UNSAFE = re.compile(r"[/\\\x00-\x1f\x7f]")
MAX_FILENAME_LENGTH = 255


@dataclass(frozen=True, slots=True)
class DistFilename:
    filename: str
    name: str  # the name part as written in the filename
    version: Version
    packagetype: PackageType
    python_version: str  # "source" for an sdist, the wheel's python tags otherwise


def _deny(reason: str) -> Denied:
    return Denied(Decision.deny("invalid-filename", reason, status=400))


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
        return DistFilename(filename, filename.split("-", 1)[0], version, "bdist_wheel", ".".join(pythons))
    if filetype == "sdist":
        if not filename.endswith(".tar.gz"):
            raise _deny(f"invalid filename {filename!r}: a source distribution must be a .tar.gz (PEP 625)")
        try:
            name, version = parse_sdist_filename(filename)
        except InvalidSdistFilename as exc:
            raise _deny(f"invalid sdist filename {filename!r}: {exc}") from None
        stem = filename[: -len(".tar.gz")]
        name_part, version_part = stem.rsplit("-", 1)
        expected = re.sub(r"[-_.]+", "_", name_part).lower()
        if name_part != expected:
            raise _deny(
                f"invalid sdist filename {filename!r}: the name part must be normalized "
                f"as {expected!r} (PEP 625)"
            )
        if version_part != str(version):
            raise _deny(
                f"invalid sdist filename {filename!r}: the version part must be normalized "
                f"as {str(version)!r} (PEP 625)"
            )
        return DistFilename(filename, name_part, version, "sdist", "source")
    raise Denied(
        Decision.deny(
            "invalid-filetype", f"unsupported filetype {filetype!r}: use sdist or bdist_wheel", status=400
        )
    )


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
