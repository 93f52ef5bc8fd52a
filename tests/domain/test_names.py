"""Project names: validity (PEP 508), normalization (PEP 503), look-alike keys."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from moorage.domain.names import (
    MAX_NAME_LENGTH,
    check_name,
    check_new_name,
    is_valid_name,
    normalize,
    similarity_key,
)
from moorage.web.statuses import status_of

ALNUM = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
# Valid names: letters and digits at both ends, . _ - inside.
valid_names = st.builds(
    lambda first, middle, last: first + middle + last,
    st.sampled_from(ALNUM),
    st.text(alphabet=ALNUM + "._-", max_size=40),
    st.sampled_from(ALNUM),
) | st.sampled_from(ALNUM)


# -- normalize --------------------------------------------------------------------------------
@pytest.mark.parametrize(("name", "expected"), [
    ("foo", "foo"),
    ("Foo", "foo"),
    ("Foo_Bar", "foo-bar"),
    ("foo.bar", "foo-bar"),
    ("foo--bar", "foo-bar"),
    ("foo-_.-bar", "foo-bar"),
    ("FOO.BAR_baz-QUX", "foo-bar-baz-qux"),
    ("zope.interface", "zope-interface"),
    ("a1", "a1"),
])
def test_normalize_examples(name: str, expected: str) -> None:
    assert normalize(name) == expected


@given(valid_names)
def test_normalize_is_pep_503(name: str) -> None:
    expected = re.sub(r"[-_.]+", "-", name).lower()
    assert normalize(name) == expected
    assert normalize(normalize(name)) == normalize(name)
    assert is_valid_name(normalize(name))


# -- is_valid_name ----------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["a", "A", "0", "foo", "foo-bar", "foo_bar", "foo.bar", "a.b_c-d",
                                  "Foo2", "2foo", "a" * MAX_NAME_LENGTH])
def test_valid_names(name: str) -> None:
    assert is_valid_name(name)
    assert check_name(name).allowed


@pytest.mark.parametrize("name", ["", "-foo", "foo-", "_foo", "foo_", ".foo", "foo.", "foo bar", "foo/bar",
                                  "foo\\bar", "foo\x00", "fóo", "foo+bar", "foo@1", "-", ".", "..",
                                  "foo\n", "\nfoo", "requeſts", "\u212aeras", "pıp", "ﬁle",
                                  "a" * (MAX_NAME_LENGTH + 1)])
def test_invalid_names(name: str) -> None:
    assert not is_valid_name(name)
    decision = check_name(name)
    assert not decision.allowed
    assert (decision.rule, status_of(decision)) == ("invalid-name", 400)
    assert repr(name) in decision.reason


outside = st.text(min_size=1, max_size=3).filter(lambda c: re.search(r"[^A-Za-z0-9._-]", c) is not None)


@given(valid_names, outside, st.sampled_from(["start", "inside", "end"]))
def test_any_character_outside_the_alphabet_makes_a_name_invalid(name: str, bad: str, where: str) -> None:
    spliced = {"start": bad + name, "inside": name[:1] + bad + name[1:], "end": name + bad}[where]
    assert not is_valid_name(spliced)
    assert not check_name(spliced).allowed


# -- similarity_key ---------------------------------------------------------------------------
@pytest.mark.parametrize(("a", "b"), [
    ("foo-bar", "foobar"),
    ("foo-bar", "foo_bar"),
    ("foo-bar", "Foo.Bar"),
    ("foo-bar", "f-o-o-b-a-r"),
    ("pool", "poo1"),
    ("pil", "p1l"),
    ("pil", "pll"),
    ("pil", "pii"),
    ("tool1", "tooli"),
    ("foo", "f00"),
    ("foo", "F0O"),
    ("lib0", "libo"),
    ("requests", "reque-sts"),
])
def test_look_alikes_share_a_key(a: str, b: str) -> None:
    assert similarity_key(a) == similarity_key(b)


@pytest.mark.parametrize(("a", "b"), [
    ("foo", "bar"),
    ("foo", "fooo"),
    ("requests", "request"),
    ("pil", "pul"),
    ("foo-bar", "foo-baz"),
    ("o1", "o2"),
])
def test_different_names_have_different_keys(a: str, b: str) -> None:
    assert similarity_key(a) != similarity_key(b)


@given(valid_names)
def test_the_key_folds_everything_normalization_folds(name: str) -> None:
    key = similarity_key(name)
    assert similarity_key(normalize(name)) == key
    assert similarity_key(name.upper()) == key
    assert similarity_key(name.replace("-", "_")) == key
    assert not set(key) & set("-_.lioLIO")
    assert key == key.lower()
    assert similarity_key(key) == key


@given(valid_names, st.data())
def test_swapping_a_confusable_keeps_the_key(name: str, data: st.DataObject) -> None:
    groups = ["l1iLI", "o0O"]
    positions = [i for i, c in enumerate(name) if any(c in g for g in groups)]
    if not positions:
        return
    i = data.draw(st.sampled_from(positions))
    group = next(g for g in groups if name[i] in g)
    swapped = name[:i] + data.draw(st.sampled_from(group)) + name[i + 1:]
    assert similarity_key(swapped) == similarity_key(name)


# -- check_new_name ---------------------------------------------------------------------------
def test_a_fresh_valid_name_is_allowed() -> None:
    assert check_new_name("fresh-name", prohibited=frozenset({"other"}), similar_existing=None).allowed


@pytest.mark.parametrize("name", ["forbidden-name", "Forbidden_Name", "forbidden.name", "FORBIDDEN--NAME"])
def test_a_prohibited_name_is_refused_in_any_spelling(name: str) -> None:
    decision = check_new_name(name, prohibited=frozenset({"forbidden-name"}), similar_existing=None)
    assert not decision.allowed
    assert (decision.rule, status_of(decision)) == ("prohibited-name", 400)
    assert "'forbidden-name' is prohibited" in decision.reason


def test_a_look_alike_of_an_existing_project_is_refused() -> None:
    decision = check_new_name("foobar", prohibited=frozenset(), similar_existing="foo-bar")
    assert not decision.allowed
    assert (decision.rule, status_of(decision)) == ("similar-name", 400)
    assert "'foobar'" in decision.reason and "'foo-bar'" in decision.reason


def test_validity_is_checked_before_prohibition_and_similarity() -> None:
    decision = check_new_name("-bad-", prohibited=frozenset({"-bad-"}), similar_existing="bad")
    assert decision.rule == "invalid-name"
    decision = check_new_name("taken", prohibited=frozenset({"taken"}), similar_existing="TAKEN")
    assert decision.rule == "prohibited-name"


@given(valid_names)
def test_check_new_name_allows_every_valid_unclaimed_name(name: str) -> None:
    assert check_new_name(name, prohibited=frozenset(), similar_existing=None).allowed
    assert not check_new_name(name, prohibited=frozenset({normalize(name)}), similar_existing=None).allowed


@pytest.mark.parametrize("name", ["f0rbidden-name", "Forbidden_Name", "forbiddenname", "forb1dden.name"])
def test_a_look_alike_of_a_prohibited_name_is_prohibited_too(name: str) -> None:
    decision = check_new_name(name, prohibited=frozenset({"forbidden-name"}), similar_existing=None)
    assert not decision.allowed and decision.rule == "prohibited-name"
