"""A small stdlib client for the legacy upload API that also reads the status line's reason.

twine shows the reason phrase of the HTTP status line to the user, and moorage puts the
refusal's reason there; ``http.client`` exposes it as ``response.reason``.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import uuid
from pathlib import Path
from urllib.parse import urlsplit

# Leave a field out of the form by overriding it with this value.
OMIT = object()


def form_fields(path: Path, data: bytes, name: str, version: str) -> dict[str, object]:
    """The fields twine sends (the metadata ones that matter to the server)."""
    filetype = "bdist_wheel" if path.name.endswith(".whl") else "sdist"
    return {
        ":action": "file_upload",
        "protocol_version": "1",
        "metadata_version": "2.1",
        "name": name,
        "version": version,
        "filetype": filetype,
        "pyversion": "py3" if filetype == "bdist_wheel" else "source",
        "md5_digest": hashlib.md5(data).hexdigest(),
        "sha256_digest": hashlib.sha256(data).hexdigest(),
        "blake2_256_digest": hashlib.blake2b(data, digest_size=32).hexdigest(),
    }


def _guess_name_version(filename: str) -> tuple[str, str]:
    if filename.endswith(".whl"):
        name, version = filename.split("-")[:2]
        return name, version
    stem = filename
    for ext in (".tar.gz", ".zip", ".tar.bz2", ".tgz"):
        if stem.endswith(ext):
            stem = stem[: -len(ext)]
            break
    name, _, version = stem.rpartition("-")
    return name, version


def encode_multipart(fields: dict[str, object], filename: str, data: bytes) -> tuple[bytes, str]:
    boundary = "moorage-test-" + uuid.uuid4().hex
    parts: list[bytes] = []
    for key, value in fields.items():
        if value is OMIT or value is None:
            continue
        values = value if isinstance(value, list) else [value]
        for v in values:
            parts.append(
                f'--{boundary}\r\nContent-Disposition: form-data; name="{key}"\r\n\r\n{v}\r\n'.encode()
            )
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="content"; filename="{filename}"\r\n'
        f"Content-Type: application/octet-stream\r\n\r\n".encode()
        + data
        + b"\r\n"
    )
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def post_upload(url: str, token: str | None, path: Path, *,
                fields_override: dict[str, object] | None = None, username: str = "__token__",
                filename: str | None = None, data: bytes | None = None,
                timeout: float = 60) -> tuple[int, str, str]:
    """POST one file to the legacy upload URL; returns (status, reason phrase, body).

    ``fields_override`` replaces form fields (``OMIT`` leaves one out); ``filename`` and
    ``data`` replace the file's name and bytes in the form. ``token=None`` sends no
    Authorization header at all.
    """
    payload = path.read_bytes() if data is None else data
    sent_name = filename or path.name
    name, version = _guess_name_version(path.name)
    fields = form_fields(path, payload, name, version)
    fields.update(fields_override or {})
    body, content_type = encode_multipart(fields, sent_name, payload)
    parts = urlsplit(url)
    assert parts.hostname == "127.0.0.1", "the tests talk only to the loopback server"
    headers = {"Content-Type": content_type, "Content-Length": str(len(body))}
    if token is not None:
        headers["Authorization"] = "Basic " + base64.b64encode(f"{username}:{token}".encode()).decode()
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    try:
        conn.request("POST", parts.path or "/", body=body, headers=headers)
        resp = conn.getresponse()
        text = resp.read().decode("utf-8", "replace")
        return resp.status, resp.reason, text
    finally:
        conn.close()
