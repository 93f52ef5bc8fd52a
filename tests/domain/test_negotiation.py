"""PEP 691 content negotiation for the simple API: the Accept headers real clients send."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from moorage.web.negotiation import HTML_V1, JSON_V1, TEXT_HTML, choose

# Exactly what the installers send (pip's and uv's simple-API requests).
PIP_ACCEPT = "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; q=0.1, text/html; q=0.01"
UV_ACCEPT = "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.01"


@pytest.mark.parametrize("accept", [PIP_ACCEPT, UV_ACCEPT])
def test_pip_and_uv_get_json(accept: str) -> None:
    assert choose(accept) == JSON_V1


@pytest.mark.parametrize("accept", [PIP_ACCEPT, UV_ACCEPT])
def test_without_json_they_get_the_versioned_html(accept: str) -> None:
    without_json = accept.replace("application/vnd.pypi.simple.v1+json, ", "")
    assert choose(without_json) == HTML_V1
    assert choose(accept.replace("+json,", "+json;q=0,")) == HTML_V1


@pytest.mark.parametrize(("accept", "expected"), [
    (None, TEXT_HTML),
    ("", TEXT_HTML),
    ("*/*", TEXT_HTML),
    ("text/html", TEXT_HTML),
    ("text/*", TEXT_HTML),
    ("text/html;q=0.5", TEXT_HTML),
    (HTML_V1, HTML_V1),
    (JSON_V1, JSON_V1),
    ("application/vnd.pypi.simple.latest+json", JSON_V1),
    ("application/vnd.pypi.simple.latest+html", HTML_V1),
    ("Application/Vnd.PyPI.Simple.V1+JSON", JSON_V1),
    (f"  {JSON_V1}  ;  q=0.7  ", JSON_V1),
    (f"{JSON_V1}; charset=utf-8", JSON_V1),
    (f"{JSON_V1};Q=0.5, text/html;q=0.4", JSON_V1),
    (f"text/html, {JSON_V1}", JSON_V1),  # equal weight: the server's preference
    (f"text/html, {HTML_V1}", HTML_V1),
    (f"text/html;q=0.9, {JSON_V1};q=0.8", TEXT_HTML),  # the client's weights win
    (f"*/*;q=0.9, {JSON_V1};q=0.1", TEXT_HTML),
    (f"{JSON_V1};q=0.1, */*;q=0.1", JSON_V1),  # a named type beats a wildcard of the same weight
    ("application/*", JSON_V1),
    (f"{JSON_V1};q=0.001", JSON_V1),
])
def test_choose(accept: str | None, expected: str) -> None:
    assert choose(accept) == expected


@pytest.mark.parametrize("accept", [
    f"{JSON_V1};q=0",
    f"{JSON_V1};q=0.0, {HTML_V1};q=0",
    f"{JSON_V1};q=0, text/html",
    f"{JSON_V1};q=-1",
    f"{JSON_V1};q=abc",
    f"{JSON_V1};q=",
])
def test_q_zero_or_unreadable_means_not_acceptable(accept: str) -> None:
    assert choose(accept) == TEXT_HTML


@pytest.mark.parametrize("accept", ["garbage", ";;;", ",,,", "application/json", "image/png",
                                    "text/plain", "q=1", "\x00\xff", "application/vnd.pypi.simple.v2+json",
                                    "a/b/c;q=1;q=2", "*"])
def test_garbage_falls_back_to_html(accept: str) -> None:
    assert choose(accept) == TEXT_HTML


MEDIA = [JSON_V1, HTML_V1, TEXT_HTML, "*/*", "text/*", "application/*", "application/json", "x/y",
         "application/vnd.pypi.simple.latest+json"]
Q = ["", ";q=1", ";q=0", ";q=0.5", ";q=0.01", ";q=0.2", ";q=0.999", ";q=1.0"]
parts = st.lists(st.tuples(st.sampled_from(MEDIA), st.sampled_from(Q)).map("".join), max_size=6)


@given(parts)
def test_choose_always_answers_a_known_type(items: list[str]) -> None:
    assert choose(", ".join(items)) in (JSON_V1, HTML_V1, TEXT_HTML)


@given(parts, st.randoms())
def test_the_order_of_the_header_does_not_matter(items: list[str], rnd: object) -> None:
    shuffled = list(items)
    rnd.shuffle(shuffled)  # type: ignore[attr-defined]
    assert choose(", ".join(items)) == choose(", ".join(shuffled))


@given(st.text(max_size=200))
def test_any_header_text_is_answered(accept: str) -> None:
    assert choose(accept) in (JSON_V1, HTML_V1, TEXT_HTML)


# RFC 9110 qvalues lie in 0..1. These headers are malformed; the outcome must at least not
# depend on the order of the parts, and a malformed weight must not beat a well-formed q=1.
def test_a_nan_weight_does_not_make_the_choice_order_dependent() -> None:
    assert choose(f"text/html;q=nan, {JSON_V1}") == choose(f"{JSON_V1}, text/html;q=nan")


@pytest.mark.parametrize("weight", ["inf", "1.5", "1e9"])
def test_a_weight_above_one_does_not_outrank_q1(weight: str) -> None:
    assert choose(f"text/html;q={weight}, {JSON_V1};q=1") == JSON_V1
