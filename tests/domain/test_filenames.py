"""Distribution filenames: wheels and PEP 625 sdists."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st
from packaging.version import Version

from moorage.domain.decisions import Denied
from moorage.domain.filenames import MAX_FILENAME_LENGTH, DistFilename, parse_filename
from moorage.web.statuses import status_of


def refused(filename: str, filetype: str) -> Denied:
    with pytest.raises(Denied) as info:
        parse_filename(filename, filetype)
    assert not info.value.decision.allowed
    assert status_of(info.value.decision) == 400
    return info.value


# -- wheels -----------------------------------------------------------------------------------
@pytest.mark.parametrize(("filename", "name", "version", "python"), [
    ("foo-1.0-py3-none-any.whl", "foo", "1.0", "py3"),
    ("foo_bar-2.0.1-py3-none-any.whl", "foo_bar", "2.0.1", "py3"),
    ("foo-1.0-py2.py3-none-any.whl", "foo", "1.0", "py2.py3"),
    ("foo-1.0-1-py3-none-any.whl", "foo", "1.0", "py3"),
    ("foo-1.0rc1-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl", "foo", "1.0rc1", "cp311"),
    ("numpy-2.1.0-cp312-cp312-win_amd64.whl", "numpy", "2.1.0", "cp312"),
    ("foo-1!2.0+local.7-py3-none-any.whl", "foo", "1!2.0+local.7", "py3"),
])
def test_valid_wheel_filenames(filename: str, name: str, version: str, python: str) -> None:
    parsed = parse_filename(filename, "bdist_wheel")
    assert parsed == DistFilename(filename, name, Version(version), "bdist_wheel", python)


@pytest.mark.parametrize(("filename", "reason"), [
    ("foo-1.0-py3-none-any.zip", "must end in .whl"),
    ("foo-1.0-py3-none-any.tar.gz", "must end in .whl"),
    ("foo-1.0.whl", "invalid wheel filename"),
    ("foo-1.0-py3-none.whl", "invalid wheel filename"),
    ("foo-notaversion-py3-none-any.whl", "invalid wheel filename"),
    ("foo-1.0-x-py3-none-any.whl", "invalid wheel filename"),  # a build tag starts with a digit
    ("foo bar-1.0-py3-none-any.whl", "invalid wheel filename"),
    (".whl", "invalid wheel filename"),
])
def test_invalid_wheel_filenames(filename: str, reason: str) -> None:
    denied = refused(filename, "bdist_wheel")
    assert denied.decision.rule == "invalid-filename"
    assert reason in denied.decision.reason
    assert repr(filename) in denied.decision.reason


# -- sdists -----------------------------------------------------------------------------------
@pytest.mark.parametrize(("filename", "name", "version"), [
    ("foo-1.0.tar.gz", "foo", "1.0"),
    ("foo_bar-1.0.tar.gz", "foo_bar", "1.0"),
    ("foo_bar_baz-1.0.0.tar.gz", "foo_bar_baz", "1.0.0"),
    ("foo-1.0.post1.tar.gz", "foo", "1.0.post1"),
    ("foo-1.0rc1.tar.gz", "foo", "1.0rc1"),
    ("foo-1.0.dev3.tar.gz", "foo", "1.0.dev3"),
    ("foo-1!2.0.tar.gz", "foo", "1!2.0"),
    ("foo-1.0+local.1.tar.gz", "foo", "1.0+local.1"),
    ("a1-0.tar.gz", "a1", "0"),
])
def test_valid_sdist_filenames(filename: str, name: str, version: str) -> None:
    parsed = parse_filename(filename, "sdist")
    assert parsed == DistFilename(filename, name, Version(version), "sdist", "source")


@pytest.mark.parametrize(("filename", "reason"), [
    ("foo-1.0.tar.bz2", "must be a .tar.gz"),
    ("foo-1.0.tgz", "must be a .tar.gz"),
    ("foo-1.0.tar", "must be a .tar.gz"),
    ("foo-1.0.egg", "must be a .tar.gz"),
    ("foo.tar.gz", "invalid sdist filename"),
    ("foo-notaversion.tar.gz", "invalid sdist filename"),
    ("-1.0.tar.gz", "invalid sdist filename"),
    ("foo_-1.0.tar.gz", "invalid sdist filename"),
    ("foo bar-1.0.tar.gz", "invalid sdist filename"),
])
def test_invalid_sdist_filenames(filename: str, reason: str) -> None:
    denied = refused(filename, "sdist")
    assert denied.decision.rule == "invalid-filename"
    assert reason in denied.decision.reason, denied.decision.reason


@pytest.mark.parametrize(("filename", "readings"), [
    # Names the public index took before it enforced PEP 625, and pip still installs.
    ("Foo-1.0.tar.gz", [("Foo", "1.0")]),
    ("PyYAML-6.0.1.tar.gz", [("PyYAML", "6.0.1")]),
    ("foo.bar-1.0.tar.gz", [("foo.bar", "1.0")]),
    ("foo-bar-1.0.tar.gz", [("foo-bar", "1.0")]),
    ("foo-01.0.tar.gz", [("foo", "1.0")]),
    ("foo-1.0RC1.zip", [("foo", "1.0rc1")]),
    ("foo-v1.0.tar.gz", [("foo", "1.0")]),
    # A hyphen inside the version: more than one reading, the metadata picks.
    ("foo-1.0-post1.tar.gz", [("foo", "1.0.post1")]),
    ("foo-1.0-1.zip", [("foo-1.0", "1"), ("foo", "1.0.post1")]),
])
def test_older_sdist_names_are_read_every_way_they_can_be(filename: str, readings: list[tuple[str, str]]) -> None:
    parsed = parse_filename(filename, "sdist")
    assert parsed.packagetype == "sdist"
    assert not parsed.pep625
    assert [(name, str(version)) for name, version in parsed.readings] == readings


def test_a_pep625_name_has_one_reading() -> None:
    parsed = parse_filename("foo_bar-1.0.post1.tar.gz", "sdist")
    assert parsed.pep625
    assert parsed.readings == (("foo_bar", Version("1.0.post1")),)


versions = st.builds(
    lambda epoch, release, pre, post, dev, local: Version(
        (f"{epoch}!" if epoch else "") + ".".join(map(str, release)) + (pre or "")
        + (f".post{post}" if post is not None else "") + (f".dev{dev}" if dev is not None else "")
        + (f"+{local}" if local else "")
    ),
    st.integers(0, 3),
    st.lists(st.integers(0, 2000), min_size=1, max_size=4),
    st.none() | st.builds(lambda k, n: f"{k}{n}", st.sampled_from(["a", "b", "rc"]), st.integers(0, 9)),
    st.none() | st.integers(0, 9),
    st.none() | st.integers(0, 9),
    st.none() | st.from_regex(r"[a-z0-9]{1,5}(\.[a-z0-9]{1,5}){0,2}", fullmatch=True),
)
names = st.from_regex(r"[a-z0-9]([a-z0-9_]{0,20}[a-z0-9])?", fullmatch=True).filter(lambda n: "__" not in n)


@given(names, versions)
def test_every_normalized_sdist_filename_parses_back(name: str, version: Version) -> None:
    filename = f"{name}-{version}.tar.gz"
    parsed = parse_filename(filename, "sdist")
    assert (parsed.name, parsed.version, parsed.packagetype) == (name, version, "sdist")


@given(names, versions, st.sampled_from(["py3-none-any", "cp312-cp312-manylinux_2_17_x86_64", "py2.py3-none-any"]))
def test_every_wheel_filename_parses_back(name: str, version: Version, tags: str) -> None:
    filename = f"{name}-{version}-{tags}.whl"
    parsed = parse_filename(filename, "bdist_wheel")
    assert (parsed.name, parsed.version, parsed.packagetype) == (name, version, "bdist_wheel")
    assert parsed.python_version == ".".join(sorted(tags.split("-")[0].split(".")))


# -- shared checks ----------------------------------------------------------------------------
@pytest.mark.parametrize("filetype", ["sdist", "bdist_wheel"])
@pytest.mark.parametrize("filename", ["", ".", "..", "a/foo-1.0.tar.gz", "../foo-1.0.tar.gz",
                                      "a\\foo-1.0.tar.gz", "foo-1.0.tar.gz\x00", "foo\n-1.0.tar.gz",
                                      "/foo-1.0-py3-none-any.whl", "foo-1.0-py3-none-any.whl\x7f"])
def test_unsafe_or_empty_filenames_are_refused(filename: str, filetype: str) -> None:
    denied = refused(filename, filetype)
    assert denied.decision.rule == "invalid-filename"


def test_the_filename_length_limit() -> None:
    longest = "a" * (MAX_FILENAME_LENGTH - len("-1.0.tar.gz")) + "-1.0.tar.gz"
    assert len(longest) == MAX_FILENAME_LENGTH
    assert parse_filename(longest, "sdist").name == longest[: -len("-1.0.tar.gz")]
    denied = refused("a" + longest, "sdist")
    assert str(MAX_FILENAME_LENGTH) in denied.decision.reason


@pytest.mark.parametrize("filetype", ["", "bdist_egg", "bdist_wininst", "bdist_rpm", "SDIST", "wheel"])
def test_unsupported_filetypes_are_refused(filetype: str) -> None:
    denied = refused("foo-1.0.tar.gz", filetype)
    assert denied.decision.rule == "invalid-filetype"
    assert f"unsupported filetype {filetype!r}" in denied.decision.reason


@given(st.text(max_size=80), st.sampled_from(["sdist", "bdist_wheel", "bdist_egg"]))
def test_any_filename_is_parsed_or_refused_never_crashes(filename: str, filetype: str) -> None:
    try:
        parsed = parse_filename(filename, filetype)
    except Denied as denied:
        assert status_of(denied.decision) == 400 and denied.decision.reason
        return
    assert parsed.filename == filename
    assert not re.search(r"[/\\\x00-\x1f\x7f]", filename)
    assert filename.endswith(".whl" if filetype == "bdist_wheel" else ".tar.gz")
