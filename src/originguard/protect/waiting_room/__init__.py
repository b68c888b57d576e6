"""Waiting room (spec §9): queue visitors fairly when an endpoint would be overwhelmed.

settings.py  RoomSettings, Event, Bypass; phase_at(settings, now) -> Phase
ticket.py    Ticket, Keyring (AES-GCM, rotation); read(token, ...) -> Ticket | None
admission.py decide(...) -> Admit | Queue | Reject | Pass (state: state.base.AdmissionQueue)
page.py      respond(settings, decision, accept, now) -> RoomPage (HTML queue/reject or JSON)
template.py  the Mustache subset used by default and custom pages
"""
