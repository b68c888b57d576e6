"""What a queued or rejected visitor sees: the HTML page or the JSON status (spec §9.4).

The default page is itself a template rendered like a custom one, so both see the same
variables. It needs no JavaScript: a meta refresh (and a ``Refresh`` header) reloads it every
20 seconds; the reject page never refreshes.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache

from originguard.state.base import REFRESH_INTERVAL

from . import template
from .admission import Queue, Reject, Wait
from .settings import MINUTE, Phase, RoomSettings

JSON_TYPE = "application/json"


@dataclass(frozen=True, slots=True)
class RoomPage:
    """A response for the proxy core to send as is."""

    status: int
    headers: tuple[tuple[bytes, bytes], ...]
    body: bytes


def wants_json(settings: RoomSettings, accept: str | None) -> bool:
    """spec §9.4: JSON only when enabled and Accept is exactly application/json."""
    return settings.json_response_enabled and accept is not None and accept.strip() == JSON_TYPE


def respond(
    settings: RoomSettings, decision: Queue | Reject, accept: str | None, now: float
) -> RoomPage:
    """The page (or JSON document) answering a queued or rejected request."""
    refresh = isinstance(decision, Queue)
    headers: list[tuple[bytes, bytes]] = [(b"cache-control", b"no-store")]
    if refresh:
        headers.append((b"refresh", str(int(REFRESH_INTERVAL)).encode()))
    if wants_json(settings, accept):
        headers.insert(0, (b"content-type", b"application/json"))
        body = status_json(settings, decision, now)
    else:
        headers.insert(0, (b"content-type", b"text/html; charset=utf-8"))
        body = html_page(settings, decision, now).encode()
    return RoomPage(settings.queueing_status_code, tuple(headers), body)


def status_fields(
    settings: RoomSettings, decision: Queue | Reject, now: float
) -> dict[str, object]:
    """The spec §9.4 JSON fields, under their Cloudflare names."""
    phase = decision.phase
    method = phase.queueing_method
    if isinstance(decision, Queue):
        wait = decision.wait
        refresh = int(REFRESH_INTERVAL)
        last_updated = decision.last_updated
    else:
        wait = None
        refresh = 0  # spec §9.3: the reject page does not refresh
        last_updated = now
    is_random = method == "random"
    until_start, until_end = _event_clock(phase, now)
    return {
        "inWaitingRoom": True,
        "waitTimeKnown": wait is not None and wait.known,
        "waitTime": wait.minutes if wait is not None else 0,
        "waitTime25Percentile": wait.p25 if wait is not None and is_random else 0,
        "waitTime50Percentile": wait.p50 if wait is not None and is_random else 0,
        "waitTime75Percentile": wait.p75 if wait is not None and is_random else 0,
        "waitTimeFormatted": _wait_text(wait, is_random),
        "queueIsFull": wait is not None and wait.queue_is_full,
        "queueAll": phase.queue_all,
        "lastUpdated": _iso(last_updated),
        "refreshIntervalSeconds": refresh,
        "queueingMethod": method,
        "isFIFOQueue": method == "fifo",
        "isRandomQueue": is_random,
        "isPassthroughQueue": method == "passthrough",
        "isRejectQueue": method == "reject",
        "isEventActive": phase.is_event_active,
        "isEventPrequeueing": phase.is_prequeueing,
        "timeUntilEventStart": until_start,
        "timeUntilEventStartFormatted": _minutes_text(until_start, phase.is_prequeueing),
        "timeUntilEventEnd": until_end,
        "timeUntilEventEndFormatted": _minutes_text(until_end, phase.event is not None),
        "shuffleAtEventStart": phase.event is not None and phase.event.shuffle_at_event_start,
    }


def status_json(settings: RoomSettings, decision: Queue | Reject, now: float) -> bytes:
    """``{"ogWaitingRoom": {...}}``: Cloudflare's document under our product's name."""
    document = {"ogWaitingRoom": status_fields(settings, decision, now)}
    return json.dumps(document, separators=(",", ":")).encode()


def template_context(
    settings: RoomSettings, decision: Queue | Reject, now: float
) -> dict[str, object]:
    """The JSON fields plus the template-only ones (spec §9.4) and our own additions."""
    context = status_fields(settings, decision, now)
    wait_time = decision.wait.minutes if isinstance(decision, Queue) else 0
    context["waitTimeHours"] = wait_time // 60
    context["waitTimeHourMinutes"] = wait_time % 60
    # originguard additions: the visitor's place, and the reload interval for the meta tag.
    context["queuePosition"] = decision.position if isinstance(decision, Queue) else 0
    context["queuedUsers"] = decision.queued if isinstance(decision, Queue) else 0
    context["roomName"] = settings.name
    context["lastUpdatedFormatted"] = _clock(
        decision.last_updated if isinstance(decision, Queue) else now
    )
    return context


def html_page(settings: RoomSettings, decision: Queue | Reject, now: float) -> str:
    """The custom template if the room (or its event) has one, else the default page."""
    context = template_context(settings, decision, now)
    if isinstance(decision, Reject):
        return _REJECT_PAGE.render(context)
    custom = decision.phase.custom_page_html
    page = _parsed(custom) if custom else _QUEUE_PAGE
    return page.render(context)


@lru_cache(maxsize=64)
def _parsed(source: str) -> template.Template:
    # Custom pages were validated at load; parse each once, not per request.
    return template.parse(source)


def _event_clock(phase: Phase, now: float) -> tuple[int, int]:
    """Minutes until the event starts (while pre-queueing) and until it ends."""
    event = phase.event
    if event is None:
        return 0, 0
    until_start = math.ceil((event.starts_at - now) / MINUTE) if phase.is_prequeueing else 0
    return until_start, max(0, math.ceil((event.ends_at - now) / MINUTE))


def _minutes(count: int) -> str:
    return f"{count} minute" if count == 1 else f"{count} minutes"


def _minutes_text(count: int, known: bool) -> str:
    return _minutes(count) if known else "unavailable"


def _wait_text(wait: Wait | None, is_random: bool) -> str:
    if wait is None or not wait.known:
        return "unavailable"
    if is_random and wait.p25 != wait.p75:
        return f"{_minutes(wait.p25)} to {_minutes(wait.p75)}"
    return _minutes(wait.minutes)


def _iso(moment: float) -> str:
    stamp = datetime.fromtimestamp(moment, tz=UTC).isoformat(timespec="milliseconds")
    return stamp.replace("+00:00", "Z")


def _clock(moment: float) -> str:
    return datetime.fromtimestamp(moment, tz=UTC).strftime("%H:%M:%S UTC")


_STYLE = """<style>
body{font-family:system-ui,sans-serif;background:#f4f5f7;color:#1d1f23;margin:0}
main{max-width:36rem;margin:12vh auto;padding:2rem;background:#fff;border-radius:.5rem;
box-shadow:0 1px 4px rgba(0,0,0,.12)}
h1{font-size:1.5rem;margin-top:0}.position{font-size:2.5rem;font-weight:700;margin:.5rem 0}
.small{color:#5c6370;font-size:.875rem}
</style>"""

_QUEUE_PAGE = template.parse(
    """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="refresh" content="{{refreshIntervalSeconds}}">
<title>Waiting room</title>
"""
    + _STYLE
    + """
</head>
<body>
<main>
<h1>You are in line</h1>
<p>This site is busy. We will let you in automatically; keep this page open, it refreshes on its
own every {{refreshIntervalSeconds}} seconds.</p>
{{#isEventPrequeueing}}<p>The event starts in {{timeUntilEventStartFormatted}}.
{{#shuffleAtEventStart}}When it starts, everyone waiting gets a random place in line.
{{/shuffleAtEventStart}}</p>{{/isEventPrequeueing}}
{{#queuePosition}}<p>Your place in line:</p><p class="position">{{queuePosition}}</p>
{{/queuePosition}}
{{^queueAll}}{{^isEventPrequeueing}}<p>
{{#waitTimeKnown}}Your estimated wait time is {{waitTimeFormatted}}...{{/waitTimeKnown}}
{{^waitTimeKnown}}{{#queueIsFull}}The estimated wait time is greater than a day. You will
automatically be placed in the queue once space is available.{{/queueIsFull}}
{{^queueIsFull}}Your estimated wait time is unavailable.{{/queueIsFull}}{{/waitTimeKnown}}
</p>{{/isEventPrequeueing}}{{/queueAll}}
<p class="small">Last updated {{lastUpdatedFormatted}}.</p>
</main>
</body>
</html>
"""
)

_REJECT_PAGE = template.parse(
    """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Not available</title>
"""
    + _STYLE
    + """
</head>
<body>
<main>
<h1>This page is not available right now</h1>
<p>We are not letting visitors in at the moment. Please try again later.</p>
</main>
</body>
</html>
"""
)
