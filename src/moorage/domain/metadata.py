"""Core metadata read from a distribution's own METADATA / PKG-INFO bytes.

The bytes are kept exactly as uploaded (they are served as the file's ``.metadata``); what is
checked, and what is tolerated, is in ``metadata_rules`` and in the table of docs/api.md.
"""

from __future__ import annotations

import email.parser
import email.policy
from dataclasses import dataclass
from typing import Any, cast

from packaging.metadata import ExceptionGroup, InvalidMetadata, Metadata, RawMetadata, parse_email
from packaging.version import InvalidVersion, Version
from trove_classifiers import all_classifiers

from moorage.domain import metadata_rules as rules
from moorage.domain.decisions import Denied
from moorage.domain.filenames import DistFilename
from moorage.domain.names import normalize

SUPPORTED_METADATA_VERSIONS = rules.SUPPORTED_METADATA_VERSIONS
_KNOWN_CLASSIFIERS = frozenset(all_classifiers)
# distutils wrote "UNKNOWN" for every field it was not given; the public index drops such
# values before it validates, and so does this check (the bytes keep them).
_PLACEHOLDER = "UNKNOWN"


def _deny(rule: str, reason: str) -> Denied:
    return Denied.by(rule, reason)


@dataclass(frozen=True, slots=True)
class CoreMetadata:
    raw: bytes
    metadata_version: str
    name: str
    version: Version
    requires_python: str | None
    dynamic: frozenset[str]
    fields: dict[str, Any]  # JSON-ready fields for the JSON API, as the file wrote them

    def servable_for_sdist(self) -> bool:
        """PEP 643: an sdist's PKG-INFO may stand in for the wheel's METADATA when it is
        2.2+ and does not leave the dependency fields to the build."""
        if rules.version_index(self.metadata_version) < rules.version_index("2.2"):
            return False
        return not ({"requires-dist", "requires-python"} & self.dynamic)


def _messages(exc: BaseException) -> list[str]:
    if isinstance(exc, ExceptionGroup):
        return [m for e in exc.exceptions for m in _messages(e)]
    return [str(exc)]


def _metadata_version(raw: bytes) -> str | None:
    # Read only the header block, the way packaging does, to report the version we saw.
    parsed = email.parser.BytesParser(policy=email.policy.compat32).parsebytes(raw, headersonly=True)
    value = parsed.get("Metadata-Version")
    return str(value).strip() if value is not None else None


def _without_placeholders(raw: dict[str, Any]) -> dict[str, Any]:
    clean: dict[str, Any] = {}
    for key, value in raw.items():
        if isinstance(value, str) and value.strip() == _PLACEHOLDER:
            continue
        if isinstance(value, list):
            value = [v for v in value if not (isinstance(v, str) and v.strip() == _PLACEHOLDER)]
            if not value:
                continue
        clean[key] = value
    return clean


def _validate(raw: dict[str, Any]) -> Metadata:
    """packaging's validation, raised as one refusal listing (up to three of) its reasons."""
    try:
        return Metadata.from_raw(cast(RawMetadata, raw), validate=True)
    except (ExceptionGroup, InvalidMetadata) as exc:
        raise _deny("invalid-metadata", "invalid metadata: " + "; ".join(_messages(exc)[:3])) from None
    except (ValueError, TypeError) as exc:  # a value packaging cannot even convert
        raise _deny("invalid-metadata", f"invalid metadata: {exc}") from None


def parse_metadata(raw: bytes) -> CoreMetadata:
    """Parse and check metadata bytes; refuse with a one-line reason (docs/api.md, the table)."""
    mv = _metadata_version(raw)
    if mv is None:
        raise _deny("invalid-metadata", "the distribution's metadata has no Metadata-Version")
    if mv not in SUPPORTED_METADATA_VERSIONS:
        raise _deny(
            "metadata-version",
            f"Metadata-Version {mv} is not supported; use one of {', '.join(SUPPORTED_METADATA_VERSIONS)}",
        )
    try:
        parsed, unparsed = parse_email(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise _deny("invalid-metadata", f"invalid metadata: {exc}") from None
    unreadable = sorted(set(unparsed) & rules.RESOLVER_FIELDS)
    if unreadable:
        raise _deny("invalid-metadata", f"invalid metadata: {', '.join(unreadable)} is given more than once "
                    "or cannot be read")
    fields: dict[str, Any] = dict(parsed)
    raw_fields = _without_placeholders(fields)
    if mv in rules.READ_AS:
        raw_fields["metadata_version"] = rules.READ_AS[mv]

    for key, value in raw_fields.items():
        problem = rules.control_character_problem(key, value)
        if problem:
            raise _deny("invalid-metadata", f"invalid metadata: {problem}")

    # Fields written into an older Metadata-Version than the one that introduced them.
    checked = {k: v for k, v in raw_fields.items() if not rules.written_early(k, mv)}
    for key in sorted(set(raw_fields) - set(checked)):
        rule = rules.FIELDS[key]
        if rule.early == "validate":
            _validate({"metadata_version": rule.added, "name": raw_fields.get("name"),
                       "version": raw_fields.get("version"), key: raw_fields[key]})
    meta = _validate(checked)

    problems: list[str] = []
    if meta.summary is not None and len(meta.summary) > rules.MAX_SUMMARY:
        problems.append(f"Summary is longer than {rules.MAX_SUMMARY} characters")
    problems += rules.url_problems(meta.home_page, meta.download_url, meta.project_urls)
    problems += rules.email_problems("Author-email", meta.author_email)
    problems += rules.email_problems("Maintainer-email", meta.maintainer_email)
    problems += rules.classifier_problems(meta.classifiers, _KNOWN_CLASSIFIERS)
    problems += rules.requirement_problems("Requires-Dist", raw_fields.get("requires_dist"), parse=False)
    problems += rules.requirement_problems("Provides-Dist", meta.provides_dist, parse=True)
    problems += rules.requirement_problems("Obsoletes-Dist", meta.obsoletes_dist, parse=True)
    if "dynamic" in checked:
        problems += rules.dynamic_problems(meta.dynamic)
    if meta.license and meta.license_expression:
        problems.append("License and License-Expression are both given; with License-Expression, "
                        "License must be left out (PEP 639)")
    if problems:
        raise _deny("invalid-metadata", "invalid metadata: " + "; ".join(problems[:3]))

    requires_python = raw_fields.get("requires_python")
    return CoreMetadata(
        raw=raw,
        metadata_version=mv,
        name=meta.name,
        version=meta.version,
        # Served as the author wrote it (validated above), as PyPI does.
        requires_python=requires_python.strip() if requires_python else None,
        dynamic=frozenset(d.lower() for d in (meta.dynamic or [])),
        fields=fields,
    )


def check_license_files(meta: CoreMetadata, members: frozenset[str], root: str) -> None:
    """PEP 639: from Metadata 2.4, every License-File is in the distribution (a wheel's under
    ``.dist-info/licenses/``); older files used the field for other things and are not held to it."""
    if rules.version_index(meta.metadata_version) < rules.version_index("2.4"):
        return
    for path in meta.fields.get("license_files") or []:
        if root + path not in members:
            raise _deny("invalid-metadata", f"invalid metadata: License-File {path} is not in the distribution "
                        f"(looked for {root}{path})")


def check_agreement(meta: CoreMetadata, dist: DistFilename, form_name: str, form_version: str) -> None:
    """The file's metadata, the form and the filename must name the same release."""
    try:
        form_v = Version(form_version)
    except InvalidVersion:
        raise _deny("invalid-version", f"the form's version {form_version!r} is not a valid version") from None
    except ValueError:  # a number too long to convert
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
    readings = dist.readings or ((dist.name, dist.version),)
    if not any(normalize(name) == normalize(meta.name) for name, _ in readings):
        raise _deny(
            "filename-mismatch",
            f"the filename {dist.filename!r} does not match the metadata name {meta.name!r}",
        )
    if not any(normalize(name) == normalize(meta.name) and version == meta.version for name, version in readings):
        raise _deny(
            "filename-mismatch",
            f"the filename {dist.filename!r} does not match the metadata version {meta.version}",
        )
