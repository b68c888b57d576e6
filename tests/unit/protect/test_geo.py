"""Country codes from a MaxMind record (spec §7.4): ISO alpha-2, T1 for Tor, XX unknown."""

from __future__ import annotations

import pytest
from exchanges import Clock, build, make_exchange, run

from originguard.pipeline import filter_answer
from originguard.protect.guard import country_of
from originguard.protect.ip_access import IpAccessList
from originguard.protect.settings import IpAccessRule
from originguard.protect.verdict import request_view


@pytest.mark.parametrize(
    ("record", "country"),
    [
        ({"country": {"iso_code": "GB"}}, "GB"),
        ({"registered_country": {"iso_code": "FR"}}, "FR"),
        ({"country": {"iso_code": "DE"}, "traits": {"is_tor_exit_node": True}}, "T1"),
        ({"is_tor_exit_node": True}, "T1"),  # GeoIP2 Anonymous IP layout
        ({"continent": {"code": "EU"}}, "XX"),  # the database knows the block, not the country
        (None, "XX"),  # the address is not in the database at all
    ],
)
def test_the_country_of_a_record_follows_cloudflare(record: object, country: str) -> None:
    assert country_of(record) == country


class FakeGeo:
    def __init__(self, country: str) -> None:
        self.country = country

    def lookup(self, address: object) -> tuple[str | None, int | None]:
        return self.country, None


@pytest.mark.parametrize("code", ["T1", "XX"])
def test_ip_access_country_rules_match_tor_and_unknown(code: str) -> None:
    access = IpAccessList([IpAccessRule(target="country", value=code, mode="block")])
    view = request_view(make_exchange("/"), FakeGeo(code))
    match = access.lookup(view)
    assert match is not None and match.mode == "block"
    assert access.lookup(request_view(make_exchange("/"), FakeGeo("GB"))) is None


def test_a_rule_on_country_xx_blocks_an_address_the_database_cannot_place() -> None:
    security, _ = build(
        "rules:\n  - {name: unknown, expression: 'ip.src.country eq \"XX\"', action: block}\n",
        Clock(),
    )
    verdicts = security.observers[0]
    verdicts.geo["site"] = FakeGeo("XX")  # type: ignore[attr-defined]
    answer = run(filter_answer(security.request_filters[1].on_request(make_exchange("/"))))  # type: ignore[attr-defined]
    assert answer is not None and answer.status == 403
