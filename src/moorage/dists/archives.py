"""Looks inside an uploaded distribution: refuses unsafe archives, returns its metadata.

Only the metadata member is decompressed from a wheel; an sdist is read as a stream
through a byte budget, so a decompression bomb is refused without filling memory or disk.
"""

from __future__ import annotations

import configparser
import gzip
import os
import posixpath
import re
import stat
import tarfile
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from moorage.dists import zipframe
from moorage.domain.decisions import Denied
from moorage.domain.filenames import DistFilename
from moorage.domain.names import normalize
from moorage.domain.policy import UploadPolicy

_DRIVE = re.compile(r"^[A-Za-z]:")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True, slots=True)
class ArchiveInfo:
    metadata: bytes
    uncompressed_size: int
    members: frozenset[str] = frozenset()  # every member's name, as written
    license_root: str = ""  # where a License-File path is found: "<top>/" or "<x>.dist-info/licenses/"

    def has_license_file(self, path: str) -> bool:
        return self.license_root + path in self.members


def _unsafe(reason: str) -> Denied:
    return Denied.by("unsafe-archive", reason)


def _invalid(reason: str) -> Denied:
    return Denied.by("invalid-archive", reason)


def _check_member_name(name: str) -> list[str]:
    if not name or _CONTROL.search(name):
        raise _unsafe(f"archive member {name!r} has an empty name or a control character in it")
    if name.startswith("/") or _DRIVE.match(name):
        raise _unsafe(f"archive member {name!r} has an absolute path")
    if "\\" in name:
        raise _unsafe(f"archive member {name!r} has a backslash in its path (archives separate with '/')")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise _unsafe(f"archive member {name!r} points outside the archive ('..')")
    return parts


def inspect(path: Path, dist: DistFilename, policy: UploadPolicy) -> ArchiveInfo:
    size = path.stat().st_size
    budget = policy.uncompressed_budget(size)
    if dist.packagetype == "bdist_wheel":
        return _inspect_wheel(path, dist, policy, budget)
    if dist.filename.endswith(".zip"):
        return _inspect_zip_sdist(path, policy, budget)
    return _inspect_sdist(path, policy, budget)


# The compression methods the wheel format (and pip) read; the public index refuses others.
_ZIP_METHODS = {zipfile.ZIP_STORED: "stored", zipfile.ZIP_DEFLATED: "deflated"}


def _zip_members(archive: zipfile.ZipFile, policy: UploadPolicy, budget: int, kind: str) -> tuple[set[str], int]:
    """Checks the framing, every member's name, kind, compression and the expanded total;
    returns the names."""
    if archive.filename is not None:
        with open(archive.filename, "rb") as fp:
            try:
                zipframe.check_framing(archive, fp, os.fstat(fp.fileno()).st_size)
            except zipframe.FramingError as exc:
                raise _invalid(f"the {kind}'s zip cannot be read one way only: {exc}") from None
    total = 0
    seen: set[str] = set()
    for info in archive.infolist():
        _check_member_name(info.filename)
        if info.filename in seen:
            raise _unsafe(f"archive member {info.filename!r} appears twice")
        seen.add(info.filename)
        if stat.S_ISLNK(info.external_attr >> 16):
            raise _unsafe(f"archive member {info.filename!r} is a symbolic link")
        if info.compress_type not in _ZIP_METHODS:
            raise _invalid(f"archive member {info.filename!r} uses a compression method other than "
                           "stored or deflated")
        total += info.file_size
        if total > budget:
            raise _unsafe(
                f"the {kind} expands to more than {budget} bytes "
                f"(compression ratio limit {policy.max_compression_ratio:g}); refused as a decompression bomb"
            )
    return seen, total


@contextmanager
def _checked_zip(path: Path, policy: UploadPolicy, budget: int,
                 kind: str) -> Iterator[tuple[zipfile.ZipFile, set[str], int]]:
    """The zip file of a wheel or a .zip sdist, open, with its members' names and expanded total
    (checked by `_zip_members`)."""
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise _invalid(f"the {kind} is not a valid zip file: {exc}") from None
    with archive:
        seen, total = _zip_members(archive, policy, budget, kind)
        yield archive, seen, total


def _inspect_zip_sdist(path: Path, policy: UploadPolicy, budget: int) -> ArchiveInfo:
    """A .zip source distribution of an older release: one top-level directory with PKG-INFO."""
    with _checked_zip(path, policy, budget, "sdist") as (archive, seen, total):
        tops = {name.split("/", 1)[0] for name in seen if name.strip("/")}
        if len(tops) != 1 or not any("/" in name for name in seen):
            raise _invalid("an sdist must contain a single top-level directory")
        top = tops.pop()
        if f"{top}/PKG-INFO" not in seen:
            raise _invalid("the sdist has no PKG-INFO in its top-level directory")
        return ArchiveInfo(_read_zip_member(archive, f"{top}/PKG-INFO", policy), total, frozenset(seen), f"{top}/")


def _read_zip_member(archive: zipfile.ZipFile, name: str, policy: UploadPolicy) -> bytes:
    info = archive.getinfo(name)
    if info.file_size > policy.max_metadata_size:
        raise _invalid(f"{name} is larger than {policy.max_metadata_size} bytes")
    try:
        return archive.read(info)
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError, NotImplementedError) as exc:
        raise _invalid(f"cannot read {name}: {exc}") from None


def _inspect_wheel(path: Path, dist: DistFilename, policy: UploadPolicy, budget: int) -> ArchiveInfo:
    with _checked_zip(path, policy, budget, "wheel") as (archive, seen, total):
        dist_infos = {name.split("/", 1)[0] for name in seen if name.split("/", 1)[0].endswith(".dist-info")}
        candidates = [d for d in dist_infos if f"{d}/METADATA" in seen]
        if len(candidates) != 1:
            raise _invalid("the wheel must contain exactly one .dist-info directory with a METADATA file")
        dist_info = candidates[0]
        if normalize(dist_info[: -len(".dist-info")].rsplit("-", 1)[0]) != normalize(dist.name):
            raise _invalid(f"the wheel's {dist_info} does not belong to {dist.name!r}")
        for required in ("WHEEL", "RECORD"):
            if f"{dist_info}/{required}" not in seen:
                raise _invalid(f"the wheel has no {dist_info}/{required} file")
        if f"{dist_info}/entry_points.txt" in seen:
            _check_entry_points(_read_zip_member(archive, f"{dist_info}/entry_points.txt", policy))
        return ArchiveInfo(_read_zip_member(archive, f"{dist_info}/METADATA", policy), total,
                           frozenset(seen), f"{dist_info}/licenses/")


# A console or GUI script's name becomes a file name in the installer's bin directory: only
# what the entry points specification allows, never a path (the public index checks the same).
_SCRIPT_NAME = re.compile(r"[\w.-]+")


def _check_entry_points(raw: bytes) -> None:
    parser = configparser.ConfigParser(delimiters=("=",), interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # names are case-sensitive
    try:
        parser.read_string(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise _invalid("the wheel's entry_points.txt is not UTF-8") from None
    except configparser.Error as exc:
        reason = " ".join(str(exc).split())[:200]
        raise _invalid(f"the wheel's entry_points.txt is not a valid INI file: {reason}") from None
    for section in ("console_scripts", "gui_scripts"):
        if parser.has_section(section):
            for name in parser[section]:
                if not _SCRIPT_NAME.fullmatch(name):
                    raise _invalid(f"the wheel's entry_points.txt names the script {name!r} in [{section}]; "
                                   "a script name is letters, digits, '_', '.' and '-'")


class _BudgetReader:
    """A read-only stream that refuses to produce more than ``budget`` bytes."""

    def __init__(self, raw: BinaryIO, budget: int, policy: UploadPolicy) -> None:
        self._raw = raw
        self._left = budget
        self._budget = budget
        self._policy = policy
        self.produced = 0

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            n = self._left + 1
        data = self._raw.read(min(n, self._left + 1))
        self.produced += len(data)
        self._left -= len(data)
        if self._left < 0:
            raise _unsafe(
                f"the sdist expands to more than {self._budget} bytes "
                f"(compression ratio limit {self._policy.max_compression_ratio:g}); refused as a decompression bomb"
            )
        return data


def _inspect_sdist(path: Path, policy: UploadPolicy, budget: int) -> ArchiveInfo:
    metadata: bytes | None = None
    top: str | None = None
    names: set[str] = set()
    with path.open("rb") as fh, gzip.GzipFile(fileobj=fh, mode="rb") as gz:
        reader = _BudgetReader(gz, budget, policy)  # type: ignore[arg-type]
        try:
            with tarfile.open(fileobj=reader, mode="r|") as tar:  # type: ignore[call-overload]
                for member in tar:
                    parts = _check_member_name(member.name)
                    if not parts:
                        continue
                    if top is None:
                        top = parts[0]
                    elif parts[0] != top:
                        raise _invalid("an sdist must contain a single top-level directory")
                    names.add("/".join(parts))
                    if member.issym() or member.islnk():
                        _check_link(member, parts)
                    elif not (member.isfile() or member.isdir()):
                        raise _unsafe(f"archive member {member.name!r} is a device, FIFO or other special file")
                    if member.isfile() and parts == [top, "PKG-INFO"]:
                        if member.size > policy.max_metadata_size:
                            raise _invalid(f"PKG-INFO is larger than {policy.max_metadata_size} bytes")
                        extracted = tar.extractfile(member)
                        metadata = extracted.read() if extracted is not None else None
        except Denied:
            raise
        except (tarfile.TarError, OSError, EOFError, zlib.error, gzip.BadGzipFile) as exc:
            raise _invalid(f"the sdist is not a valid .tar.gz: {exc}") from None
    if metadata is None:
        raise _invalid("the sdist has no PKG-INFO in its top-level directory")
    return ArchiveInfo(metadata, reader.produced, frozenset(names), f"{top}/")


def _check_link(member: tarfile.TarInfo, parts: list[str]) -> None:
    target = member.linkname
    if not target or target.startswith("/") or "\\" in target:
        raise _unsafe(f"archive member {member.name!r} links to {target!r}, outside the archive")
    base = parts[:-1] if member.issym() else []
    resolved = posixpath.normpath(posixpath.join(*base, target) if base else target)
    if resolved.startswith("..") or resolved.startswith("/") or resolved.split("/")[0] != parts[0]:
        raise _unsafe(f"archive member {member.name!r} links to {target!r}, outside the archive")
