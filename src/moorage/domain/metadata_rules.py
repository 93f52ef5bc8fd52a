"""What the core metadata of an upload may hold: the field table and the checks on top of packaging.

The rule of thumb (docs/api.md has the full table, field by field): strict where a resolver
or an installer reads, as the public index is; tolerant of what real, published files carry.
A field written into an older Metadata-Version than the one that introduced it is the common
case (setuptools wrote License-File into 2.1 for years; hatchling wrote License-Expression
into 2.3): fields only people read are then kept as written and not checked against a
standard the file did not claim, fields a resolver reads are checked as of the version that
introduced them.
"""

from __future__ import annotations

import email.utils
import re
import unicodedata
import urllib.parse
from dataclasses import dataclass
from typing import Literal

from packaging.requirements import InvalidRequirement, Requirement

# The Metadata-Version values accepted, oldest first: the versions packaging knows, and "2.0".
# 2.0 (PEP 426) was withdrawn and never a standard, but bdist_wheel wrote it until 2018 and
# some projects built with that for years after (boto3 until 2021): such files are read as 2.1,
# the version that standardised what they hold. The public index refuses 2.0 today.
SUPPORTED_METADATA_VERSIONS: tuple[str, ...] = ("1.0", "1.1", "1.2", "2.0", "2.1", "2.2", "2.3", "2.4", "2.5",
                                                "2.6")
READ_AS = {"2.0": "2.1"}

Early = Literal["tolerate", "validate"]


@dataclass(frozen=True, slots=True)
class FieldRule:
    header: str  # as written in METADATA / PKG-INFO
    added: str  # the Metadata-Version that introduced the field
    # No control characters in a value (each value of a list) and one logical line (a header
    # folded onto the next line is one); only Description and License are free text.
    single_line: bool
    early: Early  # written into an older Metadata-Version: kept unchecked, or checked as of `added`


# packaging's raw key -> the field's rule.
FIELDS: dict[str, FieldRule] = {
    "metadata_version": FieldRule("Metadata-Version", "1.0", True, "validate"),
    "name": FieldRule("Name", "1.0", True, "validate"),
    "version": FieldRule("Version", "1.0", True, "validate"),
    "platforms": FieldRule("Platform", "1.0", True, "validate"),
    "summary": FieldRule("Summary", "1.0", True, "validate"),
    "description": FieldRule("Description", "1.0", False, "validate"),
    "keywords": FieldRule("Keywords", "1.0", True, "validate"),
    "home_page": FieldRule("Home-page", "1.0", True, "validate"),
    "author": FieldRule("Author", "1.0", True, "validate"),
    "author_email": FieldRule("Author-email", "1.0", True, "validate"),
    "license": FieldRule("License", "1.0", False, "validate"),
    "supported_platforms": FieldRule("Supported-Platform", "1.1", True, "validate"),
    "download_url": FieldRule("Download-URL", "1.1", True, "validate"),
    "classifiers": FieldRule("Classifier", "1.1", True, "validate"),
    "requires": FieldRule("Requires", "1.1", True, "validate"),
    "provides": FieldRule("Provides", "1.1", True, "validate"),
    "obsoletes": FieldRule("Obsoletes", "1.1", True, "validate"),
    "maintainer": FieldRule("Maintainer", "1.2", True, "validate"),
    "maintainer_email": FieldRule("Maintainer-email", "1.2", True, "validate"),
    "requires_dist": FieldRule("Requires-Dist", "1.2", True, "validate"),
    "provides_dist": FieldRule("Provides-Dist", "1.2", True, "validate"),
    "obsoletes_dist": FieldRule("Obsoletes-Dist", "1.2", True, "validate"),
    "requires_python": FieldRule("Requires-Python", "1.2", True, "validate"),
    "requires_external": FieldRule("Requires-External", "1.2", True, "validate"),
    "project_urls": FieldRule("Project-URL", "1.2", True, "validate"),
    "description_content_type": FieldRule("Description-Content-Type", "2.1", True, "validate"),
    "provides_extra": FieldRule("Provides-Extra", "2.1", True, "validate"),
    "dynamic": FieldRule("Dynamic", "2.2", True, "tolerate"),
    "license_expression": FieldRule("License-Expression", "2.4", True, "tolerate"),
    "license_files": FieldRule("License-File", "2.4", True, "tolerate"),
    "import_names": FieldRule("Import-Name", "2.5", True, "tolerate"),
    "import_namespaces": FieldRule("Import-Namespace", "2.5", True, "tolerate"),
}

# Fields whose value a resolver or installer reads: a value that cannot be read (given twice,
# not UTF-8) is refused; any other field that cannot be read is kept in the bytes and left out
# of the JSON API.
RESOLVER_FIELDS = frozenset({"metadata-version", "name", "version", "requires-python", "requires-dist",
                             "provides-extra", "dynamic"})

# The fields PEP 643 lets an sdist leave to the build (the public index's list, PEP 794's too).
DYNAMIC_FIELDS = frozenset(h.lower() for h in (
    "Platform", "Supported-Platform", "Summary", "Description", "Description-Content-Type", "Keywords",
    "Home-Page", "Download-Url", "Author", "Author-Email", "Maintainer", "Maintainer-Email", "License",
    "License-Expression", "License-File", "Classifier", "Requires-Dist", "Requires-Python",
    "Requires-External", "Project-Url", "Provides-Extra", "Provides-Dist", "Obsoletes-Dist", "Requires",
    "Provides", "Obsoletes", "Import-Name", "Import-Namespace",
))

MAX_SUMMARY = 512
MAX_URL_LABEL = 32

# C0 controls but the tab, DEL and the C1 controls: an ESC in a summary rewrites what a
# terminal shows. Line breaks are checked separately (folded headers).
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_BREAK = re.compile(r"[\r\n\v\f\x1c-\x1e\x85\u2028\u2029]")
# What RFC 3986 lets stand unescaped in a URI (and the percent sign of an escape).
_URI_CHARS = re.compile(r"^[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]+$")


def version_index(version: str) -> int:
    return SUPPORTED_METADATA_VERSIONS.index(version)


def written_early(raw_key: str, metadata_version: str) -> bool:
    """The field was written into a Metadata-Version older than the one that introduced it."""
    rule = FIELDS.get(raw_key)
    return rule is not None and version_index(rule.added) > version_index(metadata_version)


def control_character_problem(raw_key: str, value: object) -> str | None:
    """Why a value of a single-line field is refused, or None."""
    rule = FIELDS.get(raw_key)
    if rule is None or not rule.single_line:
        return None
    values = [*value.keys(), *value.values()] if isinstance(value, dict) else (
        value if isinstance(value, list) else [value])
    for item in values:
        if not isinstance(item, str):
            continue
        bad = _CONTROL.search(item)
        if bad:
            return f"{rule.header} holds the control character U+{ord(bad.group()):04X}; it is refused"
        # A folded header (a line break followed by white space) is one logical line.
        folded = _BREAK.split(item.strip())[1:]
        if folded and not all(rest[:1] in (" ", "\t") for rest in folded):
            return f"{rule.header} must be a single line"
    return None


def valid_url(url: str) -> bool:
    """An http or https URL written with the characters RFC 3986 allows (the public index's check)."""
    if not url or not _URI_CHARS.match(url):
        return False
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return False
    return parts.scheme.lower() in ("http", "https")


def url_problems(home_page: str | None, download_url: str | None, project_urls: dict[str, str] | None) -> list[str]:
    problems = []
    for header, url in (("Home-page", home_page), ("Download-URL", download_url)):
        if url is not None and not valid_url(url):
            problems.append(f"{header} {url!r} is not a valid http or https URL")
    for label, url in (project_urls or {}).items():
        if not label:
            problems.append("a Project-URL must have a label")
        elif len(label) > MAX_URL_LABEL:
            problems.append(f"the Project-URL label {label!r} is longer than {MAX_URL_LABEL} characters")
        elif not url:
            problems.append(f"the Project-URL {label!r} has no URL")
        elif not valid_url(url):
            problems.append(f"the Project-URL {label!r} has {url!r}, not a valid http or https URL")
    return problems


def email_problems(header: str, value: str | None) -> list[str]:
    """Each address given must be local@domain with a dotted domain (the public index checks each)."""
    if value is None or not value.strip():
        return []
    addresses = [address for _display, address in email.utils.getaddresses([value])]
    if not any(addresses):  # the standard library gives ("", "") for what it cannot parse
        return [f"{header} {value!r} is not a valid email address"]
    problems = []
    for address in filter(None, addresses):
        local, at, domain = address.rpartition("@")
        labels = domain.split(".")
        if (not at or not local or len(labels) < 2 or not all(labels)
                or any(c.isspace() or unicodedata.category(c)[0] == "C" for c in address)):
            problems.append(f"{header} {address!r} is not a valid email address")
    return problems


def requirement_problems(header: str, values: list[str] | None, *, parse: bool) -> list[str]:
    """No direct references (name @ URL) on an index; Provides-/Obsoletes-Dist must parse too."""
    problems = []
    for value in values or []:
        try:
            requirement = Requirement(value)
        except InvalidRequirement as exc:
            if parse:
                problems.append(f"{header} {value!r} is invalid: {exc}")
            continue
        if requirement.url is not None:
            problems.append(f"{header} {value!r} is a direct reference; an index cannot depend on a URL")
    return problems


def dynamic_problems(values: list[str] | None) -> list[str]:
    return [f"Dynamic {v!r} is not a field an sdist may leave to the build"
            for v in values or [] if v.lower() not in DYNAMIC_FIELDS]


def classifier_problems(values: list[str] | None, known: frozenset[str]) -> list[str]:
    """Classifiers must be known trove classifiers; ``Private ::`` ones are for private indexes
    (the convention exists to keep a file off the public index) and deprecated ones are kept."""
    return [f"Classifier {c!r} is not a known trove classifier"
            for c in values or [] if c.strip() not in known and not c.startswith("Private ::")]
