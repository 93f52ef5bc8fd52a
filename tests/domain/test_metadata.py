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
from moorage.web.statuses import status_of


def text(*lines: str, body: str = "") -> bytes:
    return ("\n".join(lines) + "\n\n" + body).encode()


def meta(version: str = "2.1", name: str = "Foo-Bar", release: str = "1.0", *extra: str) -> CoreMetadata:
    return parse_metadata(text(f"Metadata-Version: {version}", f"Name: {name}", f"Version: {release}", *extra))


def refused(raw: bytes) -> Denied:
    with pytest.raises(Denied) as info:
        parse_metadata(raw)
    assert status_of(info.value.decision) == 400
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


@pytest.mark.parametrize("version", ["3.0", "2.7", "0.9", "1.3", "two", "2.1.1", "1.3.0", ""])
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
    # PEP 643: Name and Version may never be dynamic.
    (text("Metadata-Version: 2.2", "Name: foo", "Version: 1.0", "Dynamic: Name"), "invalid-metadata", "dynamic"),
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
        assert status_of(denied.decision) == 400 and denied.decision.reason
        return
    assert parsed.metadata_version in SUPPORTED_METADATA_VERSIONS


@given(st.lists(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=30), max_size=6))
def test_any_header_lines_are_parsed_or_refused_never_crash(lines: list[str]) -> None:
    raw = text("Metadata-Version: 2.2", "Name: foo", "Version: 1.0", *lines)
    try:
        parse_metadata(raw)
    except Denied as denied:
        assert status_of(denied.decision) == 400


# -- what real files carry: accepted as PyPI does, or more leniently on purpose (docs/api.md) -----
def base(version: str = "2.1", *extra: str, body: str = "") -> bytes:
    return text(f"Metadata-Version: {version}", "Name: foo", "Version: 1.0", *extra, body=body)


@pytest.mark.parametrize("raw", [
    # setuptools wrote License-File into 2.1 (and 2.2, 2.3) for years; twine and uv leave it out of
    # the form below 2.4, so the public index never sees it.
    base("2.1", "License-File: LICENSE", "License-File: AUTHORS.rst"),
    base("2.3", "License-File: LICENSES\\Apache-2.0.txt"),  # a Windows path: not checked before 2.4
    # hatchling wrote License-Expression into 2.3, and older tools wrote free text there.
    base("2.3", "License-Expression: MIT"),
    base("2.1", "License-Expression: BSD"),
    base("2.1", "Dynamic: License-File"),  # Dynamic before 2.2: kept, not checked
    base("2.4", "Import-Name: foo"),  # 2.5's field in 2.4
    # Fields a resolver reads, written early, are read as of the version that introduced them.
    base("1.1", "Requires-Dist: attrs>=22", "Requires-Python: >=3.8"),
    base("1.2", "Provides-Extra: Socks_Proxy"),  # not normalized: fine before 2.3
    base("2.1", "Provides-Extra: use_chardet_on_py3"),
    # Metadata-Version 2.0 (withdrawn, written by bdist_wheel until 2018): read as 2.1.
    base("2.0", "Provides-Extra: socks", "Requires-Dist: pysocks; extra == 'socks'",
         "Description-Content-Type: text/markdown"),
    # distutils' placeholders are dropped before checking, as the public index does.
    base("2.1", "Home-page: UNKNOWN", "Author-email: UNKNOWN", "Platform: UNKNOWN", "License: UNKNOWN"),
    # Headers no version defines are kept in the bytes.
    base("2.1", "X-Generator: something", "Tag: py3"),
    # Fields only people read, as real files write them.
    base("2.1", "Author: Ada Lovelace,\n  Charles Babbage"),  # a folded header is one line
    base("2.1", "Author-email: Ada <ada@example.org>, bob@example.com"),
    base("2.1", "Classifier: Private :: Do Not Upload"),
    base("2.1", "Classifier: Natural Language :: Ukranian"),  # deprecated: kept
    base("2.1", "Classifier: Topic :: Software Development :: Libraries :: Python Modules "),
    base("2.1", "Summary: tabs\tare fine"),
    base("2.1", "Project-URL: Source, https://example.org/src", "Home-page: http://example.org"),
    base("2.1", "License: GPL\n  \x0c\n  page two", body="An escape \x1b[1m in a long description.\n"),
], ids=lambda raw: raw.decode(errors="replace").split("\n", 3)[-1][:40])
def test_what_real_files_carry_is_accepted(raw: bytes) -> None:
    parsed = parse_metadata(raw)
    assert parsed.raw == raw  # served byte for byte as the file's .metadata
    assert parsed.name == "foo"


def test_metadata_2_0_keeps_its_declared_version_and_its_fields() -> None:
    parsed = parse_metadata(base("2.0", "Provides-Extra: socks", "Requires-Dist: pysocks; extra == 'socks'"))
    assert parsed.metadata_version == "2.0"
    assert parsed.fields["metadata_version"] == "2.0"
    assert parsed.fields["provides_extra"] == ["socks"]
    assert not parsed.servable_for_sdist()


def test_the_json_fields_are_the_files_own() -> None:
    parsed = parse_metadata(base("2.1", "Home-page: UNKNOWN", "License-File: LICENSE"))
    assert parsed.fields["home_page"] == "UNKNOWN"
    assert parsed.fields["license_files"] == ["LICENSE"]


@pytest.mark.parametrize(("raw", "says"), [
    # What a resolver reads is strict, as on the public index (and pip cannot read these either).
    (base("2.1", "Requires-Dist: pytz (>dev)"), "requires-dist"),
    (base("2.1", "Requires-Dist: click (>=7.*)"), "requires-dist"),
    (base("1.1", "Requires-Dist: ???"), "requires-dist"),  # written early, still checked
    (base("2.1", "Requires-Python: >>3.6"), "requires-python"),
    (base("2.1", "Provides-Extra: .none"), "provides-extra"),
    (base("2.3", "Provides-Extra: not valid!"), "provides-extra"),
    (base("2.1", "Requires-Dist: foo @ https://example.org/foo.whl"), "direct reference"),
    (base("2.1", "Provides-Dist: not a requirement!"), "provides-dist"),
    (base("2.1", "Name: bar"), "name is given more than once"),
    (base("2.1", "Version: 2.0"), "version is given more than once"),
    # Dynamic, from 2.2: only the fields PEP 643 lets an sdist leave to the build.
    (base("2.2", "Dynamic: Version"), "dynamic"),
    (base("2.2", "Dynamic: Frobnicate"), "dynamic"),
    # PEP 639 from 2.4: an SPDX expression, relative license paths, and not both License fields.
    (base("2.4", "License-Expression: BSD"), "license-expression"),
    (base("2.4", "License-File: ../LICENSE"), "license-file"),
    (base("2.4", "License: MIT", "License-Expression: MIT"), "License and License-Expression"),
    # The public index's own checks.
    (base("2.1", "Summary: " + "x" * 513), "longer than 512"),
    (base("2.1", "Summary: one\n  two"), "single line"),
    (base("2.1", "Home-page: not a url"), "Home-page"),
    (base("2.1", "Download-URL: ftp://example.org/x.tar.gz"), "Download-URL"),
    (base("2.1", "Project-URL: " + "L" * 33 + ", https://example.org"), "longer than 32"),
    (base("2.1", "Project-URL: Source, javascript:alert(1)"), "Project-URL"),
    (base("2.1", "Author-email: nobody@"), "not a valid email"),
    (base("2.1", "Maintainer-email: two words@example.org"), "not a valid email"),
    (base("2.1", "Classifier: Programming Language :: Cobol++"), "not a known trove classifier"),
    # Control characters in one-line fields: a terminal would act on them.
    (base("2.1", "Summary: bell\x07"), "U+0007"),
    (base("2.1", "Summary: \x1b[31mred"), "U+001B"),
    (base("2.1", "Summary: del\x7f"), "U+007F"),
    (base("2.1", "Summary: csi\u009b31m"), "U+009B"),
    (base("2.1", "Author: A\x00B"), "U+0000"),
    (base("2.1", "Keywords: a,\x08b"), "U+0008"),
    (base("2.1", "Classifier: Private :: \x1b"), "U+001B"),
    (base("2.1", "Project-URL: Home\x1b, https://example.org"), "U+001B"),
], ids=lambda v: v if isinstance(v, str) else v.decode(errors="replace").split("\n", 3)[-1][:40])
def test_what_a_reader_cannot_trust_is_refused(raw: bytes, says: str) -> None:
    denied = refused(raw)
    assert denied.decision.rule == "invalid-metadata"
    assert says.lower() in denied.decision.reason.lower(), denied.decision.reason


@pytest.mark.parametrize("filename,filetype", [
    ("Foo-Bar-1.0.tar.gz", "sdist"), ("foo.bar-1.0.zip", "sdist"), ("FOO_BAR-01.0.tar.gz", "sdist"),
])
def test_older_sdist_names_agree_with_their_metadata(filename: str, filetype: str) -> None:
    check_agreement(meta(), parse_filename(filename, filetype), "Foo-Bar", "1.0")


def test_a_hyphen_in_an_older_sdist_version_is_found_by_the_metadata() -> None:
    post = meta("2.1", "foo-1.0", "1.0.post1")  # a project named "foo-1.0" at 1.0.post1 ...
    check_agreement(post, parse_filename("foo-1.0-1.0-1.tar.gz", "sdist"), "foo-1.0", "1.0.post1")
    one = meta("2.1", "foo", "1.0.post1")  # ... and "foo" at 1.0-1, both from the same kind of name
    check_agreement(one, parse_filename("foo-1.0-1.tar.gz", "sdist"), "foo", "1.0.post1")


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
    assert status_of(info.value.decision) == 400
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
