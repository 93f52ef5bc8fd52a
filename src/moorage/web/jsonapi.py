"""PyPI-style JSON API: /pypi/<project>/json and /pypi/<project>/<version>/json, read from the
index's source (sources/base.py) as the simple pages are, with this index's download counts."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from anyio import to_thread
from packaging.version import Version
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from moorage.domain.clock import isoformat_z
from moorage.domain.lifecycle import LifecyclePolicy, check_upload_window, release_facts, upload_window_closes
from moorage.domain.names import is_valid_name, normalize
from moorage.services.context import Context
from moorage.sources import FileView, ProjectView, ReleaseView, Source
from moorage.store.downloads import ProjectDownloads, project_downloads
from moorage.web.responses import not_found
from moorage.web.simple import file_url

# Core metadata field (packaging's raw name) -> key in the JSON API's "info".
_INFO_FIELDS = {
    "summary": "summary",
    "description": "description",
    "description_content_type": "description_content_type",
    "author": "author",
    "author_email": "author_email",
    "maintainer": "maintainer",
    "maintainer_email": "maintainer_email",
    "license": "license",
    "license_expression": "license_expression",
    "license_files": "license_files",
    "keywords": "keywords",
    "classifiers": "classifiers",
    "home_page": "home_page",
    "download_url": "download_url",
    "project_urls": "project_urls",
    "requires_dist": "requires_dist",
    "requires_python": "requires_python",
    "platforms": "platform",
    "provides_extra": "provides_extra",
    "dynamic": "dynamic",
}
_LIST_FIELDS = {"classifiers", "requires_dist", "provides_extra", "dynamic", "license_files"}


def _file_json(f: FileView, base: str) -> dict[str, Any]:
    return {
        "comment_text": "",
        "digests": {"md5": f.md5, "sha256": f.sha256, "blake2b_256": f.blake2_256},
        "downloads": -1,
        "filename": f.filename,
        "has_sig": False,
        "md5_digest": f.md5,
        "packagetype": f.packagetype,
        "python_version": f.python_version,
        "requires_python": f.requires_python,
        "size": f.size,
        "upload_time": f.upload_time.strftime("%Y-%m-%dT%H:%M:%S"),
        "upload_time_iso_8601": isoformat_z(f.upload_time),
        "url": base + file_url(f.sha256, f.filename, prefix=""),
        "yanked": f.yanked,
        "yanked_reason": f.yanked_reason if f.yanked else None,
        "log_index": f.log_index,
    }


def _release_yank(view: ProjectView, version: str) -> tuple[bool, str | None]:
    """A release is yanked when all its files are; the reason is the first file's."""
    files = [f for f in view.files if f.version == version]
    if not files or not all(f.yanked for f in files):
        return False, None
    return True, next((f.yanked_reason for f in files if f.yanked_reason), None)


def _latest(view: ProjectView) -> ReleaseView:
    """The newest final release that is not yanked, as PyPI picks it (else the newest)."""
    live = [r for r in view.releases if not _release_yank(view, r.version)[0]]
    finals = [r for r in live if not Version(r.version).is_prerelease]
    return (finals or live or view.releases)[-1]


def _windows(view: ProjectView, policy: LifecyclePolicy, now: datetime) -> dict[str, dict[str, Any]]:
    facts = release_facts(view.normalized_name, [
        (Version(r.version), r.created_at, r.reopened_until) for r in view.releases])
    out: dict[str, dict[str, Any]] = {}
    for r in view.releases:
        fact = facts[Version(r.version)]
        decision = check_upload_window(fact, policy, now)
        out[r.version] = {
            "upload_window_closes": upload_window_closes(fact, policy).isoformat(),
            "reopened_until": r.reopened_until.isoformat() if r.reopened_until else None,
            "accepts_uploads": decision.allowed,
        }
    return out


def _downloads(counts: ProjectDownloads) -> dict[str, Any]:
    """PyPI's ``downloads`` key (there always -1), filled here: the 'client' kind; mirrors apart."""
    critical = counts.critical
    return {
        "downloads": counts.client.as_dict(),
        "mirror_downloads": counts.mirror.as_dict(),
        "critical": None if critical is None else {
            "since": isoformat_z(critical.since), "grace_until": isoformat_z(critical.grace_until),
            "rule": critical.rule},
    }


def _info(view: ProjectView, release: ReleaseView, base: str, window: dict[str, Any]) -> dict[str, Any]:
    meta = release.metadata
    info: dict[str, Any] = {"name": view.name, "version": release.version}
    for raw_key, key in _INFO_FIELDS.items():
        value = meta.get(raw_key)
        if key == "keywords" and isinstance(value, list):
            value = ",".join(value)
        if key == "platform" and isinstance(value, list):
            value = ", ".join(value) or None
        if value is None and key in _LIST_FIELDS:
            value = []
        info[key] = value
    info.update({
        # The human pages come later; until then these point at pages that exist.
        "package_url": f"{base}simple/{view.normalized_name}/",
        "project_url": f"{base}simple/{view.normalized_name}/",
        "release_url": f"{base}pypi/{view.normalized_name}/{release.version}/json",
        "docs_url": None,
        "bugtrack_url": None,
    })
    info["yanked"], info["yanked_reason"] = _release_yank(view, release.version)
    info["project_status"] = {"status": view.status, "reason": view.status_reason, "successor": view.successor}
    info.update(window)
    return info


class JSONAPI:
    def __init__(self, ctx: Context, source: Source) -> None:
        self.ctx = ctx
        self.source = source

    def _load(self, name: str) -> tuple[ProjectView, ProjectDownloads] | None:
        now = self.ctx.clock.now()
        offered = self.source.project(name, now)
        if offered is None:
            return None
        with self.ctx.db.read() as conn:
            return offered.view, project_downloads(conn, name, now.date())

    async def project(self, request: Request) -> Response:
        return await self._answer(request, request.path_params["name"], None)

    async def release(self, request: Request) -> Response:
        return await self._answer(request, request.path_params["name"], request.path_params["version"])

    async def _answer(self, request: Request, name: str, version: str | None) -> Response:
        if not is_valid_name(name):
            return not_found("no project of this name on this index", as_json=True)
        normalized = normalize(name)
        if normalized != name:
            tail = f"{version}/json" if version else "json"
            return RedirectResponse(f"{request.scope.get('root_path', '')}/pypi/{normalized}/{tail}", 301)
        loaded = await to_thread.run_sync(self._load, normalized)
        view, counts = loaded if loaded is not None else (None, None)
        if view is not None and view.status == "quarantined":
            because = f": {view.status_reason}" if view.status_reason else ""
            return not_found(f"{normalized} is quarantined{because}", as_json=True)
        if view is None or counts is None or not view.releases:
            return not_found("no project of this name on this index", as_json=True)
        base = str(request.base_url)
        downloads = _downloads(counts)
        by_version: dict[str, list[dict[str, Any]]] = {r.version: [] for r in view.releases}
        for f in view.files:
            by_version.setdefault(f.version, []).append(_file_json(f, base))
        windows = _windows(view, self.ctx.settings.lifecycle, self.ctx.clock.now())
        headers = {"X-PyPI-Last-Serial": str(view.last_serial), "Cache-Control": "max-age=0, must-revalidate"}
        if version is None:
            latest = _latest(view)
            doc = {
                "info": _info(view, latest, base, windows[latest.version]) | downloads,
                "last_serial": view.last_serial,
                "releases": by_version,
                "upload_windows": windows,
                "urls": by_version[latest.version],
                "vulnerabilities": [],
            }
            return JSONResponse(doc, headers=headers)
        try:
            wanted = Version(version)
        except ValueError:  # InvalidVersion, or a number too long to convert
            return not_found(f"{version!r} is not a version of {normalized}", as_json=True)
        for release in view.releases:
            if Version(release.version) == wanted:
                doc = {
                    "info": _info(view, release, base, windows[release.version]) | downloads,
                    "last_serial": view.last_serial,
                    "urls": by_version[release.version],
                    "vulnerabilities": [],
                }
                return JSONResponse(doc, headers=headers)
        return not_found(f"no release {version} of {normalized}", as_json=True)
