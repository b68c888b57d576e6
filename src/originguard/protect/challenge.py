"""Challenges and the clearance cookie (spec §7.2, §7.5): prove a browser, then let it through.

    kind           what the visitor must do                      clearance level
    js_challenge   the page's script finds a proof of work         1
    challenge      the same proof of work, then a button press     2 (also satisfies js)

Everything is stateless and signed with the zone's secret (HMAC-SHA256):

    challenge token  KIND.ISSUED.SALT.MAC    MAC over zone, kind, issued, salt, client, UA
    proof of work    SHA-256("TOKEN:NONCE") starts with `difficulty` zero bits
    og_clearance     LEVEL.EXPIRES.MAC       MAC over zone, level, expiry, client, UA

"client" is the IPv4 address, or the IPv6 /64 (one subscriber's network, as rate limits
count it), so a cookie stolen into another network or browser is worth nothing.

The page answers 403 with ``og-mitigated: challenge`` (Cloudflare's ``cf-mitigated``); API
clients (``Accept: application/json``) get the same status as JSON and no page. The page
posts to ``VERIFY_PATH``, which the ``ChallengeFilter`` answers at the edge with a 303 back
to the page the visitor wanted and the cookie. The same filter runs "under attack" mode.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import json
import os
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from ipaddress import IPv6Address, IPv6Network
from urllib.parse import parse_qs

from originguard.exchange import Exchange
from originguard.http.body import BodyError
from originguard.http.messages import Headers, Response, header_value
from originguard.http.pages import wants_json
from originguard.protect.rules import RequestView
from originguard.protect.settings import ChallengeSettings
from originguard.protect.verdict import SKIP_UNDER_ATTACK, SecurityEvents, Verdicts

VERIFY_PATH = "/.originguard/challenge"
COOKIE = "og_clearance"
TOKEN_TTL = 600.0  # a challenge page must be solved within 10 minutes
MAX_FORM = 4096
LEVELS = {"js_challenge": 1, "challenge": 2}
# A key for zones without a configured secret: random per process, kept across reloads.
_PROCESS_SECRET = os.urandom(32)
_DIGITS = re.compile(r"[0-9]{1,12}")  # ASCII only: str.isdigit() takes "²", int() refuses it


def client_key(view: RequestView) -> str:
    """What a clearance is bound to: the IPv4 address or the IPv6 /64."""
    address = view.client_ip
    if isinstance(address, IPv6Address) and address.ipv4_mapped is None:
        return str(IPv6Network((address, 64), strict=False).network_address) + "/64"
    return str(address.ipv4_mapped if isinstance(address, IPv6Address) else address)


def _user_agent(view: RequestView) -> str:
    ua = header_value(view.headers, b"user-agent") or b""
    return hashlib.sha256(ua).hexdigest()[:16]


def leading_zero_bits(digest: bytes) -> int:
    bits = 0
    for byte in digest:
        if byte == 0:
            bits += 8
            continue
        return bits + 8 - byte.bit_length()
    return bits


def solve(token: str, difficulty: int) -> int:
    """The first nonce that satisfies the proof of work (what the page's script does)."""
    nonce = 0
    prefix = (token + ":").encode()
    while leading_zero_bits(hashlib.sha256(prefix + str(nonce).encode()).digest()) < difficulty:
        nonce += 1
    return nonce


@dataclass(frozen=True, slots=True)
class Challenger:
    """One zone's challenge: issues tokens and pages, checks proofs and cookies. Pure:
    every method takes `now` (wall-clock seconds)."""

    zone: str
    secret: bytes
    ttl: float
    difficulty: int

    @classmethod
    def from_settings(cls, zone: str, settings: ChallengeSettings) -> Challenger:
        secret = settings.secret.get_secret_value().encode() if settings.secret else None
        return cls(zone, secret or _PROCESS_SECRET, settings.clearance_ttl, settings.difficulty)

    def _mac(self, *parts: str) -> str:
        message = "|".join((self.zone, *parts)).encode()
        return hmac.new(self.secret, message, hashlib.sha256).hexdigest()[:32]

    # -- tokens and cookies ---------------------------------------------------------------

    def issue(self, kind: str, view: RequestView, now: float) -> str:
        issued = str(int(now))
        salt = os.urandom(6).hex()
        mac = self._mac("challenge", kind, issued, salt, client_key(view), _user_agent(view))
        return f"{kind}.{issued}.{salt}.{mac}"

    def check_token(self, token: str, view: RequestView, now: float) -> str | None:
        """The kind of a genuine, fresh token issued to this client, else None."""
        parts = token.split(".")
        if len(parts) != 4 or parts[0] not in LEVELS or not _DIGITS.fullmatch(parts[1]):
            return None
        kind, issued, salt, mac = parts
        expected = self._mac("challenge", kind, issued, salt, client_key(view), _user_agent(view))
        if not hmac.compare_digest(mac, expected):
            return None
        if not 0 <= now - int(issued) <= TOKEN_TTL:
            return None
        return kind

    def clearance(self, level: int, view: RequestView, now: float) -> tuple[str, int]:
        """The cookie value for a solved challenge, and its lifetime in seconds."""
        expires = str(int(now + self.ttl))
        mac = self._mac("clearance", str(level), expires, client_key(view), _user_agent(view))
        return f"{level}.{expires}.{mac}", int(self.ttl)

    def cleared_level(self, view: RequestView, now: float) -> int:
        """The level of a valid clearance cookie on this request; 0 when there is none."""
        cookies = view.memoised("og_clearance", _clearance_cookies)
        best = 0
        for value in cookies:
            parts = value.split(".")
            if len(parts) != 3 or parts[0] not in ("1", "2") or not _DIGITS.fullmatch(parts[1]):
                continue
            level, expires, mac = parts
            if int(expires) <= now:
                continue
            expected = self._mac("clearance", level, expires, client_key(view), _user_agent(view))
            if hmac.compare_digest(mac, expected):
                best = max(best, int(level))
        return best

    def is_cleared(self, kind: str, view: RequestView, now: float) -> bool:
        return self.cleared_level(view, now) >= LEVELS[kind]

    # -- answers --------------------------------------------------------------------------

    def page(self, ex: Exchange, view: RequestView, kind: str, now: float) -> Response:
        """403 with ``og-mitigated: challenge``: the page, or JSON for API clients."""
        headers: Headers = [(b"cache-control", b"no-store"), (b"og-mitigated", b"challenge")]
        if wants_json(header_value(ex.head.headers, b"accept")):
            document = {
                "status": 403,
                "title": "Challenge required",
                "detail": "Open this address in a browser to pass the challenge.",
                "challenge": kind,
                "ray_id": ex.ray,
            }
            headers.append((b"content-type", b"application/json"))
            return Response(403, headers, json.dumps(document).encode())
        token = self.issue(kind, view, now)
        headers.append((b"content-type", b"text/html; charset=utf-8"))
        # The page's script is inline; nothing else may load or run.
        headers.append(
            (
                b"content-security-policy",
                b"default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
                b"form-action 'self'",
            )
        )
        return Response(403, headers, _page(kind, token, view.uri, self.difficulty, ex.ray))

    async def verify(self, ex: Exchange, view: RequestView, now: float) -> tuple[Response, str]:
        """Answer a post to VERIFY_PATH: 303 with the cookie, or the page again. Also returns
        the result for metrics: ``passed``, ``failed`` or ``bad_request``."""
        if ex.head.method != b"POST":
            return Response(405, [(b"allow", b"POST"), (b"cache-control", b"no-store")]), (
                "bad_request"
            )
        if ex.body is None or (ex.head.content_length or 0) > MAX_FORM:
            # An oversized body is never read: the pipeline closes the connection (rule G3).
            return Response(400, [(b"cache-control", b"no-store")]), "bad_request"
        try:
            form = await _read_form(ex)
        except BodyError as error:
            return Response(error.status, [(b"cache-control", b"no-store")]), "bad_request"
        target = _safe_return(form.get("return", "/"))
        kind = self.check_token(form.get("token", ""), view, now)
        # Both kinds carry the proof of work: the interactive one is a JS challenge plus a
        # click, so its (stronger) clearance is never cheaper to get than a JS one.
        nonce = form.get("nonce", "")
        if kind is not None and (
            not _DIGITS.fullmatch(nonce) or not self._proves(form["token"], nonce)
        ):
            kind = None
        if kind is None:
            return self.page(ex, view, "js_challenge", now), "failed"
        value, max_age = self.clearance(LEVELS[kind], view, now)
        secure = "; Secure" if view.scheme == "https" else ""
        cookie = f"{COOKIE}={value}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Lax{secure}"
        headers: Headers = [
            (b"location", target.encode("latin-1")),
            (b"set-cookie", cookie.encode()),
            (b"cache-control", b"no-store"),
        ]
        return Response(303, headers), "passed"

    def _proves(self, token: str, nonce: str) -> bool:
        digest = hashlib.sha256(f"{token}:{nonce}".encode()).digest()
        return leading_zero_bits(digest) >= self.difficulty


def _clearance_cookies(view: RequestView) -> list[str]:
    values = []
    for header in (v for k, v in view.headers if k == b"cookie"):
        for pair in header.decode("latin-1").split(";"):
            name, _, value = pair.partition("=")
            if name.strip(" ") == COOKIE:
                values.append(value.strip(" "))
    return values


async def _read_form(ex: Exchange) -> dict[str, str]:
    assert ex.body is not None
    parts: list[bytes] = []
    size = 0
    while data := await ex.body.read():
        size += len(data)
        if size > MAX_FORM:
            raise BodyError(413, "challenge form too large")
        parts.append(data)
    try:
        fields = parse_qs(b"".join(parts).decode("latin-1"), max_num_fields=8)
    except ValueError as error:  # more fields than any challenge form has
        raise BodyError(400, "challenge form has too many fields") from error
    return {name: values[0] for name, values in fields.items()}


def _safe_return(target: str) -> str:
    """Only a path on this site (no scheme, no `//host`, no control characters)."""
    if (
        not target.startswith("/")
        or target.startswith(("//", "/\\"))
        or len(target) > 2048
        or any(not 0x21 <= ord(c) <= 0x7E for c in target)
    ):
        return "/"
    return target


class ChallengeFilter:
    """Last security phase: answers VERIFY_PATH, and challenges everyone without a clearance
    in zones that are "under attack"."""

    def __init__(
        self,
        challengers: dict[str, Challenger],
        under_attack: frozenset[str],
        verdicts: Verdicts,
        events: SecurityEvents,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.challengers = challengers
        self.under_attack = under_attack
        self.verdicts = verdicts
        self.events = events
        self.clock = clock

    def on_request(self, ex: Exchange) -> Response | None | Awaitable[Response | None]:
        zone = ex.zone.name if ex.zone is not None else ""
        challenger = self.challengers.get(zone)
        if challenger is None:
            return None
        verdict = self.verdicts.of(ex)
        view = verdict.view
        now = self.clock()
        if view.path == VERIFY_PATH:
            verdict.mitigated = True
            return self._verify(ex, challenger, view, zone, now)
        if zone in self.under_attack and SKIP_UNDER_ATTACK not in verdict.skip:
            if not challenger.is_cleared("js_challenge", view, now):
                verdict.mitigated = True
                self.events.record(ex, "under_attack", "under_attack", "js_challenge")
                self.events.metrics.challenges.labels(zone, "issued").inc()
                ex.reason = "under attack: js_challenge"
                return challenger.page(ex, view, "js_challenge", now)
        return None


    async def _verify(
        self, ex: Exchange, challenger: Challenger, view: RequestView, zone: str, now: float
    ) -> Response:
        """A solved challenge arrives as a form post: its body has to be read."""
        response, result = await challenger.verify(ex, view, now)
        self.events.metrics.challenges.labels(zone, result).inc()
        ex.reason = f"challenge verify: {result}"
        return response


def challenge_or_pass(
    challengers: dict[str, Challenger],
    ex: Exchange,
    view: RequestView,
    kind: str,
    now: float,
) -> Response | None:
    """For a rule whose action is a challenge: None when the visitor holds a clearance (or is
    posting the answer, which the ChallengeFilter handles), else the challenge page."""
    zone = ex.zone.name if ex.zone is not None else ""
    challenger = challengers[zone]
    if view.path == VERIFY_PATH or challenger.is_cleared(kind, view, now):
        return None
    return challenger.page(ex, view, kind, now)


def _page(kind: str, token: str, uri: str, difficulty: int, ray: str) -> bytes:
    noscript = "<noscript><p>Please turn on JavaScript and reload the page.</p></noscript>"
    if kind == "js_challenge":
        action = '<p id="status">Checking your browser&hellip; this takes a moment.</p>' + noscript
    else:
        action = (
            "<p>Confirm that you are a person to continue to the site.</p>"
            '<p><button id="og-continue" type="submit" form="og-challenge" disabled>'
            "Checking your browser&hellip;</button></p>" + noscript
        )
    script = _SCRIPT.replace("__DIFFICULTY__", str(difficulty)).replace(
        "__AUTO__", "true" if kind == "js_challenge" else "false"
    )
    return _PAGE.format(
        action=action,
        verify=VERIFY_PATH,
        token=html.escape(token),
        target=html.escape(uri),
        ray=html.escape(ray),
        script=script,
    ).encode()


_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title>Just a moment&hellip;</title>
<style>
body{{font-family:system-ui,sans-serif;margin:0;background:#f4f5f7;color:#1d2330}}
main{{max-width:36rem;margin:5rem auto;padding:2rem;background:#fff;border-radius:8px;
box-shadow:0 1px 3px rgba(0,0,0,.12)}} h1{{margin:0 0 1rem;font-size:1.6rem}}
button{{font-size:1rem;padding:.6rem 1.2rem}}
footer{{margin-top:2rem;font-size:.8rem;color:#5b6270}}
</style></head>
<body><main>
<h1>Just a moment&hellip;</h1>
{action}
<form id="og-challenge" method="post" action="{verify}">
<input type="hidden" name="token" value="{token}">
<input type="hidden" name="nonce" value="">
<input type="hidden" name="return" value="{target}">
</form>
<footer>Ray ID: <code>{ray}</code> &middot; originguard</footer>
</main>{script}</body></html>
"""

# Proof of work in plain JavaScript (crypto.subtle only exists on https or localhost):
# find the first nonce whose SHA-256("token:nonce") starts with DIFFICULTY zero bits, put it
# in the form, then post it (JS challenge) or enable the button (interactive challenge).
# SHA-256 per FIPS 180-4 over the ASCII bytes of the string.
_SCRIPT = """<script>
(function(){
var D=__DIFFICULTY__,K=[],H=[],p=2;
function frac(x){return (x-Math.floor(x))*4294967296|0;}
for(var n=0;n<64;p++){var prime=true;for(var d=2;d*d<=p;d++){if(p%d===0){prime=false;break;}}
if(prime){if(n<8){H[n]=frac(Math.sqrt(p));}K[n]=frac(Math.cbrt(p));n++;}}
function rotr(x,r){return (x>>>r)|(x<<(32-r));}
function sha256(s){
var L=s.length,words=[],i,j,W=new Array(64);
for(i=0;i<L;i++){words[i>>2]|=(s.charCodeAt(i)&255)<<(24-8*(i&3));}
words[L>>2]|=128<<(24-8*(L&3));
var blocks=((L+8)>>6)+1;
for(i=(L>>2)+1;i<blocks*16;i++){if(words[i]===undefined){words[i]=0;}}
words[blocks*16-1]=L*8;
var h=H.slice();
for(i=0;i<blocks;i++){
for(j=0;j<64;j++){
if(j<16){W[j]=words[i*16+j]|0;}
else{var a=W[j-15],b=W[j-2];
W[j]=(((rotr(a,7)^rotr(a,18)^(a>>>3))+W[j-16]|0)+((rotr(b,17)^rotr(b,19)^(b>>>10))+W[j-7]|0))|0;}
}
var A=h[0],B=h[1],C=h[2],E=h[3],F=h[4],G=h[5],I=h[6],J=h[7];
for(j=0;j<64;j++){
var t1=(J+(rotr(F,6)^rotr(F,11)^rotr(F,25))+((F&G)^(~F&I))+K[j]+W[j])|0;
var t2=((rotr(A,2)^rotr(A,13)^rotr(A,22))+((A&B)^(A&C)^(B&C)))|0;
J=I;I=G;G=F;F=(E+t1)|0;E=C;C=B;B=A;A=(t1+t2)|0;}
h[0]=(h[0]+A)|0;h[1]=(h[1]+B)|0;h[2]=(h[2]+C)|0;h[3]=(h[3]+E)|0;
h[4]=(h[4]+F)|0;h[5]=(h[5]+G)|0;h[6]=(h[6]+I)|0;h[7]=(h[7]+J)|0;}
return h;}
function zeroBits(h){var bits=0;for(var k=0;k<8;k++){var w=h[k]>>>0;
if(w===0){bits+=32;continue;}return bits+Math.clz32(w);}return bits;}
var form=document.getElementById("og-challenge"),prefix=form.token.value+":",nonce=0;
function found(){if(__AUTO__){form.submit();return;}
var b=document.getElementById("og-continue");b.disabled=false;b.textContent="I am human, continue";}
function work(){var stop=nonce+5000;
for(;nonce<stop;nonce++){if(zeroBits(sha256(prefix+nonce))>=D){
form.nonce.value=String(nonce);found();return;}}
setTimeout(work,0);}
if(typeof window!=="undefined"){window.ogSha256=sha256;}
work();
})();
</script>"""
