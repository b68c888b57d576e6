"""The request view: derived values are parsed once per request and shared by all rules."""

from __future__ import annotations

from rules_requests import make_view

from originguard.protect.rules import compile_expression
from originguard.protect.rules.schema import FIELDS


def test_cookies_are_parsed_once_however_many_rules_read_them() -> None:
    view = make_view(headers=[(b"cookie", b"a=1; b=2")])
    rules = [compile_expression(f'http.request.cookies["a"][0] eq "{n}"') for n in range(200)]
    assert sum(rule.evaluate(view) for rule in rules) == 1
    cookies = FIELDS["http.request.cookies"].get(view)
    assert FIELDS["http.request.cookies"].get(view) is cookies


def test_cookie_pairs_without_value_and_stray_separators_are_tolerated() -> None:
    view = make_view(headers=[(b"cookie", b"; flag; a=x=y ;b=")])
    cookies = FIELDS["http.request.cookies"].get(view)
    assert cookies == {"flag": [""], "a": ["x=y"], "b": [""]}


def test_query_arguments_keep_order_repeats_and_raw_encoding() -> None:
    view = make_view(query="a=1&b=%20&a=2&&c")
    assert FIELDS["http.request.uri.args"].get(view) == {"a": ["1", "2"], "b": ["%20"], "c": [""]}


def test_header_values_are_latin1_strings_in_arrival_order() -> None:
    view = make_view(headers=[(b"x-a", b"caf\xe9"), (b"x-a", b"two")])
    assert FIELDS["http.request.headers"].get(view) == {"x-a": ["caf\xe9", "two"]}
    assert compile_expression('len(http.request.headers["x-a"][0]) eq 4').evaluate(view)


def test_extension_is_lower_case_and_empty_without_a_dot() -> None:
    get = FIELDS["http.request.uri.path.extension"].get
    assert get(make_view(path="/a/b.tar.GZ")) == "gz"
    assert get(make_view(path="/a.b/readme")) == ""
    assert get(make_view(path="/")) == ""


def test_attaching_a_response_keeps_request_memos_but_not_response_ones() -> None:
    view = make_view(headers=[(b"cookie", b"a=1")])
    cookies = FIELDS["http.request.cookies"].get(view)
    assert FIELDS["http.response.headers"].get(view) == {}
    answered = view.with_response(200, [(b"content-type", b"text/html")])
    assert FIELDS["http.request.cookies"].get(answered) is cookies
    assert FIELDS["http.response.headers"].get(answered) == {"content-type": ["text/html"]}


def test_a_rule_set_of_200_rules_evaluates_against_one_view() -> None:
    rules = []
    for n in range(50):
        rules += [
            compile_expression(f'http.request.uri.path eq "/page/{n}"'),
            compile_expression(f'http.user_agent contains "bot{n}" and not ssl'),
            compile_expression(f"ip.src in {{10.{n}.0.0/16}} or ip.src.asnum eq {n}"),
            compile_expression(f'any(http.request.headers["x-id"][*] matches "^id{n}$")'),
        ]
    view = make_view(path="/page/7", headers=[(b"x-id", b"id9")])
    matched = [i for i, rule in enumerate(rules) if rule.evaluate(view)]
    assert matched == [28, 39]
