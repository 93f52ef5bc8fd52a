"""Core metadata from the file itself: parsing, PEP 643 servability, agreement with the form."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from packaging.version import Version

from moorage.domain.decisions import Denied
from moorage.domain.filenames import parse_filename
from moorage.domain.metadata import (
    SUPPORTED_METADATA_VERSIONS,
    CoreMetadata,
    check_agreement,
    parse_metadata,
)


def text(*lines: str, body: str = "") -> bytes:
    return ("\n".join(lines) + "\n\n" + body).encode()


def meta(version: str = "2.1", name: str = "Foo-Bar", release: str = "1.0", *extra: str) -> CoreMetadata:
    return parse_metadata(text(f"Metadata-Version: {version}", f"Name: {name}", f"Version: {release}", *extra))


def refused(raw: bytes) -> Denied:
    with pytest.raises(Denied) as info:
        parse_metadata(raw)
    assert info.value.decision.status == 400
    return info.value


# -- parse_metadata ---------------------------------------------------------------------------
def test_parse_a_full_metadata_file() -> None:
    raw = text("Metadata-Version: 2.1", "Name: Foo-Bar", "Version: 1.0.post1", "Summary: a thing",
               "Requires-Python: >=3.9", "Requires-Dist: attrs>=22", "Requires-Dist: rich; extra == 'cli'",
               "Provides-Extra: cli", body="The long description.\n")
    parsed = parse_metadata(raw)
    assert parsed.raw == raw
    assert parsed.metadata_version == "2.1"
    assert parsed.name == "Foo-Bar"
    assert parsed.version == Version("1.0.post1")
    assert parsed.requires_python == ">=3.9"
    assert parsed.dynamic == frozenset()
    assert parsed.fields["summary"] == "a thing"
    assert parsed.fields["requires_dist"] == ["attrs>=22", "rich; extra == 'cli'"]
    assert parsed.fields["description"] == "The long description.\n"


def test_no_requires_python_is_none() -> None:
    assert meta().requires_python is None


def test_dynamic_fields_are_folded_to_lower_case() -> None:
    parsed = meta("2.2", "foo", "1.0", "Dynamic: Requires-Dist", "Dynamic: SUMMARY")
    assert parsed.dynamic == frozenset({"requires-dist", "summary"})


@pytest.mark.parametrize("version", SUPPORTED_METADATA_VERSIONS)
def test_every_supported_metadata_version_parses(version: str) -> None:
    assert meta(version).metadata_version == version


@pytest.mark.parametrize("version", ["3.0", "2.7", "2.0", "0.9", "1.3", "two", "2.1.1"])
def test_unsupported_metadata_versions_are_refused(version: str) -> None:
    denied = refused(text(f"Metadata-Version: {version}", "Name: foo", "Version: 1.0"))
    assert denied.decision.rule == "metadata-version"
    assert f"Metadata-Version {version} is not supported" in denied.decision.reason
    assert "2.4" in denied.decision.reason  # it says which ones are


@pytest.mark.parametrize(("raw", "rule", "says"), [
    (text("Name: foo", "Version: 1.0"), "invalid-metadata", "no Metadata-Version"),
    (b"", "invalid-metadata", "no Metadata-Version"),
    (text("Metadata-Version: 2.1", "Version: 1.0"), "invalid-metadata", "name"),
    (text("Metadata-Version: 2.1", "Name: foo"), "invalid-metadata", "version"),
    (text("Metadata-Version: 2.1", "Name: foo", "Version: not-a-version"), "invalid-metadata", "version"),
    (text("Metadata-Version: 2.1", "Name: -foo-", "Version: 1.0"), "invalid-metadata", "name"),
    (text("Metadata-Version: 2.1", "Name: foo", "Version: 1.0", "Requires-Dist: ???"), "invalid-metadata",
     "requires"),
    (text("Metadata-Version: 2.1", "Name: foo", "Version: 1.0", "Requires-Python: >>3"), "invalid-metadata",
     "requires"),
    # PEP 643: Name and Version may never be dynamic; Dynamic needs metadata 2.2.
    (text("Metadata-Version: 2.2", "Name: foo", "Version: 1.0", "Dynamic: Name"), "invalid-metadata", "dynamic"),
    (text("Metadata-Version: 2.1", "Name: foo", "Version: 1.0", "Dynamic: Summary"), "invalid-metadata", "dynamic"),
])
def test_invalid_metadata_is_refused(raw: bytes, rule: str, says: str) -> None:
    denied = refused(raw)
    assert denied.decision.rule == rule
    assert says.lower() in denied.decision.reason.lower(), denied.decision.reason


@given(st.binary(max_size=300))
def test_any_bytes_are_parsed_or_refused_never_crash(raw: bytes) -> None:
    try:
        parsed = parse_metadata(raw)
    except Denied as denied:
        assert denied.decision.status == 400 and denied.decision.reason
        return
    assert parsed.metadata_version in SUPPORTED_METADATA_VERSIONS


@given(st.lists(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=30), max_size=6))
def test_any_header_lines_are_parsed_or_refused_never_crash(lines: list[str]) -> None:
    raw = text("Metadata-Version: 2.2", "Name: foo", "Version: 1.0", *lines)
    try:
        parse_metadata(raw)
    except Denied as denied:
        assert denied.decision.status == 400


# -- servable_for_sdist (PEP 643) -----------------------------------------------------------
@pytest.mark.parametrize(("version", "dynamic", "servable"), [
    ("1.0", [], False),
    ("1.2", [], False),
    ("2.1", [], False),
    ("2.2", [], True),
    ("2.3", [], True),
    ("2.4", [], True),
    ("2.2", ["Summary"], True),
    ("2.2", ["Description", "Classifier"], True),
    ("2.2", ["Requires-Dist"], False),
    ("2.2", ["requires-dist"], False),
    ("2.4", ["Requires-Python"], False),
    ("2.3", ["Summary", "Requires-Dist"], False),
])
def test_servable_for_sdist(version: str, dynamic: list[str], servable: bool) -> None:
    parsed = meta(version, "foo", "1.0", *(f"Dynamic: {d}" for d in dynamic))
    assert parsed.servable_for_sdist() is servable


# -- check_agreement ------------------------------------------------------------------------
WHEEL = parse_filename("foo_bar-1.0-py3-none-any.whl", "bdist_wheel")
SDIST = parse_filename("foo_bar-1.0.tar.gz", "sdist")


@pytest.mark.parametrize("dist", [WHEEL, SDIST], ids=["wheel", "sdist"])
@pytest.mark.parametrize(("form_name", "form_version"), [
    ("Foo-Bar", "1.0"),
    ("foo_bar", "1.0"),
    ("FOO.BAR", "1.0"),
    ("foo-bar", "1.0.0"),  # the same version in PEP 440
    ("foo-bar", "1.0.0.0"),
    ("foo-bar", "v1.0"),
])
def test_agreeing_form_file_and_filename(dist: object, form_name: str, form_version: str) -> None:
    check_agreement(meta(), dist, form_name, form_version)  # type: ignore[arg-type]


def disagree(metadata: CoreMetadata, dist: object, name: str, version: str) -> Denied:
    with pytest.raises(Denied) as info:
        check_agreement(metadata, dist, name, version)  # type: ignore[arg-type]
    assert info.value.decision.status == 400
    return info.value


def test_the_form_name_must_match() -> None:
    denied = disagree(meta(), WHEEL, "foo-baz", "1.0")
    assert denied.decision.rule == "metadata-mismatch"
    assert "'foo-baz'" in denied.decision.reason and "'Foo-Bar'" in denied.decision.reason


def test_the_form_version_must_match() -> None:
    denied = disagree(meta(), WHEEL, "foo-bar", "1.0.1")
    assert denied.decision.rule == "metadata-mismatch"
    assert "1.0.1" in denied.decision.reason and "says 1.0" in denied.decision.reason


@pytest.mark.parametrize("version", ["", "one", "1.0-what", "latest"])
def test_the_form_version_must_be_a_version(version: str) -> None:
    denied = disagree(meta(), WHEEL, "foo-bar", version)
    assert denied.decision.rule == "invalid-version"
    assert repr(version) in denied.decision.reason


@pytest.mark.parametrize("filename,filetype", [("other-1.0-py3-none-any.whl", "bdist_wheel"),
                                               ("other-1.0.tar.gz", "sdist")])
def test_the_filename_name_must_match(filename: str, filetype: str) -> None:
    denied = disagree(meta(), parse_filename(filename, filetype), "foo-bar", "1.0")
    assert denied.decision.rule == "filename-mismatch"
    assert repr(filename) in denied.decision.reason and "'Foo-Bar'" in denied.decision.reason


@pytest.mark.parametrize("filename,filetype", [("foo_bar-2.0-py3-none-any.whl", "bdist_wheel"),
                                               ("foo_bar-1.0.1.tar.gz", "sdist")])
def test_the_filename_version_must_match(filename: str, filetype: str) -> None:
    denied = disagree(meta(), parse_filename(filename, filetype), "foo-bar", "1.0")
    assert denied.decision.rule == "filename-mismatch"
    assert "metadata version 1.0" in denied.decision.reason


def test_the_form_is_compared_before_the_filename() -> None:
    other = parse_filename("other-9.0.tar.gz", "sdist")
    assert disagree(meta(), other, "nope", "1.0").decision.rule == "metadata-mismatch"
    assert disagree(meta(), other, "foo-bar", "1.0").decision.rule == "filename-mismatch"


def test_a_version_too_long_to_convert_is_refused_not_crashed() -> None:
    from moorage.domain.decisions import Denied
    from moorage.domain.filenames import parse_filename
    from moorage.domain.metadata import check_agreement, parse_metadata

    meta = parse_metadata(b"Metadata-Version: 2.1\nName: demo\nVersion: 1.0\n")
    dist = parse_filename("demo-1.0-py3-none-any.whl", "bdist_wheel")
    with pytest.raises(Denied) as refused:
        check_agreement(meta, dist, "demo", "9" * 5000)
    assert refused.value.decision.rule == "invalid-version"
