"""A small origin server for `originguard demo`: says which origin answered."""

from __future__ import annotations

import argparse
import asyncio
import os

from aiohttp import web


def make_app(name: str) -> web.Application:
    async def hello(request: web.Request) -> web.Response:
        body = await request.read()
        text = (
            f"Hello from origin {name} (pid {os.getpid()})\n"
            f"You asked for {request.method} {request.path_qs}"
            + (f" with {len(body)} bytes" if body else "")
            + f"\nThe edge says you are {request.headers.get('OG-Connecting-IP', '?')}, "
            f"ray {request.headers.get('OG-Ray', '?')}\n"
        )
        return web.Response(text=text, headers={"X-Demo-Origin": name})

    async def slow(request: web.Request) -> web.Response:
        seconds = min(float(request.query.get("seconds", "2")), 300.0)
        await asyncio.sleep(seconds)
        return web.Response(text=f"origin {name} answered after {seconds}s\n")

    async def status(request: web.Request) -> web.Response:
        code = int(request.match_info["code"])
        return web.Response(status=code, text=f"origin {name} answered {code}\n")

    app = web.Application()
    app.router.add_get("/slow", slow)
    app.router.add_route("*", "/status/{code:[1-5][0-9][0-9]}", status)
    app.router.add_route("*", "/{tail:.*}", hello)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--name", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    web.run_app(make_app(args.name), host=args.host, port=args.port, print=None, access_log=None)


if __name__ == "__main__":
    main()
