"""The legacy upload form (``POST /legacy/``): its fields, checked before anything else is.

Every field is checked before the bytes are looked at, so that an identical re-upload (which
answers 200 without reading the archive) still answers only a well-formed form.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from packaging.version import InvalidVersion, Version

from moorage.domain.decisions import Denied
from moorage.domain.filenames import DistFilename, parse_filename
from moorage.domain.names import is_valid_name
from moorage.domain.policy import UploadPolicy

_HEX = {"md5_digest": re.compile(r"^[0-9a-fA-F]{32}$"),
        "sha256_digest": re.compile(r"^[0-9a-fA-F]{64}$"),
        "blake2_256_digest": re.compile(r"^[0-9a-fA-F]{64}$")}
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True)
class UploadForm:
    action: str | None
    protocol_version: str | None
    name: str | None
    version: str | None
    filetype: str | None
    filename: str | None
    md5_digest: str | None = None
    sha256_digest: str | None = None
    blake2_256_digest: str | None = None
    pyversion: str | None = None


@dataclass(frozen=True, slots=True)
class CheckedForm:
    name: str
    version: Version
    dist: DistFilename


def check_form(form: UploadForm, policy: UploadPolicy) -> CheckedForm:
    """The form as the public index checks it (its UploadForm and file checks), in its order."""
    if form.action != "file_upload":
        shown = "no :action" if form.action is None else f"the :action {form.action!r}"
        raise Denied.by("unsupported-action", f"{shown}: only :action=file_upload is supported here")
    if form.protocol_version != "1":
        raise Denied.by("protocol-version", f"unsupported protocol_version {form.protocol_version!r}; use 1")
    if not form.name or not form.version:
        raise Denied.by("missing-field", "the form must give the project name and version")
    if not is_valid_name(form.name):
        raise Denied.by("invalid-name", f"{form.name!r} is not a valid project name: start and end with a "
                        "letter or digit, and use only ASCII letters, digits, '.', '_' and '-'")
    if _CONTROL.search(form.version):
        raise Denied.by("invalid-version", f"the form's version {form.version!r} is not a valid version")
    try:
        version = Version(form.version)
    except (InvalidVersion, ValueError):  # ValueError: a number too long to convert
        raise Denied.by("invalid-version", f"the form's version {form.version!r} is not a valid version") from None
    if version.local and not policy.allow_local_versions:
        raise Denied.by("local-version", f"the local version {version} is not allowed on this index "
                        "(the operator can allow them: [upload] allow_local_versions)")
    if form.filetype not in ("sdist", "bdist_wheel"):
        raise Denied.by("invalid-filetype", f"unsupported filetype {form.filetype!r}: use sdist or bdist_wheel")
    if form.filetype == "sdist" and form.pyversion not in (None, "", "source"):
        raise Denied.by("invalid-pyversion", f"pyversion {form.pyversion!r}: use 'source' for an sdist")
    if form.filetype == "bdist_wheel" and not form.pyversion:
        raise Denied.by("invalid-pyversion", "a wheel's upload form must give its pyversion (the Python tag)")
    for key, pattern in _HEX.items():
        value = getattr(form, key)
        if value and not pattern.match(value.strip()):
            raise Denied.by("invalid-digest", f"{key} {value[:80]!r} is not a hex-encoded digest")
    if not form.md5_digest and not form.sha256_digest and not form.blake2_256_digest:
        raise Denied.by("digest-missing",
                        "include at least one message digest (sha256_digest, blake2_256_digest or md5_digest)")
    if not form.filename:
        raise Denied.by("missing-file", "the form must carry the file in its 'content' field")
    return CheckedForm(form.name, version, parse_filename(form.filename, form.filetype))
