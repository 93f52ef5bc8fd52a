"""C2SP tlog-tiles: tile paths, tile contents and entry bundles (tile height 8)."""

from __future__ import annotations

import re
from collections.abc import Callable

from moorage.log.merkle import root

TILE_HEIGHT = 8
TILE_WIDTH = 1 << TILE_HEIGHT  # 256 hashes (or entries) in a full tile
_PATH = re.compile(r"^(entries|\d{1,2})/((?:x\d{3}/)*\d{3})(?:\.p/(\d{1,3}))?$")


def encode_index(n: int) -> str:
    """Tile index N as path elements of three digits, all but the last prefixed with x."""
    digits = f"{n:03d}"
    while len(digits) % 3:
        digits = "0" + digits
    groups = [digits[i:i + 3] for i in range(0, len(digits), 3)]
    return "/".join([f"x{g}" for g in groups[:-1]] + [groups[-1]])


def tile_path(level: int | str, n: int, width: int = TILE_WIDTH) -> str:
    suffix = "" if width == TILE_WIDTH else f".p/{width}"
    return f"tile/{level}/{encode_index(n)}{suffix}"


def parse_tile_path(path: str) -> tuple[str, int, int]:
    """(level or "entries", N, width) from "L/N[.p/W]"; ValueError if malformed."""
    match = _PATH.match(path)
    if not match:
        raise ValueError(f"not a tile path: {path!r}")
    level, index, width = match.groups()
    parts = index.split("/")
    if any(not p.startswith("x") for p in parts[:-1]):
        raise ValueError(f"not a tile path: {path!r}")
    n = int("".join(p.lstrip("x") for p in parts))
    if len(parts) > 1 and parts[0] == "x000":
        raise ValueError(f"a tile index has no leading zero groups: {path!r}")
    w = int(width) if width is not None else TILE_WIDTH
    if not 1 <= w <= TILE_WIDTH or (width is not None and w == TILE_WIDTH):
        raise ValueError(f"a partial tile has a width of 1 to 255: {path!r}")
    if level != "entries" and int(level) > 63:
        raise ValueError(f"no tile level above 63: {path!r}")
    return level, n, w


def hashes_at_level(level: int, size: int) -> int:
    """How many complete nodes the tree of ``size`` leaves has at tile level ``level``."""
    return size >> (TILE_HEIGHT * level)


def tile_exists(level: int, n: int, width: int, size: int) -> bool:
    count = hashes_at_level(level, size)
    full = count // TILE_WIDTH
    if width == TILE_WIDTH:
        return n < full
    return n == full and width == count % TILE_WIDTH


def tile_hashes(level: int, n: int, width: int, leaves: Callable[[int, int], list[bytes]]) -> list[bytes]:
    """The hashes of a tile; ``leaves(start, end)`` reads leaf hashes. Level L holds the roots of
    the perfect subtrees of 256**L leaves, so each is the root of its leaf range."""
    span = TILE_WIDTH ** level
    first = n * TILE_WIDTH
    if level == 0:
        return leaves(first, first + width)
    out = []
    for i in range(first, first + width):
        out.append(root(leaves(i * span, (i + 1) * span)))
    return out


def encode_bundle(entries: list[bytes]) -> bytes:
    out = bytearray()
    for entry in entries:
        if len(entry) > 0xFFFF:
            raise ValueError("an entry in a bundle is at most 65535 bytes")
        out += len(entry).to_bytes(2, "big") + entry
    return bytes(out)


def decode_bundle(data: bytes) -> list[bytes]:
    entries, pos = [], 0
    while pos < len(data):
        if pos + 2 > len(data):
            raise ValueError("a truncated entry bundle")
        length = int.from_bytes(data[pos:pos + 2], "big")
        pos += 2
        if pos + length > len(data):
            raise ValueError("a truncated entry bundle")
        entries.append(data[pos:pos + length])
        pos += length
    return entries
