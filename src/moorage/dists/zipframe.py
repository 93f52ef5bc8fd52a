"""One reading of a zip file: its local headers, walked from the first byte, must say what its
central directory says.

Installers read a wheel through the central directory (Python's ``zipfile``, pip); a scanner
or another tool may stream the local headers instead. A zip whose two readings differ (a
member only one of them sees, other sizes, data before the first header or after the end)
shows each reader different files; the public index refuses such zips since 2025 and so does
moorage (docs/api.md). Only what a wheel or a zip sdist needs is read: stored or deflated
members, ZIP64 sizes; no data descriptors, encryption or multi-disk archives.
"""

from __future__ import annotations

import struct
import zipfile
from typing import BinaryIO

_LOCAL = b"PK\x03\x04"
_CENTRAL = b"PK\x01\x02"
_END = b"PK\x05\x06"
_END64 = b"PK\x06\x06"
_END64_LOCATOR = b"PK\x06\x07"
_SENTINEL = 0xFFFFFFFF
_ZIP64_EXTRA = 0x0001


class FramingError(ValueError):
    pass


def _read(fp: BinaryIO, n: int) -> bytes:
    data = fp.read(n)
    if len(data) != n:
        raise FramingError("it ends inside a record")
    return data


def _raw_name(info: zipfile.ZipInfo) -> bytes:
    # zipfile decodes names as UTF-8 when flag bit 11 says so, else as cp437.
    return info.orig_filename.encode("utf-8" if info.flag_bits & 0x800 else "cp437")


def _zip64_sizes(extra: bytes, size: int, compressed: int) -> tuple[int, int]:
    """A local header's sizes, from its ZIP64 extra field where the header holds the sentinel."""
    seen: set[int] = set()
    while extra:
        if len(extra) < 4:
            raise FramingError("an extra field is cut short")
        kind, length = struct.unpack("<HH", extra[:4])
        body, extra = extra[4:4 + length], extra[4 + length:]
        if len(body) != length:
            raise FramingError("an extra field is cut short")
        if kind in seen:
            raise FramingError(f"an extra field (0x{kind:04x}) appears twice in one header")
        seen.add(kind)
        if kind == _ZIP64_EXTRA:
            values = [v for (v,) in struct.iter_unpack("<Q", body[: len(body) // 8 * 8])]
            if size == _SENTINEL:
                if not values:
                    raise FramingError("a ZIP64 size is missing")
                size = values.pop(0)
            if compressed == _SENTINEL:
                if not values:
                    raise FramingError("a ZIP64 size is missing")
                compressed = values.pop(0)
    return size, compressed


def check_framing(archive: zipfile.ZipFile, fp: BinaryIO, file_size: int) -> None:
    """Raises FramingError with the reason when the two readings of the zip differ."""
    central = {_raw_name(info): info for info in archive.infolist()}
    if len(central) != len(archive.infolist()):
        raise FramingError("the central directory names a member twice")
    for info in central.values():
        if info.comment:
            raise FramingError(f"the member {info.filename!r} has a comment in the central directory")
    fp.seek(0)
    local: set[bytes] = set()
    while True:
        signature = _read(fp, 4)
        if signature != _LOCAL:
            break
        flags, method, compressed, size, name_length, extra_length = struct.unpack(
            "<xxHHxxxxxxxxLLHH", _read(fp, 26))
        name = _read(fp, name_length)
        size, compressed = _zip64_sizes(_read(fp, extra_length), size, compressed)
        member = central.get(name)
        if member is None:
            raise FramingError(f"the local header of {name.decode('utf-8', 'replace')!r} is not in the central "
                               "directory")
        info = member
        if name in local:
            raise FramingError(f"{info.filename!r} has two local headers")
        if flags & 0x08:
            raise FramingError(f"{info.filename!r} uses a data descriptor (its sizes follow its data)")
        if flags & 0x01:
            raise FramingError(f"{info.filename!r} is encrypted")
        if (method, compressed, size) != (info.compress_type, info.compress_size, info.file_size):
            raise FramingError(f"the local header of {info.filename!r} disagrees with the central directory")
        local.add(name)
        fp.seek(compressed, 1)
    if signature not in (_CENTRAL, _END, _END64):
        raise FramingError("there is data between its members that is not a zip record")
    if local != set(central):
        missing = sorted(n.decode("utf-8", "replace") for n in set(central) - local)
        raise FramingError(f"{missing[0]!r} is in the central directory but has no local header")
    # Then the central directory as it follows the members, and its end record, which must be
    # the one zipfile read and close the file (not the first of two zips end to end).
    walked: list[bytes] = []
    while signature == _CENTRAL:
        name_length, extra_length, comment_length = struct.unpack("<HHH", _read(fp, 42)[24:30])
        walked.append(_read(fp, name_length))
        fp.seek(extra_length + comment_length, 1)
        signature = _read(fp, 4)
    if sorted(walked) != sorted(central):
        raise FramingError("the central directory after the members is not the one its end record points to")
    if signature == _END64:
        (record_size,) = struct.unpack("<Q", _read(fp, 8))
        fp.seek(record_size, 1)
        if _read(fp, 4) != _END64_LOCATOR:
            raise FramingError("its ZIP64 end record has no locator")
        fp.seek(16, 1)
        signature = _read(fp, 4)
    if signature != _END:
        raise FramingError("its central directory is not followed by an end record")
    (comment_length,) = struct.unpack("<H", _read(fp, 18)[16:18])
    if fp.seek(comment_length, 1) != file_size:
        raise FramingError("there is data after its end-of-central-directory record")
