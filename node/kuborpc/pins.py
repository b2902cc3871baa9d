"""``pin/add``, ``pin/rm`` and ``pin/ls`` with kubo's pin-state rules, names and indirect pins.

Shapes follow kubo's core/commands/pin/pin.go: ``pin/add`` and ``pin/rm``
answer ``{"Pins":[...]}``; ``pin/ls`` answers ``{"Keys":{cid:{"Type","Name"}}}``
(``{}`` when there is no pin: ``Keys`` is omitted when empty), or with
``stream`` one ``{"Cid","Name","Type"}`` line per pin where an empty ``Name``
is left out. Names are shown only with ``names`` or a ``name`` filter
(a substring match); indirect pins have none.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from aiohttp import web

from blockstore.pins import LocalPinError, check_pin_name

from ..core import PIN_TYPES
from ..errors import CoreError
from .options import Options, KuboRpcError, format_cid
from .respond import chunked_headers, encode_json, json_response, stream_generator

if TYPE_CHECKING:
    from .app import RpcContext


def _pin_type(o: Options) -> str:
    kind = o.string("type", "all") or "all"
    if kind not in PIN_TYPES:
        raise KuboRpcError(f"invalid type '{kind}', must be one of {{direct, indirect, recursive, all}}")
    return kind


def _name_option(o: Options, option: str) -> str:
    name = o.string(option, "") or ""
    try:
        check_pin_name(name)
    except LocalPinError as exc:
        raise KuboRpcError(str(exc)) from None
    return name


async def h_pin_add(request: web.Request, ctx: RpcContext, o: Options) -> web.StreamResponse:
    """``pin/add``: ``{"Pins":[...]}``; ``name`` names the pins (re-pinning renames them)."""
    args = o.some_args("ipfs-path")
    recursive = o.boolean("recursive", True)
    progress = o.boolean("progress", False)
    name = _name_option(o, "name")
    base = o.string("cid-base", None)
    for flag in ("fast-provide-root", "fast-provide-dag", "fast-provide-wait"):
        o.boolean(flag, False)
    if progress:
        await ctx.run(ctx.core.admit_new_pin)  # 429 before the stream starts when the pin queue is full
        return await _pin_add_with_progress(request, ctx, args, recursive, name, base)
    pinned = []
    for path in args:
        cid = await ctx.reader().pin_add(path, recursive=recursive, name=name)  # the DAG is fetched on the loop
        pinned.append(format_cid(cid, base))
    return json_response({"Pins": pinned})


async def _pin_add_with_progress(
    request: web.Request, ctx: RpcContext, args: list[str], recursive: bool, name: str, base: str | None
) -> web.StreamResponse:
    """``pin/add?progress=true`` as kubo streams it: ``{"Progress": blocks}`` lines while the DAG
    is fetched, then ``{"Pins": [...]}``; an error after the stream started is an error line."""
    loop = asyncio.get_running_loop()
    counts: asyncio.Queue[int] = asyncio.Queue()
    resp = web.StreamResponse(headers=chunked_headers())
    await resp.prepare(request)
    pinned = []

    def report(n: int) -> None:
        loop.call_soon_threadsafe(counts.put_nowait, n)

    try:
        for path in args:
            job = asyncio.ensure_future(ctx.reader().pin_add(path, recursive=recursive, progress=report, name=name))
            last = 0
            while not job.done():
                getter = asyncio.ensure_future(counts.get())
                await asyncio.wait({job, getter}, return_when=asyncio.FIRST_COMPLETED)
                if getter.done() and getter.result() > last:
                    last = getter.result()
                    await resp.write(encode_json({"Progress": last}))
                else:
                    getter.cancel()
            pinned.append(format_cid(job.result(), base))
        await resp.write(encode_json({"Pins": pinned}))
    except (CoreError, KuboRpcError) as exc:
        message = exc.message if isinstance(exc, KuboRpcError) else str(exc)
        await resp.write(json.dumps({"Message": message, "Code": 0, "Type": "error"}).encode() + b"\n")
    await resp.write_eof()
    return resp


async def h_pin_rm(request: web.Request, ctx: RpcContext, o: Options) -> web.StreamResponse:
    """``pin/rm``: ``{"Pins":[...]}``; a recursive pin needs ``recursive`` (the default)."""
    args = o.some_args("ipfs-path")
    recursive = o.boolean("recursive", True)
    base = o.string("cid-base", None)
    removed = []
    for path in args:
        cid = await ctx.run(lambda p=path: ctx.core.pin_rm(p, recursive=recursive))
        removed.append(format_cid(cid, base))
    return json_response({"Pins": removed})


async def h_pin_ls(request: web.Request, ctx: RpcContext, o: Options) -> web.StreamResponse:
    """``pin/ls``: every pin of a type (indirect ones included for ``all``), or how each argument is pinned."""
    kind = _pin_type(o)
    stream = o.boolean("stream", False)
    o.boolean("quiet", False)  # shapes only kubo's text output
    name_filter = _name_option(o, "name")
    show_names = o.boolean("names", False) or bool(name_filter)
    base = o.string("cid-base", None)
    args = o.args()

    def checked() -> list[tuple[bytes, str, str]]:
        cids = [ctx.core.resolve(path) for path in args]
        found = ctx.core.pin_check(cids, kind)
        out = []
        for path, cid, pin in zip(args, cids, found):
            if pin is None:
                raise KuboRpcError(f"path '{path}' is not pinned")
            out.append((cid, pin[0], pin[1]))
        return out

    def line(cid: bytes, pin_type: str, name: str) -> dict[str, Any]:
        obj: dict[str, Any] = {"Cid": format_cid(cid, base)}
        if show_names and name:
            obj["Name"] = name
        obj["Type"] = pin_type
        return obj

    if args:
        pins = await ctx.run(checked)
        if stream:
            body = b"".join(encode_json(line(c, t, n)) for c, t, n in pins)
            return web.Response(body=body, headers=chunked_headers())
        keys = {format_cid(c, base): {"Type": t, "Name": n if show_names else ""} for c, t, n in pins}
        return json_response({"Keys": keys} if keys else {})

    if stream:

        def lines() -> Iterator[bytes]:
            for cid, pin_type, name in ctx.core.pin_list(kind, name_filter):
                yield encode_json(line(cid, pin_type, name))

        return await stream_generator(request, ctx.executor, lines(), headers=chunked_headers())

    def collect() -> dict[str, dict[str, str]]:
        return {
            format_cid(cid, base): {"Type": pin_type, "Name": name if show_names else ""}
            for cid, pin_type, name in ctx.core.pin_list(kind, name_filter)
        }

    keys = await ctx.run(collect)
    return json_response({"Keys": keys} if keys else {})
