"""Lock files read into pins: pylock.toml (PEP 751), requirements.txt with hashes, uv.lock and
poetry.lock. Pure: text in, `LockedPackage`s out, or a `LockFileError` that says what is wrong
and where.

Only what an index serves is kept: packages from a directory, a VCS, a URL or an editable
install are not pinned files of an index, so there is nothing to audit for them.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import PurePath, PurePosixPath
from typing import Any, Literal, NamedTuple
from urllib.parse import unquote, urlparse

from packaging.pylock import Pylock, PylockValidationError
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

Format = Literal["pylock", "uv", "poetry", "requirements"]
FORMATS: tuple[Format, ...] = ("pylock", "uv", "poetry", "requirements")

_PYLOCK_NAME = re.compile(r"^pylock\.([^.]+\.)?toml$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
# pip's hash algorithms; only sha256 can be compared with what an index publishes (PEP 691
# requires no other), the others are read so that a valid file is never refused.
_HASH_NAMES = ("sha256", "sha384", "sha512")


class LockFileError(Exception):
    """The lock file cannot be read as the format its name says; the message says why."""


@dataclass(frozen=True, slots=True)
class LockedFile:
    filename: str | None  # None in a requirements.txt: its hashes name no file
    sha256: str | None  # lower-case hex; None when the lock has no sha256 for it
    size: int | None
    url: str | None
    line: int = 0  # 1-based line of the lock file that names it (0: unknown)


@dataclass(frozen=True, slots=True)
class LockedPackage:
    name: str
    version: str
    index: str | None  # the simple root the lock records for it, if any
    files: list[LockedFile] = field(default_factory=list)
    line: int = 0  # 1-based line of `name = "..."` or of the requirement

    @property
    def normalized_name(self) -> str:
        return canonicalize_name(self.name)


def detect_format(path: str | PurePath) -> Format:
    """The format a lock file's name says it has (PEP 751 names pylock files)."""
    name = PurePath(path).name
    if _PYLOCK_NAME.match(name):
        return "pylock"
    if name == "uv.lock":
        return "uv"
    if name == "poetry.lock":
        return "poetry"
    return "requirements"


def parse_lockfile(text: str, fmt: Format) -> list[LockedPackage]:
    parsers: dict[Format, Callable[[str], list[LockedPackage]]] = {
        "pylock": parse_pylock, "uv": parse_uv_lock, "poetry": parse_poetry_lock,
        "requirements": parse_requirements,
    }
    return parsers[fmt](text)


# -- shared helpers ---------------------------------------------------------------------------
def _load_toml(text: str, what: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise LockFileError(f"not valid TOML ({what}): {exc}") from None


def _sha256(value: str, where: str) -> str | None:
    """`sha256:<hex>` -> hex; another known algorithm -> None (nothing to compare it with)."""
    algorithm, sep, digest = value.partition(":")
    algorithm = algorithm.strip().lower()
    if not sep or algorithm not in _HASH_NAMES or not digest:
        raise LockFileError(f"{where}: expected a hash such as sha256:<hex digest>, got {value!r}")
    if algorithm != "sha256":
        return None
    digest = digest.strip().lower()
    if not _HEX64.match(digest):
        raise LockFileError(f"{where}: {value!r} is not a sha256 digest (64 hexadecimal digits)")
    return digest


def _url_filename(url: str) -> str:
    # The last path segment is the file name, percent-encoded in a URL (a `+` of a local version).
    return unquote(_raw_segment(url))


def _raw_segment(url: str) -> str:
    """The last path segment as the lock file spells it (how to find its line)."""
    return PurePosixPath(urlparse(url).path).name


class _Lines:
    """Where things are in the text: tomllib gives no positions, but the GitHub format points
    at a line, so the table headers of the package array split the text into blocks and a
    package's name and file names are looked up inside its own block."""

    def __init__(self, text: str, header: str) -> None:
        self.lines = text.splitlines()
        pattern = re.compile(rf"^\s*\[\[\s*{re.escape(header)}\s*\]\]\s*(#.*)?$")
        self.starts = [i for i, line in enumerate(self.lines) if pattern.match(line)]

    def block(self, index: int, count: int) -> tuple[int, int]:
        # An inline array (`packages = [{...}]`) has no headers: search the whole text then.
        if len(self.starts) != count:
            return 0, len(self.lines)
        end = self.starts[index + 1] if index + 1 < len(self.starts) else len(self.lines)
        return self.starts[index], end

    def find(self, needle: str, span: tuple[int, int], default: int = 0) -> int:
        for i in range(*span):
            if needle in self.lines[i]:
                return i + 1
        return default

    def name_line(self, name: str, span: tuple[int, int]) -> int:
        pattern = re.compile(rf"""^\s*name\s*=\s*["']{re.escape(name)}["']""")
        for i in range(*span):
            if pattern.match(self.lines[i]):
                return i + 1
        return span[0] + 1 if span[1] > span[0] else 0


def _table_list(doc: Mapping[str, Any], key: str, what: str) -> list[Mapping[str, Any]]:
    items = doc.get(key, [])
    if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
        raise LockFileError(f"{what}: `{key}` must be an array of tables")
    return items


def _string(table: Mapping[str, Any], key: str, where: str, *, required: bool = True) -> str | None:
    value = table.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value:
        raise LockFileError(f"{where}: `{key}` must be a non-empty string, got {value!r}")
    return value


class _Package(NamedTuple):
    """A [[package]] table of a uv.lock or poetry.lock, named, and placed in the text."""

    table: Mapping[str, Any]
    name: str
    line: int  # of its `name = "..."`
    where: str  # "line N: package NAME": how a message about it begins
    find: Callable[[str], int]  # the line of its block that holds a string (its name's line if none does)


def _package_tables(text: str, packages: list[Mapping[str, Any]], lock: str) -> Iterator[_Package]:
    lines = _Lines(text, "package")
    for i, table in enumerate(packages):
        span = lines.block(i, len(packages))
        name = _string(table, "name", f"{lock} [[package]] #{i + 1}")
        assert name is not None
        line = lines.name_line(name, span)
        yield _Package(table, name, line, f"line {line}: package {name}", partial(lines.find, span=span, default=line))


# -- pylock.toml (PEP 751) ------------------------------------------------------------------
def parse_pylock(text: str) -> list[LockedPackage]:
    doc = _load_toml(text, "pylock.toml")
    try:
        lock = Pylock.from_dict(doc)
    except PylockValidationError as exc:
        raise LockFileError(f"not a valid pylock.toml (PEP 751): {exc}") from None
    lines = _Lines(text, "packages")
    out: list[LockedPackage] = []
    for i, package in enumerate(lock.packages):
        if package.is_direct:  # vcs, directory or archive: not a file of an index
            continue
        span = lines.block(i, len(lock.packages))
        line = lines.name_line(package.name, span)
        if package.version is None:
            raise LockFileError(f"line {line}: package {package.name} has files but no version")
        files = []
        for dist in ([package.sdist] if package.sdist else []) + list(package.wheels or []):
            try:
                filename = dist.filename
            except PylockValidationError as exc:
                raise LockFileError(f"line {line}: package {package.name}: {exc}") from None
            digest = dist.hashes.get("sha256")
            if digest is not None and not _HEX64.match(digest.lower()):
                raise LockFileError(f"line {line}: package {package.name}: {digest!r} is not a sha256 digest")
            needle = dist.name or (_raw_segment(dist.url) if dist.url else filename)
            files.append(LockedFile(filename, digest.lower() if digest else None, dist.size, dist.url,
                                    lines.find(needle, span, line)))
        out.append(LockedPackage(package.name, str(package.version), package.index, files, line))
    return out


# -- uv.lock ----------------------------------------------------------------------------------
def parse_uv_lock(text: str) -> list[LockedPackage]:
    doc = _load_toml(text, "uv.lock")
    packages = _table_list(doc, "package", "uv.lock")
    if "version" not in doc and not packages:
        raise LockFileError("not a uv.lock: no `version` and no [[package]] tables")
    out: list[LockedPackage] = []
    for table, name, line, where, find in _package_tables(text, packages, "uv.lock"):
        source = table.get("source", {})
        if not isinstance(source, dict):
            raise LockFileError(f"{where}: `source` must be a table")
        registry = source.get("registry")
        if registry is None:  # editable, virtual, git, url, path, directory: not from an index
            continue
        if not isinstance(registry, str):
            raise LockFileError(f"{where}: `source.registry` must be a URL")
        version = _string(table, "version", where)
        assert version is not None
        dists: list[Mapping[str, Any]] = []
        if "sdist" in table:
            if not isinstance(table["sdist"], dict):
                raise LockFileError(f"{where}: `sdist` must be a table")
            dists.append(table["sdist"])
        dists.extend(_table_list(table, "wheels", where))
        files = []
        for dist in dists:
            location = dist.get("url") or dist.get("path") or dist.get("filename")
            if not isinstance(location, str) or not location:
                raise LockFileError(f"{where}: a file without `url` or `path`")
            filename = _url_filename(location)
            hash_value = _string(dist, "hash", where, required=False)
            size = dist.get("size")
            if size is not None and (not isinstance(size, int) or isinstance(size, bool) or size < 0):
                raise LockFileError(f"{where}: `size` of {filename} must be a whole number, got {size!r}")
            files.append(LockedFile(filename, _sha256(hash_value, f"{where}, {filename}") if hash_value else None,
                                    size, dist.get("url"), find(_raw_segment(location))))
        out.append(LockedPackage(name, version, registry, files, line))
    return out


# -- poetry.lock ------------------------------------------------------------------------------
def parse_poetry_lock(text: str) -> list[LockedPackage]:
    doc = _load_toml(text, "poetry.lock")
    packages = _table_list(doc, "package", "poetry.lock")
    metadata = doc.get("metadata", {})
    if not isinstance(metadata, dict):
        raise LockFileError("poetry.lock: `metadata` must be a table")
    if not packages and not metadata:
        raise LockFileError("not a poetry.lock: no [[package]] tables and no [metadata]")
    # Lock files before Poetry 1.5 keep the files in [metadata.files], by project name.
    old_files = metadata.get("files", {})
    out: list[LockedPackage] = []
    for table, name, line, where, find in _package_tables(text, packages, "poetry.lock"):
        version = _string(table, "version", where)
        assert version is not None
        source = table.get("source")
        index: str | None = None
        if source is not None:
            if not isinstance(source, dict):
                raise LockFileError(f"{where}: `source` must be a table")
            # legacy: a simple index (Poetry's name for it); git, directory, file, url: not an index
            if source.get("type") != "legacy":
                continue
            index = _string(source, "url", where)
        entries = table.get("files")
        if entries is None:
            entries = (old_files.get(name, old_files.get(canonicalize_name(name), []))
                       if isinstance(old_files, dict) else [])
        if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
            raise LockFileError(f"{where}: `files` must be an array of {{file, hash}} tables")
        files = []
        for entry in entries:
            filename = _string(entry, "file", where)
            assert filename is not None
            hash_value = _string(entry, "hash", where, required=False)
            files.append(LockedFile(filename, _sha256(hash_value, f"{where}, {filename}") if hash_value else None,
                                    None, None, find(f'"{filename}"')))
        out.append(LockedPackage(name, version, index, files, line))
    return out


# -- requirements.txt -------------------------------------------------------------------------
_COMMENT = re.compile(r"(^|\s+)#.*$")
_OPTION_START = re.compile(r"(^|\s)(--?[A-Za-z])")
_HASH_OPTION = re.compile(r"--hash(?:=|\s+)(\S+)")
_INDEX_OPTION = re.compile(r"^(?:-i\s*|--index-url(?:=|\s+))(\S+)$")
# Options that pull in other files: the pins would not all be here, so the audit would be partial.
_INCLUDES = ("-r", "--requirement", "-c", "--constraint")
_EDITABLE = ("-e", "--editable")


def _option_name(content: str) -> str:
    """`--index-url=URL` -> `--index-url`; `-rfile.txt` -> `-r` (short options take glued values)."""
    if content.startswith("--"):
        return content.split(None, 1)[0].split("=", 1)[0]
    return content[:2]


def _logical_lines(text: str) -> list[tuple[int, str]]:
    """(first physical line, text) with `\\` continuations joined and comments dropped, as pip
    reads them: the pieces are joined as they are, and a comment line ends a continuation."""
    out: list[tuple[int, str]] = []
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        if raw.lstrip().startswith("#"):
            if pending:
                out.append((start, "".join(pending)))
                pending = []
            continue
        if not pending:
            start = number
        if raw.endswith("\\"):
            pending.append(raw[:-1])
            continue
        pending.append(raw)
        out.append((start, "".join(pending)))
        pending = []
    if pending:
        out.append((start, "".join(pending)))
    return [(n, _COMMENT.sub("", line).strip()) for n, line in out if _COMMENT.sub("", line).strip()]


def parse_requirements(text: str) -> list[LockedPackage]:
    """`name==version [; marker] --hash=sha256:... [--hash=...]` lines (pip-compile, `uv pip
    compile --generate-hashes`, `uv export`), with `-i/--index-url` recorded as the index."""
    index: str | None = None
    # The index option may come after the requirements it applies to: packages are made at the end.
    pinned: list[tuple[int, str, str, list[LockedFile]]] = []
    for line, content in _logical_lines(text):
        if content.startswith("-"):
            option = _option_name(content)
            if option in _INCLUDES:
                raise LockFileError(f"line {line}: {content!r} includes another file; audit that file too "
                                    "(an include is not followed, so the pins here would be incomplete)")
            if option in _EDITABLE:
                continue  # a local or VCS project, not a file of an index
            if option == "--hash":  # pip would drop it silently; then the pin above goes unchecked
                raise LockFileError(f"line {line}: --hash outside a requirement (is a `\\` missing at the end "
                                    "of the line above?)")
            match = _INDEX_OPTION.match(content)
            if match:
                index = match.group(1)
            elif option in ("-i", "--index-url"):
                raise LockFileError(f"line {line}: {option} needs a URL")
            continue  # other options (--extra-index-url, --find-links, --no-binary, ...) pin nothing
        split = _OPTION_START.search(content)
        requirement_text = content[:split.start()].strip() if split else content
        options = content[split.start():].strip() if split else ""
        try:
            requirement = Requirement(requirement_text)
        except InvalidRequirement as exc:
            raise LockFileError(f"line {line}: not a requirement: {exc}") from None
        if requirement.url:
            continue  # `name @ URL`: a direct reference, not a file of an index
        specifiers = list(requirement.specifier)
        if len(specifiers) != 1 or specifiers[0].operator not in ("==", "===") or "*" in specifiers[0].version:
            raise LockFileError(f"line {line}: {requirement_text!r} is not pinned to one version with ==; "
                                "audit needs a lock file (pip-compile, uv pip compile)")
        leftover = _HASH_OPTION.sub("", options)
        if "--hash" in leftover:
            raise LockFileError(f"line {line}: --hash needs a value such as sha256:<hex digest>")
        files = [LockedFile(None, digest, None, None, line)
                 for value in _HASH_OPTION.findall(options)
                 if (digest := _sha256(value, f"line {line}")) is not None]
        pinned.append((line, requirement.name, specifiers[0].version, files))
    return [LockedPackage(name, version, index, files, line) for line, name, version, files in pinned]
