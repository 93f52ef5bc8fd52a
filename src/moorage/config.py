"""Configuration: one TOML file plus environment overrides; no file at all runs the defaults.

Precedence (highest first): command-line flags, MOORAGE_* environment variables, the TOML
file (``--config`` or MOORAGE_CONFIG), built-in defaults.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

from moorage.domain.accounts import REQUIRE_2FA, AccountPolicy, CriticalRule
from moorage.domain.durations import Span, describe
from moorage.domain.lifecycle import LifecyclePolicy
from moorage.domain.names import normalize
from moorage.domain.policy import UploadPolicy

DEFAULT_DATA_DIR = "moorage-data"
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]i?B|B)?\s*$", re.IGNORECASE)
_UNITS = {"b": 1, "kb": 1000, "mb": 1000**2, "gb": 1000**3, "tb": 1000**4,
          "kib": 1024, "mib": 1024**2, "gib": 1024**3, "tib": 1024**4}


class ConfigError(Exception):
    pass


def parse_size(value: int | str, key: str) -> int:
    if isinstance(value, bool):
        raise ConfigError(f"{key}: expected a size such as 100 or '100 MiB', got {value!r}")
    if isinstance(value, int):
        return value
    match = _SIZE.match(str(value))
    if not match:
        raise ConfigError(f"{key}: expected a size such as 100 or '100 MiB', got {value!r}")
    number, unit = match.groups()
    return int(float(number) * _UNITS[(unit or "b").lower()])


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)\s*$", re.IGNORECASE)
_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(value: Any, key: str) -> timedelta:
    """'14d', '72h', '30m', '45s', '2w', or a number of seconds. The result remembers its unit
    (a Span), so messages and `moorage policy show` say "72 hours" for "72h", "3 days" for "3d"."""
    if isinstance(value, bool):
        raise ConfigError(f"{key}: expected a duration such as '14d' or '72h', got {value!r}")
    if isinstance(value, int | float):
        seconds, unit = float(value), "s"
    else:
        match = _DURATION.match(str(value))
        if not match:
            raise ConfigError(f"{key}: expected a duration such as '14d' or '72h', got {value!r}")
        unit = match.group(2).lower()
        seconds = float(match.group(1)) * _DURATION_UNITS[unit]
    if seconds < 0:
        raise ConfigError(f"{key}: a duration cannot be negative")
    return Span(seconds, unit)


def _critical_rule(value: Any) -> CriticalRule:
    """"none", "top 1%" (of projects, by 30-day downloads), or a list of project names."""
    if isinstance(value, list):
        if not all(isinstance(v, str) and v for v in value):
            raise ConfigError(f"policy.critical: a list of project names, got {value!r}")
        return CriticalRule("list", names=frozenset(normalize(v) for v in value))
    if value == "none":
        return CriticalRule("none")
    match = re.fullmatch(r"\s*top\s+(\d+(?:\.\d+)?)\s*%\s*", value) if isinstance(value, str) else None
    if not match or not 0 < float(match.group(1)) <= 100:
        raise ConfigError(f"policy.critical: expected \"none\", \"top N%\" (0 < N <= 100) or a list of project "
                          f"names, got {value!r}")
    return CriticalRule("top", float(match.group(1)))


def _account_policy(section: dict[str, Any], web: dict[str, Any]) -> AccountPolicy:
    """The [policy] keys about accounts (popped from the section), and [web] fresh_factor."""
    kwargs: dict[str, Any] = {}
    if "require_2fa" in section:
        kwargs["require_2fa"] = _choice(section.pop("require_2fa"), "policy.require_2fa", REQUIRE_2FA)
    if "critical" in section:
        kwargs["critical"] = _critical_rule(section.pop("critical"))
    if "critical_grace" in section:
        kwargs["critical_grace"] = parse_duration(section.pop("critical_grace"), "policy.critical_grace")
    if "download_jump" in section:
        kwargs["download_jump"] = _number(section.pop("download_jump"), "policy.download_jump", minimum=1.0)
    if "token_unused_expiry" in section:
        value = section.pop("token_unused_expiry")
        kwargs["token_unused_expiry"] = (None if value == "none"
                                         else parse_duration(value, "policy.token_unused_expiry"))
        if kwargs["token_unused_expiry"] is not None and not kwargs["token_unused_expiry"]:
            raise ConfigError("policy.token_unused_expiry: expected a positive duration or \"none\"")
    if "fresh_factor" in web:
        kwargs["fresh_factor"] = parse_duration(web.pop("fresh_factor"), "web.fresh_factor")
    return AccountPolicy(**kwargs)


@dataclass(frozen=True)
class DownloadSettings:
    """Download counting: per project and day, batched, one count per client address an hour."""

    count: bool = True
    flush_interval: float = 5.0  # seconds between batched writes of the counters
    dedupe_window: timedelta = timedelta(hours=1)
    # User-agent substrings (lower case) of mirroring tools, counted apart.
    mirror_agents: tuple[str, ...] = ("bandersnatch", "devpi", "pep381client", "z3c.pypimirror", "nexus",
                                      "artifactory", "pulpcore", "proxpi", "simpleindex", "pypi-mirror",
                                      "python-pypi-mirror", "moorage-mirror")


def _download_settings(section: dict[str, Any]) -> DownloadSettings:
    kwargs: dict[str, Any] = {}
    if "count" in section:
        kwargs["count"] = _boolean(section.pop("count"), "downloads.count")
    if "flush_interval" in section:
        seconds = parse_duration(section.pop("flush_interval"), "downloads.flush_interval").total_seconds()
        if seconds <= 0:
            raise ConfigError("downloads.flush_interval: expected a positive duration")
        kwargs["flush_interval"] = seconds
    if "dedupe_window" in section:
        kwargs["dedupe_window"] = parse_duration(section.pop("dedupe_window"), "downloads.dedupe_window")
    if "mirror_agents" in section:
        agents = section.pop("mirror_agents")
        if not isinstance(agents, list) or not all(isinstance(a, str) and a for a in agents):
            raise ConfigError(f"downloads.mirror_agents: expected a list of user-agent substrings, got {agents!r}")
        kwargs["mirror_agents"] = tuple(a.lower() for a in agents)
    if section:
        raise ConfigError(f"unknown keys in [downloads]: {', '.join(sorted(section))}")
    return DownloadSettings(**kwargs)


def _lifecycle_policy(section: dict[str, Any]) -> LifecyclePolicy:
    base = LifecyclePolicy()
    kwargs: dict[str, Any] = {}
    for key in ("upload_window", "reopen_period", "deletion_window", "retention", "removal_grace"):
        if key in section:
            kwargs[key] = parse_duration(section.pop(key), f"policy.{key}")
    for key in ("close_on_newer_release", "prereleases_deletable"):
        if key in section:
            kwargs[key] = _boolean(section.pop(key), f"policy.{key}")
    if section:
        raise ConfigError(f"unknown keys in [policy]: {', '.join(sorted(section))}")
    return replace(base, **kwargs)


def _table(doc: dict[str, Any], key: str) -> dict[str, Any]:
    value = doc.pop(key, {})
    if not isinstance(value, dict):
        raise ConfigError(f"{key}: expected a table ([{key}]), got {value!r}")
    return dict(value)


def _integer(value: Any, key: str, *, minimum: int, maximum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{key}: expected a whole number, got {value!r}")
    if value < minimum or (maximum is not None and value > maximum):
        bounds = f"from {minimum} to {maximum}" if maximum is not None else f"at least {minimum}"
        raise ConfigError(f"{key}: expected a number {bounds}, got {value!r}")
    return value


def _number(value: Any, key: str, *, minimum: float = 0.0) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{key}: expected a number, got {value!r}")
    if value < minimum:
        raise ConfigError(f"{key}: expected a number of at least {minimum}, got {value!r}")
    return float(value)


def _string(value: Any, key: str) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{key}: expected a non-empty string, got {value!r}")
    return value


def _boolean(value: Any, key: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{key}: expected true or false, got {value!r}")
    return value


def _choice(value: Any, key: str, choices: tuple[str, ...]) -> str:
    """One of ``choices``; the refusal lists them: expected "a", "b" or "c"."""
    if value not in choices:
        *others, last = (f'"{choice}"' for choice in choices)
        raise ConfigError(f"{key}: expected {', '.join(others)} or {last}, got {value!r}")
    return str(value)


@dataclass(frozen=True)
class WebSettings:
    """The pages for people: sessions and the sign-in rate limit."""

    session_lifetime: timedelta = timedelta(hours=12)
    sign_in_attempts: int = 5  # failures per account within sign_in_lockout before it locks
    sign_in_lockout: timedelta = timedelta(minutes=15)


def _web_settings(section: dict[str, Any]) -> WebSettings:
    base = WebSettings()
    kwargs: dict[str, Any] = {}
    for key in ("session_lifetime", "sign_in_lockout"):
        if key in section:
            kwargs[key] = parse_duration(section.pop(key), f"web.{key}")
    if "sign_in_attempts" in section:
        kwargs["sign_in_attempts"] = _integer(section.pop("sign_in_attempts"), "web.sign_in_attempts", minimum=1)
    if section:
        raise ConfigError(f"unknown keys in [web]: {', '.join(sorted(section))}")
    return replace(base, **kwargs)


@dataclass(frozen=True)
class BlobSettings:
    """Where the bytes live: the data directory (``file``) or an S3 bucket (``s3``).

    Credentials are never read from the configuration: boto3 finds them (AWS_ACCESS_KEY_ID
    and AWS_SECRET_ACCESS_KEY, AWS_PROFILE, an instance role, ...)."""

    store: str = "file"  # "file" | "s3"
    bucket: str | None = None
    prefix: str = "moorage/"  # objects are <prefix><aa>/<bb>/<sha256>
    endpoint_url: str | None = None  # None: boto3's own endpoint resolution
    region: str | None = None  # None: boto3's chain (AWS_DEFAULT_REGION, the profile)
    downloads: str = "stream"  # "stream" (through the server) | "redirect" (to a presigned URL)
    presign_seconds: int = 300  # how long a presigned download URL is valid


BLOB_STORES = ("file", "s3")
BLOB_DOWNLOADS = ("stream", "redirect")
_BLOB_S3_KEYS = ("bucket", "prefix", "endpoint_url", "region", "downloads", "presign_seconds")
_CREDENTIAL_KEYS = frozenset({"access_key", "access_key_id", "aws_access_key_id", "secret_key", "secret_access_key",
                              "aws_secret_access_key", "session_token", "aws_session_token", "credentials", "profile"})


def _blob_settings(section: dict[str, Any], env: Any) -> BlobSettings:
    """[blobs], each key overridable by MOORAGE_BLOB_<KEY> (MOORAGE_BLOB_STORE, MOORAGE_BLOB_BUCKET, ...)."""
    secrets_given = sorted(k for k in section if k.lower() in _CREDENTIAL_KEYS)
    if secrets_given:
        raise ConfigError(f"blobs.{secrets_given[0]}: credentials are never read from the configuration file; "
                          "boto3 finds them (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_PROFILE, an "
                          "instance role)")
    for key in ("store", *_BLOB_S3_KEYS):
        value = env.get(f"MOORAGE_BLOB_{key.upper()}")
        if value:
            if key == "presign_seconds":
                try:
                    section[key] = int(value)
                except ValueError:
                    raise ConfigError(f"MOORAGE_BLOB_PRESIGN_SECONDS: expected a whole number, got {value!r}") from None
            else:
                section[key] = value
    explicit_store = "store" in section
    store = _choice(section.pop("store", "file"), "blobs.store", BLOB_STORES)
    kwargs: dict[str, Any] = {"store": store}
    if "bucket" in section:
        kwargs["bucket"] = _string(section.pop("bucket"), "blobs.bucket")
    if "prefix" in section:
        prefix = section.pop("prefix")
        if not isinstance(prefix, str) or prefix.startswith("/"):
            raise ConfigError(f"blobs.prefix: expected a key prefix such as \"moorage/\" (no leading /), "
                              f"got {prefix!r}")
        kwargs["prefix"] = prefix if not prefix or prefix.endswith("/") else prefix + "/"
    if "endpoint_url" in section:
        url = _string(section.pop("endpoint_url"), "blobs.endpoint_url")
        if not url.startswith(("http://", "https://")):
            raise ConfigError(f"blobs.endpoint_url: expected an http:// or https:// URL, got {url!r}")
        kwargs["endpoint_url"] = url
    if "region" in section:
        kwargs["region"] = _string(section.pop("region"), "blobs.region")
    if "downloads" in section:
        kwargs["downloads"] = _choice(section.pop("downloads"), "blobs.downloads", BLOB_DOWNLOADS)
    if "presign_seconds" in section:
        # SigV4 presigned URLs last at most seven days.
        kwargs["presign_seconds"] = _integer(section.pop("presign_seconds"), "blobs.presign_seconds",
                                             minimum=1, maximum=7 * 86400)
    if section:
        raise ConfigError(f"unknown keys in [blobs]: {', '.join(sorted(section))}")
    s3_keys = [k for k in _BLOB_S3_KEYS if k in kwargs]
    if store == "s3" and "bucket" not in kwargs:
        raise ConfigError("blobs.bucket: store = \"s3\" needs the bucket's name")
    if store == "file" and s3_keys and not explicit_store:
        # Forgetting `store = "s3"` would quietly keep the bytes on this host's disk.
        raise ConfigError(f"blobs.{s3_keys[0]} is set but blobs.store is not: set store = \"s3\" to use a bucket "
                          "(or store = \"file\" to keep the bytes in the data directory)")
    return BlobSettings(**kwargs)


@dataclass(frozen=True)
class Settings:
    data_dir: Path = Path(DEFAULT_DATA_DIR)
    database_url: str | None = None
    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 1
    upload: UploadPolicy = field(default_factory=UploadPolicy)
    lifecycle: LifecyclePolicy = field(default_factory=LifecyclePolicy)
    # How often a process looks for changes written by other processes (page caches).
    cache_check_interval: float = 0.005
    # Rendered simple pages kept in memory per process; the oldest go first past this.
    page_cache_size: int = 128 * 1024 * 1024
    # Render the simple pages in the background at start (up to page_cache_size).
    warm_cache: bool = True
    config_file: Path | None = None
    # The log: its origin line (default: derived from the key) and its signing key file.
    log_origin: str | None = None
    log_signing_key: Path | None = None
    web: WebSettings = field(default_factory=WebSettings)
    # Tests move the server's time: a file holding seconds to add to the system clock.
    clock_offset_file: Path | None = None
    blobs: BlobSettings = field(default_factory=BlobSettings)
    accounts: AccountPolicy = field(default_factory=AccountPolicy)
    downloads: DownloadSettings = field(default_factory=DownloadSettings)

    @property
    def log_key_file(self) -> Path:
        return self.log_signing_key or self.data_dir / "log-signing-key"

    @property
    def blob_dir(self) -> Path:
        return self.data_dir / "blobs"

    @property
    def db_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'moorage.db').resolve()}"

    @property
    def is_embedded(self) -> bool:
        return self.db_url.startswith("sqlite")


def _upload_policy(section: dict[str, Any]) -> UploadPolicy:
    base = UploadPolicy()
    kwargs: dict[str, Any] = {}
    for key in ("max_file_size", "max_project_size", "max_uncompressed_size", "ratio_free_size",
                "max_metadata_size"):
        if key in section:
            kwargs[key] = parse_size(section.pop(key), f"upload.{key}")
    if "max_compression_ratio" in section:
        kwargs["max_compression_ratio"] = _number(section.pop("max_compression_ratio"),
                                                  "upload.max_compression_ratio", minimum=1.0)
    if "allow_local_versions" in section:
        kwargs["allow_local_versions"] = _boolean(section.pop("allow_local_versions"), "upload.allow_local_versions")
    if "prohibited_names" in section:
        names = section.pop("prohibited_names")
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise ConfigError("upload.prohibited_names: expected a list of names")
        kwargs["prohibited_names"] = frozenset(normalize(n) for n in names)
    if section:
        raise ConfigError(f"unknown keys in [upload]: {', '.join(sorted(section))}")
    return replace(base, **kwargs)


def load_settings(
    config: str | Path | None = None,
    *,
    data_dir: str | Path | None = None,
    host: str | None = None,
    port: int | None = None,
    workers: int | None = None,
    environ: dict[str, str] | None = None,
) -> Settings:
    env = os.environ if environ is None else environ
    config = config or env.get("MOORAGE_CONFIG") or None
    doc: dict[str, Any] = {}
    if config:
        path = Path(config)
        try:
            doc = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"configuration file {path} does not exist") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"configuration file {path}: {exc}") from None
    server = _table(doc, "server")
    upload = _table(doc, "upload")
    policy = _table(doc, "policy")
    web_section = _table(doc, "web")
    accounts = _account_policy(policy, web_section)
    lifecycle = _lifecycle_policy(policy)
    log = _table(doc, "log")
    web = _web_settings(web_section)
    downloads = _download_settings(_table(doc, "downloads"))
    blobs = _blob_settings(_table(doc, "blobs"), env)
    log_origin = _string(log.pop("origin"), "log.origin") if "origin" in log else None
    log_key = Path(_string(log.pop("signing_key_file"), "log.signing_key_file")) if "signing_key_file" in log else None
    if log:
        raise ConfigError(f"unknown keys in [log]: {', '.join(sorted(log))}")
    top_data_dir = doc.pop("data_dir", None)
    if top_data_dir is not None:
        top_data_dir = _string(top_data_dir, "data_dir")
    top_db = doc.pop("database_url", None)
    if top_db is not None:
        top_db = _string(top_db, "database_url")
    if doc:
        raise ConfigError(f"unknown keys in the configuration: {', '.join(sorted(doc))}")
    settings = Settings(config_file=Path(config) if config else None)
    chosen_dir = data_dir or env.get("MOORAGE_DATA_DIR") or top_data_dir
    if chosen_dir:
        settings = replace(settings, data_dir=Path(chosen_dir))
    db = env.get("MOORAGE_DATABASE_URL") or top_db
    if db:
        settings = replace(settings, database_url=db)
    # The file's values are checked even when a flag overrides them: a broken file is an error.
    file_host = _string(server.pop("host"), "server.host") if "host" in server else None
    file_port = _integer(server.pop("port"), "server.port", minimum=1, maximum=65535) if "port" in server else None
    file_workers = _integer(server.pop("workers"), "server.workers", minimum=1) if "workers" in server else None
    interval = (_number(server.pop("cache_check_interval"), "server.cache_check_interval")
                if "cache_check_interval" in server else settings.cache_check_interval)
    cache_size = (parse_size(server.pop("page_cache_size"), "server.page_cache_size")
                  if "page_cache_size" in server else settings.page_cache_size)
    warm = _boolean(server.pop("warm_cache", settings.warm_cache), "server.warm_cache")
    settings = replace(
        settings,
        warm_cache=warm,
        host=host or file_host or settings.host,
        port=int(port or file_port or settings.port),
        workers=int(workers or file_workers or settings.workers),
        cache_check_interval=interval,
        page_cache_size=cache_size,
        upload=_upload_policy(upload),
        lifecycle=lifecycle,
        log_origin=log_origin,
        log_signing_key=log_key,
        web=web,
        blobs=blobs,
        accounts=accounts,
        downloads=downloads,
        clock_offset_file=Path(env["MOORAGE_CLOCK_OFFSET_FILE"]) if env.get("MOORAGE_CLOCK_OFFSET_FILE") else None,
    )
    server.pop("host", None), server.pop("port", None), server.pop("workers", None)
    if server:
        raise ConfigError(f"unknown keys in [server]: {', '.join(sorted(server))}")
    return settings


def policy_rules(settings: Settings) -> list[dict[str, Any]]:
    """The rules in force, with their configuration keys, for `moorage policy show`."""
    life, up, acc = settings.lifecycle, settings.upload, settings.accounts
    rows: list[tuple[str, str | None, Any, str]] = [  # rule, key (None: not configurable), value, meaning
        ("upload-window", "policy.upload_window", describe(life.upload_window),
         "a release accepts new files for this long after its first file"),
        ("upload-window", "policy.close_on_newer_release", life.close_on_newer_release,
         "a release also closes once a newer version has a file"),
        ("reopen-period", "policy.reopen_period", describe(life.reopen_period),
         "an owner may reopen a closed release for at most this long (recorded, with a reason)"),
        ("deletion-window", "policy.deletion_window", describe(life.deletion_window),
         "an owner may delete a file this long after its upload; a release or project when every "
         "file in it may be deleted"),
        ("deletion-window", "policy.prereleases_deletable", life.prereleases_deletable,
         "an owner may delete a pre-release's files at any time"),
        ("deletions-disabled", None, "per project, one way",
         "owners may turn deletions off for good; then only an admin deletes"),
        ("retention", "policy.retention", describe(life.retention),
         "deleted bytes are kept this long; `moorage admin restore` brings them back"),
        ("removal-grace", "policy.removal_grace", describe(life.removal_grace),
         "an announced removal takes effect this long after (at the earliest, for owners); then the "
         "files are offered only under /pending/simple/"),
        ("name-tombstoned", None, "previous owners and admins", "who may register a deleted project's name again"),
        ("not-an-owner", None, "owners and admins",
         "who may yank, unyank, reopen, delete, archive and deprecate; only admins quarantine"),
        ("file-size-limit", "upload.max_file_size", up.max_file_size, "largest file, in bytes"),
        ("project-size-limit", "upload.max_project_size", up.max_project_size,
         "all files of a project together, in bytes"),
        ("unsafe-archive", "upload.max_compression_ratio", up.max_compression_ratio,
         f"an archive may expand this many times its size past {up.ratio_free_size} bytes, "
         f"and never past {up.max_uncompressed_size} bytes"),
        ("local-version", "upload.allow_local_versions", up.allow_local_versions,
         "whether a version with a local label (1.0+cpu) may be uploaded"),
        ("prohibited-name", "upload.prohibited_names", sorted(up.prohibited_names),
         "names (and look-alikes of them) no one may register"),
        ("file-exists", None, "never", "a filename once accepted is never reused for other bytes"),
        ("two-factor-required", "policy.require_2fa", acc.require_2fa,
         "who must have a second factor to manage projects and whose uploads need a token made "
         "with one: none, the maintainers of critical projects (after the grace period), or all"),
        ("critical", "policy.critical",
         acc.critical.describe() if acc.critical.kind != "list" else sorted(acc.critical.names),
         "which projects are critical, recomputed daily; public on the project page, in the JSON API "
         "and in the events"),
        ("critical", "policy.critical_grace", describe(acc.critical_grace),
         "a newly critical project's maintainers have this long before the 2FA rule applies"),
        ("critical", "policy.download_jump", acc.download_jump,
         "downloads growing more than this many times week over week are flagged for an admin, "
         "not counted toward the designation"),
        ("token-unused", "policy.token_unused_expiry",
         describe(acc.token_unused_expiry) if acc.token_unused_expiry else "none",
         "an API token unused this long stops working"),
    ]
    return [dict(zip(("rule", "key", "value", "meaning"), row, strict=True)) for row in rows]
