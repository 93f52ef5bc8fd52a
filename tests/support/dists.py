"""Builds real wheels and sdists (and deliberately broken ones) for the tests."""

from __future__ import annotations

import base64
import hashlib
import io
import re
import tarfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


def metadata_text(name: str, version: str, *, requires: list[str] | None = None,
                  requires_python: str | None = ">=3.8", metadata_version: str = "2.1",
                  summary: str = "a test project", dynamic: list[str] | None = None,
                  description: str = "A project made by the tests.\n") -> str:
    lines = [f"Metadata-Version: {metadata_version}", f"Name: {name}", f"Version: {version}",
             f"Summary: {summary}"]
    if requires_python:
        lines.append(f"Requires-Python: {requires_python}")
    for req in requires or []:
        lines.append(f"Requires-Dist: {req}")
    for d in dynamic or []:
        lines.append(f"Dynamic: {d}")
    lines.append("Description-Content-Type: text/markdown")
    return "\n".join(lines) + "\n\n" + description


@dataclass
class Dist:
    path: Path
    name: str
    version: str
    metadata: bytes = b""
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def filename(self) -> str:
        return self.path.name

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.path.read_bytes()).hexdigest()


def _record_line(path: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{path},sha256={digest},{len(data)}"


def make_wheel(out: Path, name: str, version: str, *, requires: list[str] | None = None,
               tag: str = "py3-none-any", module_body: str | None = None,
               metadata: str | None = None, filename: str | None = None,
               extra_members: dict[str, bytes] | None = None, requires_python: str | None = ">=3.8",
               metadata_version: str = "2.1") -> Dist:
    """A valid, installable wheel with one module named after the project."""
    out.mkdir(parents=True, exist_ok=True)
    dist_name = _norm(name)
    dist_info = f"{dist_name}-{version}.dist-info"
    meta = (metadata or metadata_text(name, version, requires=requires, requires_python=requires_python,
                                      metadata_version=metadata_version)).encode()
    module = dist_name
    members: dict[str, bytes] = {
        f"{module}/__init__.py": (module_body or f"__version__ = {version!r}\n").encode(),
        f"{dist_info}/METADATA": meta,
        f"{dist_info}/WHEEL": (f"Wheel-Version: 1.0\nGenerator: moorage-tests\nRoot-Is-Purelib: true\n"
                               f"Tag: {tag}\n").encode(),
    }
    members.update(extra_members or {})
    record = "\n".join(_record_line(p, d) for p, d in members.items()) + f"\n{dist_info}/RECORD,,\n"
    members[f"{dist_info}/RECORD"] = record.encode()
    path = out / (filename or f"{dist_name}-{version}-{tag}.whl")
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for member, data in members.items():
            info = zipfile.ZipInfo(member, date_time=(2026, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, data)
    return Dist(path, name, version, meta)


def make_sdist(out: Path, name: str, version: str, *, requires: list[str] | None = None,
               metadata: str | None = None, filename: str | None = None, metadata_version: str = "2.2",
               extra_members: list[tuple[tarfile.TarInfo, bytes | None]] | None = None,
               top: str | None = None, dynamic: list[str] | None = None) -> Dist:
    out.mkdir(parents=True, exist_ok=True)
    stem = f"{_norm(name)}-{version}"
    root = top or stem
    meta = (metadata or metadata_text(name, version, requires=requires, metadata_version=metadata_version,
                                      dynamic=dynamic)).encode()
    pyproject = (f'[build-system]\nrequires = ["setuptools"]\nbuild-backend = "setuptools.build_meta"\n'
                 f'[project]\nname = "{name}"\nversion = "{version}"\n').encode()
    path = out / (filename or f"{stem}.tar.gz")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for member, data in ((f"{root}/PKG-INFO", meta), (f"{root}/pyproject.toml", pyproject),
                             (f"{root}/{_norm(name)}/__init__.py", f"__version__ = {version!r}\n".encode())):
            info = tarfile.TarInfo(member)
            info.size, info.mtime, info.mode = len(data), 1767225600, 0o644
            tar.addfile(info, io.BytesIO(data))
        for info, data in extra_members or []:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    import gzip

    path.write_bytes(gzip.compress(buf.getvalue(), mtime=0))
    return Dist(path, name, version, meta)


def make_zip_sdist(out: Path, name: str, version: str, *, filename: str | None = None,
                   metadata_version: str = "2.1") -> Dist:
    """A .zip source distribution, as older releases were published: one top-level directory."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / (filename or f"{name}-{version}.zip")
    root = path.name[: -len(".zip")]
    meta = metadata_text(name, version, metadata_version=metadata_version).encode()
    setup = f"from setuptools import setup\nsetup(name={name!r}, version={version!r})\n".encode()
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for member, data in ((f"{root}/PKG-INFO", meta), (f"{root}/setup.py", setup)):
            info = zipfile.ZipInfo(member, date_time=(2019, 1, 1, 0, 0, 0))
            info.compress_type, info.external_attr = zipfile.ZIP_DEFLATED, 0o644 << 16
            zf.writestr(info, data)
    return Dist(path, name, version, meta)


def make_zip_bomb_wheel(out: Path, name: str, version: str, *, expanded: int = 512 * 1024 * 1024) -> Dist:
    """A valid wheel that also carries a member expanding to ``expanded`` bytes of zeros."""
    dist = make_wheel(out, name, version)
    chunk = b"\0" * (1 << 20)
    with zipfile.ZipFile(dist.path, "a", zipfile.ZIP_DEFLATED) as zf:
        info = zipfile.ZipInfo(f"{_norm(name)}/bomb.bin", date_time=(2026, 1, 1, 0, 0, 0))
        info.compress_type = zipfile.ZIP_DEFLATED  # a bare ZipInfo is ZIP_STORED: no bomb at all
        info.external_attr = 0o644 << 16
        with zf.open(info, "w", force_zip64=True) as fh:
            for _ in range(expanded // len(chunk)):
                fh.write(chunk)
    return dist


def make_tar_bomb_sdist(out: Path, name: str, version: str, *, expanded: int = 512 * 1024 * 1024) -> Dist:
    stem = f"{_norm(name)}-{version}"
    meta = metadata_text(name, version, metadata_version="2.2").encode()
    path = out / f"{stem}.tar.gz"
    out.mkdir(parents=True, exist_ok=True)
    import gzip

    with gzip.GzipFile(path, "wb", compresslevel=9, mtime=0) as gz, tarfile.open(fileobj=gz, mode="w|") as tar:
        info = tarfile.TarInfo(f"{stem}/zeros.bin")
        info.size = expanded

        class Zeros(io.RawIOBase):
            def __init__(self, n: int) -> None:
                self.left = n

            def readable(self) -> bool:  # io.BufferedReader needs a readable raw stream
                return True

            def readinto(self, b):  # type: ignore[no-untyped-def]
                n = min(len(b), self.left)
                b[:n] = b"\0" * n
                self.left -= n
                return n

        tar.addfile(info, io.BufferedReader(Zeros(expanded)))
        pinfo = tarfile.TarInfo(f"{stem}/PKG-INFO")
        pinfo.size = len(meta)
        tar.addfile(pinfo, io.BytesIO(meta))
    return Dist(path, name, version, meta)
