"""POST /legacy/: the upload API twine, uv publish, poetry and hatch use."""

from __future__ import annotations

from anyio import to_thread
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.types import Message, Receive

from moorage.domain.decisions import Decision, Denied
from moorage.domain.names import normalize
from moorage.services.auth import basic_credentials, token_owner
from moorage.services.context import Context
from moorage.services.uploads import UploadForm, upload_file
from moorage.web.responses import Refusal, attribute

# Room for the form's metadata fields around the file itself.
FORM_OVERHEAD = 8 * 1024 * 1024


class BodyTooLarge(Exception):
    pass


def _limited(receive: Receive, limit: int) -> Receive:
    """Stop reading a request body (even a chunked one) once it passes ``limit`` bytes."""
    seen = 0

    async def wrapped() -> Message:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                raise BodyTooLarge()
        return message

    return wrapped


def _field(form: object, key: str) -> str | None:
    value = form.get(key)  # type: ignore[attr-defined]
    return value if isinstance(value, str) else None


class LegacyUpload:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    async def handle(self, request: Request) -> Response:
        creds = basic_credentials(request.headers.get("authorization"))
        if creds is None:
            return Refusal(Decision.deny(
                "authentication-required",
                "authentication required: use __token__ as the user name and an API token as the password",
            ))
        user, token = creds
        if user != "__token__":
            return Refusal(Decision.deny(
                "token-required",
                "uploads authenticate with API tokens: use __token__ as the user name and the token as the password",
            ))
        limit = self.ctx.settings.upload.max_file_size
        length = request.headers.get("content-length")
        if length and length.isdigit() and int(length) > limit + FORM_OVERHEAD:
            return Refusal(Decision.deny(
                "file-size-limit", f"the upload is {int(length)} bytes; the limit is {limit} bytes per file"))
        request = Request(request.scope, _limited(request.receive, limit + FORM_OVERHEAD))
        try:
            form = await request.form(max_files=1, max_fields=1000, max_part_size=FORM_OVERHEAD)
        except BodyTooLarge:
            return Refusal(Decision.deny(
                "file-size-limit", f"the upload is larger than the limit of {limit} bytes per file"))
        except HTTPException as exc:
            return Refusal(Decision.deny("invalid-form", f"invalid upload form: {exc.detail}"))
        try:
            content = form.get("content")
            upload = content if isinstance(content, UploadFile) else None
            fields = UploadForm(
                action=_field(form, ":action"),
                protocol_version=_field(form, "protocol_version"),
                name=_field(form, "name"),
                version=_field(form, "version"),
                filetype=_field(form, "filetype"),
                filename=upload.filename if upload else None,
                md5_digest=_field(form, "md5_digest"),
                sha256_digest=_field(form, "sha256_digest"),
                blake2_256_digest=_field(form, "blake2_256_digest"),
                pyversion=_field(form, "pyversion"),
            )
            try:
                result = await to_thread.run_sync(
                    lambda: upload_file(self.ctx, token=token, form=fields, content=upload.file if upload else None,
                                        address=request.client.host if request.client else None)
                )
            except Denied as denied:
                # The operator's log line names the project and whose token it was (never the token).
                owner = await to_thread.run_sync(token_owner, self.ctx, token)
                attribute(request.scope, project=normalize(fields.name) if fields.name else None, actor=owner)
                return Refusal(denied.decision)
        finally:
            await form.close()
        if result.outcome == "exists":
            return PlainTextResponse(f"{result.filename} is already on this index with the same contents\n")
        return PlainTextResponse(f"uploaded {result.filename}\n")
