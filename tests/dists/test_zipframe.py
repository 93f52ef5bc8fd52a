"""Zips that read one way through the central directory and another through the local headers."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest

from moorage.dists import archives
from moorage.dists.zipframe import FramingError, check_framing
from moorage.domain.decisions import Denied
from moorage.domain.filenames import parse_filename
from moorage.domain.policy import UploadPolicy
from tests.support.dists import make_wheel


def check(data: bytes) -> None:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        check_framing(archive, io.BytesIO(data), len(data))


def refused(data: bytes) -> str:
    with pytest.raises(FramingError) as info:
        check(data)
    return str(info.value)


def two_members(**kwargs: object) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, **kwargs) as zf:  # type: ignore[arg-type]
        zf.writestr("pkg/a.py", b"a = 1\n" * 50)
        zf.writestr("pkg/b.py", b"b = 2\n" * 50)
    return buf.getvalue()


def test_a_plain_zip_reads_one_way(tmp_path: Path) -> None:
    check(two_members())
    check(make_wheel(tmp_path, "demo", "1.0").path.read_bytes())
    check(_empty())


def _empty() -> bytes:
    buf = io.BytesIO()
    zipfile.ZipFile(buf, "w").close()
    return buf.getvalue()


def test_zip64_sizes_in_local_headers_are_read() -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf, zf.open("big.bin", "w", force_zip64=True) as fh:
        fh.write(b"x" * 1000)
    check(buf.getvalue())


def test_data_before_the_first_member_is_refused() -> None:
    assert "not a zip record" in refused(b"#!/bin/sh\nexec something\n" + two_members())


def test_data_after_the_end_is_refused() -> None:
    assert "after its end-of-central-directory" in refused(two_members() + b"trailing")


def test_two_zips_end_to_end_are_refused() -> None:
    assert refused(two_members() + two_members())


def test_a_local_header_the_central_directory_does_not_list_is_refused() -> None:
    data = two_members()
    central = data.rindex(b"pkg/b.py")  # the central directory's copy of the name comes last
    hidden = data[:central] + b"pkg/c.py" + data[central + len(b"pkg/b.py"):]
    assert "'pkg/b.py'" in refused(hidden) and "not in the central directory" in refused(hidden)


def test_sizes_that_disagree_are_refused() -> None:
    data = bytearray(two_members())
    data[22:26] = (int.from_bytes(data[22:26], "little") + 1).to_bytes(4, "little")  # the first local size
    assert "disagrees with the central directory" in refused(bytes(data))


def test_a_data_descriptor_is_refused() -> None:
    class Unseekable(io.RawIOBase):
        def __init__(self) -> None:
            self.out = bytearray()

        def writable(self) -> bool:
            return True

        def write(self, b: bytes) -> int:  # type: ignore[override]
            self.out += b
            return len(b)

    sink = Unseekable()
    with zipfile.ZipFile(sink, "w", zipfile.ZIP_DEFLATED) as zf:  # type: ignore[arg-type]
        zf.writestr("pkg/a.py", b"a = 1\n")
    # zipfile cannot seek back to write the sizes into the header: it writes a descriptor after the data.
    data = bytes(sink.out)
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert archive.infolist()[0].flag_bits & 0x08
    assert "data descriptor" in refused(data)


def test_an_upload_with_two_readings_is_refused_by_the_archive_check(tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path, "demo", "1.0")
    wheel.path.write_bytes(wheel.path.read_bytes() + b"appended")
    with pytest.raises(Denied) as denied:
        archives.inspect(wheel.path, parse_filename(wheel.filename, "bdist_wheel"), UploadPolicy())
    assert "cannot be read one way only" in denied.value.decision.reason
