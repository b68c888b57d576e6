"""The origin side of one exchange, fed by hand: trailer fields of a chunked response."""

from __future__ import annotations

import asyncio
from typing import Any

from originguard.http.messages import ResponseHead
from originguard.upstream.connection import MAX_RESPONSE_HEADERS, OriginConnection


class Recording(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.aborted = False

    def write(self, data: Any) -> None: ...

    def is_closing(self) -> bool:
        return self.aborted

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...

    def close(self) -> None: ...

    def abort(self) -> None:
        self.aborted = True


def exchange(*reads: bytes) -> tuple[bool, list[bytes], list[tuple[bytes, bytes]], Recording]:
    """Feed `reads` as the origin's response; (completed cleanly, body, head fields, transport)."""

    async def run() -> tuple[bool, list[bytes], list[tuple[bytes, bytes]], Recording]:
        conn = OriginConnection(lambda _conn: None)
        transport = Recording()
        conn.connection_made(transport)
        await conn.send(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", False, 5.0, 5.0)
        body: list[bytes] = []
        conn.data_received(reads[0])
        head = await conn.read_head()
        assert isinstance(head, ResponseHead)
        done = conn.stream_body(body.append)
        for data in reads[1:]:
            conn.data_received(data)
            await asyncio.sleep(0)
        if not done.done():
            conn.connection_lost(None)
        return await done, body, list(head.headers), transport

    return asyncio.run(run())


HEAD = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-Real: 1\r\n\r\n5\r\nhello\r\n0\r\n"


def test_trailer_fields_are_dropped_not_added_to_the_head() -> None:
    complete, body, fields, _ = exchange(HEAD, b"X-Injected: 1\r\n\r\n")
    assert complete and b"".join(body) == b"hello"
    assert (b"x-injected", b"1") not in fields and (b"x-real", b"1") in fields


def test_trailer_fields_past_the_head_limit_break_the_response() -> None:
    many = b"".join(b"X-T%d: v\r\n" % i for i in range(MAX_RESPONSE_HEADERS + 1))
    complete, _, _, transport = exchange(HEAD, many, b"X-Last: 1\r\n")
    assert not complete and transport.aborted
