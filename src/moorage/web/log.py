"""The log under /log/: checkpoint, verifier key, tiles, entry bundles and proofs (C2SP tlog-tiles)."""

from __future__ import annotations

import base64

from anyio import to_thread
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from moorage.domain.decisions import Decision
from moorage.log.tiles import parse_tile_path
from moorage.services.log import LogService
from moorage.web.responses import Refusal, not_found

IMMUTABLE = "public, max-age=31536000, immutable"


def _bad(reason: str) -> Refusal:
    return Refusal(Decision.deny("invalid-request", reason), as_json=True)


def _int(request: Request, name: str) -> int | None:
    value = request.query_params.get(name, "")
    return int(value) if value.isdigit() and len(value) < 19 else None


class LogViews:
    def __init__(self, log: LogService) -> None:
        self.log = log

    async def checkpoint(self, request: Request) -> Response:
        note = await to_thread.run_sync(self.log.checkpoint)
        return PlainTextResponse(note, headers={"Cache-Control": "no-cache"})

    async def key(self, request: Request) -> Response:
        return PlainTextResponse(self.log.signer.verifier.vkey() + "\n", headers={"Cache-Control": "no-cache"})

    async def tile(self, request: Request) -> Response:
        try:
            level, n, width = parse_tile_path(request.path_params["path"])
        except ValueError as exc:
            return not_found(str(exc))
        data = await to_thread.run_sync(self.log.tile, level, n, width)
        if data is None:
            return not_found("the log has no such tile (yet)")
        return Response(data, media_type="application/octet-stream", headers={"Cache-Control": IMMUTABLE})

    async def inclusion(self, request: Request) -> Response:
        index, size = _int(request, "index"), _int(request, "size")
        if index is None or size is None:
            return _bad("give ?index=I&size=S (whole numbers)")
        tree = await to_thread.run_sync(self.log.size)
        if not 0 <= index < size <= tree:
            return _bad(f"need 0 <= index < size <= {tree} (the log's size)")
        proof = await to_thread.run_sync(self.log.inclusion, index, size)
        return JSONResponse({"index": index, "size": size, "proof": [base64.b64encode(p).decode() for p in proof]})

    async def consistency(self, request: Request) -> Response:
        first, second = _int(request, "from"), _int(request, "to")
        if first is None or second is None:
            return _bad("give ?from=A&to=B (whole numbers)")
        tree = await to_thread.run_sync(self.log.size)
        if not 0 <= first <= second <= tree:
            return _bad(f"need 0 <= from <= to <= {tree} (the log's size)")
        proof = await to_thread.run_sync(self.log.consistency, first, second)
        return JSONResponse({"from": first, "to": second, "proof": [base64.b64encode(p).decode() for p in proof]})
