"""Core metadata read from a distribution's own METADATA / PKG-INFO bytes."""

from __future__ import annotations

import email.parser
import email.policy
from dataclasses import dataclass
from typing import Any

from packaging.metadata import ExceptionGroup, InvalidMetadata, Metadata, parse_email
from packaging.version import Version

from moorage.domain.decisions import Decision, Denied
from moorage.domain.filenames import DistFilename
from moorage.domain.names import normalize

# The metadata versions this index accepts: those the installed `packaging` knows.
SUPPORTED_METADATA_VERSIONS: tuple[str, ...] = ("1.0", "1.1", "1.2", "2.1", "2.2", "2.3", "2.4", "2.5", "2.6")


def _deny(rule: str, reason: str) -> Denied:
    return Denied(Decision.deny(rule, reason, status=400))


@dataclass(frozen=True, slots=True)
class CoreMetadata:
    raw: bytes
    metadata_version: str
    name: str
    version: Version
    requires_python: str | None
    dynamic: frozenset[str]
    fields: dict[str, Any]  # JSON-ready fields for the JSON API

    def servable_for_sdist(self) -> bool:
        """PEP 643: an sdist's PKG-INFO may stand in for the wheel's METADATA when it is
        2.2+ and does not leave the dependency fields to the build."""
        major, minor = (int(p) for p in self.metadata_version.split(".")[:2])
        if (major, minor) < (2, 2):
            return False
        return not ({"requires-dist", "requires-python"} & self.dynamic)


def _first_error(exc: BaseException) -> str:
    if isinstance(exc, ExceptionGroup):
        return "; ".join(_first_error(e) for e in exc.exceptions[:3])
    return str(exc)


def _metadata_version(raw: bytes) -> str | None:
    # Read only the header block, the way packaging does, to report the version we saw.
    parsed = email.parser.BytesParser(policy=email.policy.compat32).parsebytes(raw, headersonly=True)
    value = parsed.get("Metadata-Version")
    return str(value).strip() if value is not None else None


def parse_metadata(raw: bytes) -> CoreMetadata:
    """Parse and validate metadata bytes; refuse with a one-line reason."""
    mv = _metadata_version(raw)
    if mv is None:
        raise _deny("invalid-metadata", "the distribution's metadata has no Metadata-Version")
    if mv not in SUPPORTED_METADATA_VERSIONS:
        raise _deny(
            "metadata-version",
            f"Metadata-Version {mv} is not supported; use one of {', '.join(SUPPORTED_METADATA_VERSIONS)}",
        )
    try:
        meta = Metadata.from_email(raw, validate=True)
    except (ExceptionGroup, InvalidMetadata) as exc:
        raise _deny("invalid-metadata", f"invalid metadata: {_first_error(exc)}") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise _deny("invalid-metadata", f"invalid metadata: {exc}") from None
    raw_fields, _unparsed = parse_email(raw)
    fields: dict[str, Any] = {}
    for key, value in raw_fields.items():
        fields[key] = value
    return CoreMetadata(
        raw=raw,
        metadata_version=mv,
        name=meta.name,
        version=meta.version,
        # Served as the author wrote it (validated above), as PyPI does.
        requires_python=raw_fields["requires_python"].strip() if raw_fields.get("requires_python") else None,
        dynamic=frozenset(d.lower() for d in (meta.dynamic or [])),
        fields=fields,
    )


def check_agreement(meta: CoreMetadata, dist: DistFilename, form_name: str, form_version: str) -> None:
    """The file's metadata, the form and the filename must name the same release."""
    try:
        form_v = Version(form_version)
    except ValueError:  # InvalidVersion, or a number too long to convert
        raise _deny("invalid-version", f"the form's version {form_version!r} is not a valid version") from None
    if normalize(form_name) != normalize(meta.name):
        raise _deny(
            "metadata-mismatch",
            f"the form names project {form_name!r} but the file's metadata says {meta.name!r}",
        )
    if form_v != meta.version:
        raise _deny(
            "metadata-mismatch",
            f"the form says version {form_version} but the file's metadata says {meta.version}",
        )
    if normalize(dist.name) != normalize(meta.name):
        raise _deny(
            "filename-mismatch",
            f"the filename {dist.filename!r} does not match the metadata name {meta.name!r}",
        )
    if dist.version != meta.version:
        raise _deny(
            "filename-mismatch",
            f"the filename {dist.filename!r} does not match the metadata version {meta.version}",
        )
