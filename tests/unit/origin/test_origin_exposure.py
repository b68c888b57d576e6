"""Exposure check verdicts: what a direct probe saw, judged without a network."""

from __future__ import annotations

from originguard.origin.exposure import Attempt, Observation, Target, Verdict, as_json, judge


def target(**overrides: object) -> Target:
    base: dict[str, object] = {
        "zone": "site",
        "pool": "main",
        "address": "203.0.113.10:443",
        "host": "203.0.113.10",
        "port": 443,
        "tls": True,
        "hostname": "site.test",
        "site_names": ("site.test", "*.site.test"),
    }
    base.update(overrides)
    return Target(**base)  # type: ignore[arg-type]


def seen(**fields: object) -> Attempt:
    attempt = Attempt(connected=True)
    for name, value in fields.items():
        setattr(attempt, name, value)
    return attempt


def checks(observation: Observation) -> set[str]:
    return {finding.check for finding in judge(observation).findings}


def test_an_origin_that_refuses_tcp_is_closed_and_clean() -> None:
    report = judge(Observation(target(), Attempt(connected=False, error="connect: refused")))
    assert report.verdict is Verdict.CLOSED
    assert report.findings == []


def test_real_content_without_the_client_certificate_is_exposed() -> None:
    observation = Observation(target(client_cert=True), seen(status=200, body_sha256="a"))
    report = judge(observation)
    assert report.verdict is Verdict.EXPOSED
    assert report.findings[0].severity == "high"
    assert "client certificate" in report.findings[0].message


def test_the_message_names_the_missing_secret_header() -> None:
    observation = Observation(target(auth_header="og-origin-auth"), seen(status=302))
    assert "og-origin-auth" in judge(observation).findings[0].message


def test_nginx_400_for_a_missing_certificate_counts_as_required() -> None:
    body = "<html><head><title>400 no required ssl certificate was sent</title>"
    report = judge(Observation(target(), seen(status=400, body_hint=body)))
    assert report.verdict is Verdict.REQUIRES_CLIENT_CERT
    assert report.findings == []


def test_a_tls_13_certificate_required_alert_counts_as_required() -> None:
    report = judge(Observation(target(), seen(cert_required=True, tls_error="alert")))
    assert report.verdict is Verdict.REQUIRES_CLIENT_CERT


def test_4xx_is_refused_and_5xx_or_garbage_inconclusive_neither_a_finding() -> None:
    assert judge(Observation(target(), seen(status=403))).verdict is Verdict.REFUSED
    assert judge(Observation(target(), seen(status=502))).verdict is Verdict.INCONCLUSIVE
    assert judge(Observation(target(), seen(error="not http"))).verdict is Verdict.INCONCLUSIVE
    assert checks(Observation(target(), seen(status=403))) == set()


def test_the_sites_certificate_for_an_unknown_sni_is_a_finding() -> None:
    foreign = seen(cert_names=("www.site.test",), status=400)
    observation = Observation(target(), seen(status=403), foreign, "og-probe.invalid")
    assert checks(observation) == {"certificate_to_unknown_sni"}


def test_an_unrelated_default_certificate_is_fine() -> None:
    foreign = seen(cert_names=("localhost",))
    assert checks(Observation(target(), seen(status=403), foreign, "x.invalid")) == set()


def test_the_same_page_for_an_unknown_host_is_a_finding_when_exposed() -> None:
    direct = seen(status=200, body_sha256="same")
    foreign = seen(status=200, body_sha256="same")
    observation = Observation(target(tls=False), direct, foreign, "x.invalid")
    assert checks(observation) == {"answers_without_edge", "site_for_unknown_host"}
    different = Observation(target(tls=False), direct, seen(status=200, body_sha256="other"))
    assert checks(different) == {"answers_without_edge"}


def test_json_lists_origins_and_findings() -> None:
    report = judge(Observation(target(), seen(status=200, body_sha256="a")))
    document = as_json([report])
    assert document["origins"] == [
        {
            "zone": "site",
            "pool": "main",
            "address": "203.0.113.10:443",
            "scheme": "https",
            "status": 200,
            "tls_error": None,
            "error": None,
            "verdict": "exposed",
        }
    ]
    assert [f["check"] for f in document["findings"]] == ["answers_without_edge"]  # type: ignore[union-attr, index]
