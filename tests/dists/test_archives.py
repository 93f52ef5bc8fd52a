"""Looking inside uploads: what the wheel and sdist formats require, as the public index checks it."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from moorage.dists import archives
from moorage.domain.decisions import Denied
from moorage.domain.filenames import parse_filename
from moorage.domain.metadata import check_license_files, parse_metadata
from moorage.domain.policy import UploadPolicy
from moorage.web.statuses import status_of
from tests.support.dists import make_sdist, make_wheel, make_zip_sdist, metadata_text

POLICY = UploadPolicy()


def inspect(path: Path) -> archives.ArchiveInfo:
    filetype = "bdist_wheel" if path.name.endswith(".whl") else "sdist"
    return archives.inspect(path, parse_filename(path.name, filetype), POLICY)


def refused(path: Path) -> str:
    with pytest.raises(Denied) as info:
        inspect(path)
    assert status_of(info.value.decision) == 400
    return info.value.decision.reason


def rewrite(path: Path, *, drop: str | None = None, add: dict[str, bytes] | None = None,
            method: int = zipfile.ZIP_DEFLATED) -> None:
    """The same zip without one member, with others added (compressed with ``method``)."""
    with zipfile.ZipFile(path) as zf:
        kept = [(info, zf.read(info)) for info in zf.infolist() if info.filename != drop]
    with zipfile.ZipFile(path, "w") as zf:
        for info, data in kept:
            zf.writestr(info, data)
        for name, data in (add or {}).items():
            info = zipfile.ZipInfo(name, date_time=(2026, 1, 1, 0, 0, 0))
            info.compress_type = method
            zf.writestr(info, data)


def test_a_wheel_names_its_members_and_license_root(tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path, "demo", "1.0")
    info = inspect(wheel.path)
    assert info.metadata == wheel.metadata
    assert "demo-1.0.dist-info/RECORD" in info.members
    assert info.license_root == "demo-1.0.dist-info/licenses/"


def test_a_wheel_without_record_is_refused(tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path, "demo", "1.0")
    rewrite(wheel.path, drop="demo-1.0.dist-info/RECORD")
    assert "has no demo-1.0.dist-info/RECORD" in refused(wheel.path)


@pytest.mark.parametrize(("entry_points", "says"), [
    (b"[console_scripts]\ndemo = demo:main\ndemo.cli-2 = demo:cli\n\n[demo.plugins]\nAny Name! = demo:x\n", None),
    (b"[console_scripts]\n../../bin/evil = demo:main\n", "names the script '../../bin/evil'"),
    (b"[gui_scripts]\nsub/dir = demo:main\n", "names the script 'sub/dir'"),
    (b"demo = demo:main\n", "not a valid INI file"),
    (b"[console_scripts]\ndemo: demo:main\n", "not a valid INI file"),  # '=' is the only delimiter
    (b"[console_scripts]\nd\xe9mo = demo:main\n", "not UTF-8"),
])
def test_entry_points_must_read_as_the_specification_says(tmp_path: Path, entry_points: bytes,
                                                          says: str | None) -> None:
    wheel = make_wheel(tmp_path, "demo", "1.0", extra_members={"demo-1.0.dist-info/entry_points.txt": entry_points})
    if says is None:
        inspect(wheel.path)
    else:
        assert says in refused(wheel.path)


@pytest.mark.parametrize("method", [zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA])
def test_a_compression_method_pip_may_not_read_is_refused(tmp_path: Path, method: int) -> None:
    wheel = make_wheel(tmp_path, "demo", "1.0")
    rewrite(wheel.path, add={"demo/data.bin": b"x" * 1000}, method=method)
    assert "compression method other than stored or deflated" in refused(wheel.path)


def test_a_zip_sdist_of_an_older_release_is_read(tmp_path: Path) -> None:
    sdist = make_zip_sdist(tmp_path, "Demo", "1.0")
    assert sdist.filename == "Demo-1.0.zip"
    info = inspect(sdist.path)
    assert info.metadata == sdist.metadata
    assert info.license_root == "Demo-1.0/"


def test_a_zip_sdist_needs_one_top_level_directory_with_pkg_info(tmp_path: Path) -> None:
    sdist = make_zip_sdist(tmp_path, "Demo", "1.0")
    rewrite(sdist.path, add={"other/file.txt": b"x"})
    assert "single top-level directory" in refused(sdist.path)
    bare = make_zip_sdist(tmp_path / "bare", "Demo", "1.0")
    rewrite(bare.path, drop="Demo-1.0/PKG-INFO")
    assert "no PKG-INFO" in refused(bare.path)


LICENSED = metadata_text("demo", "1.0", metadata_version="2.4").replace(
    "Summary:", "License-Expression: MIT\nLicense-File: LICENSE\nLicense-File: licenses/NOTICE\nSummary:", 1)


def test_license_files_of_metadata_2_4_are_in_the_wheel(tmp_path: Path) -> None:
    complete = make_wheel(tmp_path, "demo", "1.0", metadata=LICENSED, extra_members={
        "demo-1.0.dist-info/licenses/LICENSE": b"MIT", "demo-1.0.dist-info/licenses/licenses/NOTICE": b"n"})
    info = inspect(complete.path)
    check_license_files(parse_metadata(info.metadata), info.members, info.license_root)
    missing = make_wheel(tmp_path / "missing", "demo", "1.0", metadata=LICENSED, extra_members={
        "demo-1.0.dist-info/licenses/LICENSE": b"MIT", "NOTICE": b"n"})
    info = inspect(missing.path)
    with pytest.raises(Denied) as denied:
        check_license_files(parse_metadata(info.metadata), info.members, info.license_root)
    assert "License-File licenses/NOTICE is not in the distribution" in denied.value.decision.reason
    assert "demo-1.0.dist-info/licenses/licenses/NOTICE" in denied.value.decision.reason


def test_license_files_of_an_sdist_are_under_its_top_directory(tmp_path: Path) -> None:
    sdist = make_sdist(tmp_path, "demo", "1.0", metadata=LICENSED)
    info = inspect(sdist.path)
    assert info.license_root == "demo-1.0/"
    with pytest.raises(Denied) as denied:
        check_license_files(parse_metadata(info.metadata), info.members, info.license_root)
    assert "looked for demo-1.0/LICENSE" in denied.value.decision.reason


def test_license_file_in_older_metadata_is_not_held_to_pep_639(tmp_path: Path) -> None:
    older = metadata_text("demo", "1.0").replace("Summary:", "License-File: LICENSE\nSummary:", 1)
    wheel = make_wheel(tmp_path, "demo", "1.0", metadata=older)
    info = inspect(wheel.path)
    check_license_files(parse_metadata(info.metadata), info.members, info.license_root)  # no LICENSE: fine
