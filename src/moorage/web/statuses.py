"""The HTTP status of every refusal, by its rule id: the one place where a rule meets HTTP.

The domain and the services decide (a Decision: allowed, or denied by a rule with a sentence)
and say nothing of HTTP; every view that answers a refusal (web/responses.py for the APIs,
the pages' refusal pages, the operator's log line) takes its status from here. Each rule id
has exactly one status. tests/web/test_statuses.py reads every rule id the code can refuse
with and checks it is listed: a new rule is given its status here, or the test names it.
"""

from __future__ import annotations

from moorage.domain.decisions import NOT_FOUND, Decision

# A refusal by a rule this table does not know (none should reach it): not allowed.
DEFAULT = 403

STATUS: dict[str, int] = {
    # -- 400: the request itself is wrong (its form, its fields, its file), or what it asks
    # for cannot be done to the release or project as uploads go (docs/api.md, the upload table).
    # The request: the management API's body and query, the log's query, the pages' forms.
    "invalid-body": 400,
    "invalid-query": 400,
    "invalid-request": 400,
    "invalid-form": 400,
    "confirmation-required": 400,
    "invalid-input": 400,  # a value the database cannot store (a NUL character)
    # The upload form and the file.
    "unsupported-action": 400,
    "protocol-version": 400,
    "missing-field": 400,
    "missing-file": 400,
    "invalid-name": 400,
    "invalid-version": 400,
    "local-version": 400,
    "invalid-filetype": 400,
    "invalid-pyversion": 400,
    "invalid-digest": 400,
    "digest-missing": 400,
    "invalid-filename": 400,
    "invalid-archive": 400,
    "unsafe-archive": 400,
    "invalid-metadata": 400,
    "metadata-version": 400,
    "metadata-mismatch": 400,
    "filename-mismatch": 400,
    "digest-mismatch": 400,
    "file-size-limit": 400,
    "empty-file": 400,
    "project-size-limit": 400,
    "file-exists": 400,
    "file-deleted": 400,
    "one-sdist-per-release": 400,
    "prohibited-name": 400,
    "similar-name": 400,
    "project-archived": 400,
    "project-quarantined": 400,
    "release-quarantined": 400,
    "upload-window": 400,
    "removal-announced": 400,
    # The values an action is given.
    "invalid-days": 400,
    "invalid-status": 400,
    "invalid-role": 400,
    "invalid-action": 400,
    "invalid-decision": 400,
    "invalid-expiry": 400,
    "invalid-user-name": 400,
    "user-exists": 400,
    "last-owner": 400,
    "missing-version": 400,
    "successor": 400,
    # Second factors: what the enrolment form sent.
    "invalid-code": 400,
    "invalid-totp-secret": 400,
    "no-challenge": 400,
    "no-second-factor": 400,
    "security-key-failed": 400,
    "security-key-registered": 400,
    # -- 401: no valid credentials, or a sign-in that did not pass.
    "authentication-required": 401,
    "sign-in-failed": 401,
    "sign-in-expired": 401,
    "second-factor-failed": 401,
    # -- 403: not allowed: the token, or the policy for this user.
    "token-required": 403,
    "invalid-token": 403,
    "token-expired": 403,
    "token-scope": 403,
    "token-unused": 403,
    "two-factor-required": 403,
    "fresh-factor-required": 403,
    "csrf-check-failed": 403,
    "admin-only": 403,
    "not-an-owner": 403,
    "not-a-maintainer": 403,
    "name-tombstoned": 403,
    "deletion-window": 403,
    "deletions-disabled": 403,
    "reopen-period": 403,
    "removal-grace": 403,
    "removal-done": 403,
    # The policy asks this user for a reason (an admin's deletion); a reason the form or the
    # body requires and lacks is invalid-form or invalid-body, caught before any service.
    "reason-required": 403,
    # -- 404 and 405: no such thing, no such method.
    NOT_FOUND: 404,
    "method-not-allowed": 405,
    # -- 409: the project's state refuses it as it stands.
    "no-role": 409,
    "already-has-role": 409,
    "not-orphaned": 409,
    "no-removal": 409,
    "lift-reason-required": 409,
    "retention-expired": 409,
    # -- 429: too many failed sign-ins.
    "sign-in-rate-limit": 429,
    # -- 503 and 507: a part the index depends on failed (web/failures.py); nothing changed.
    "database-unavailable": 503,
    "storage-unavailable": 503,
    "blob-missing": 503,
    "storage-full": 507,
}


def status_of(refusal: Decision | str) -> int:
    """The HTTP status that answers a denied decision (or a rule id)."""
    rule = refusal if isinstance(refusal, str) else refusal.rule
    return STATUS.get(rule, DEFAULT)
