"""Second factors: enrol, list and remove them; check one at sign-in and before sensitive actions.

TOTP (RFC 6238, pyotp): the secret is stored as it is (the server must compute the codes),
with the last 30-second step a code was accepted for, so each code works once. WebAuthn
(the `webauthn` library): the credential id, its COSE public key and its signature count; the
challenge a session was given lives in the session row and is used at most once. Recovery
codes: 8 single-use codes, only their SHA-256 kept, made when the first factor is enrolled.

Every failed check is a failed sign-in for the rate limit in services/sessions.py, whether it
happens at sign-in or in the check a sensitive action asks for. Changes are events (not
public ones: see domain/events.py) with the user as actor and `user:<name>` as subject;
the payloads carry ids and kinds, never labels, secrets or addresses.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from datetime import datetime

import pyotp
import sqlalchemy as sa
from sqlalchemy.engine import Connection
from webauthn import (
    base64url_to_bytes,
    generate_authentication_options,
    generate_registration_options,
    options_to_json,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers import bytes_to_base64url
from webauthn.helpers.structs import (
    AuthenticatorSelectionCriteria,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from moorage.domain import factors as rules
from moorage.domain.decisions import Decision, Denied, not_found, require
from moorage.services import accounts
from moorage.services.context import Context
from moorage.services.events import append_event
from moorage.services.sessions import (
    SessionUser,
    lock_decision,
    record_failure,
    session_hash,
    start_session,
)

# has_second_factor(conn, user_id): a TOTP app or a security key (recovery codes alone do not
# count); the upload and token rules read it from the store, and others from here.
from moorage.store.accounts import has_second_factor as has_second_factor
from moorage.store.tables import recovery_codes, second_factors, sign_in_failures, users, web_sessions

TOTP = "totp"
WEBAUTHN = "webauthn"
RECOVERY = "recovery"
METHODS = (TOTP, WEBAUTHN, RECOVERY)
RP_NAME = "moorage"


@dataclass(frozen=True)
class FactorInfo:
    id: str
    kind: str
    label: str
    created_at: datetime
    last_used_at: datetime | None


@dataclass(frozen=True)
class RelyingParty:
    """Who the browser talks to: the request's host name (RP ID) and scheme://host[:port]."""

    id: str
    origin: str


@dataclass(frozen=True)
class Proof:
    """What the person gave: a TOTP code, a recovery code, or a security key's answer (JSON)."""

    method: str
    value: str


@dataclass(frozen=True)
class Enrolled:
    factor_id: str
    recovery_codes: list[str]  # shown once; empty unless this was the account's first factor


# -- reading ----------------------------------------------------------------------------------

def list_factors(ctx: Context, user_id: int) -> list[FactorInfo]:
    with ctx.db.read() as conn:
        rows = conn.execute(sa.select(second_factors.c.id, second_factors.c.kind, second_factors.c.label,
                                      second_factors.c.created_at, second_factors.c.last_used_at)
                            .where(second_factors.c.user_id == user_id)
                            .order_by(second_factors.c.created_at, second_factors.c.id)).all()
    return [FactorInfo(r.id, r.kind, r.label, r.created_at, r.last_used_at) for r in rows]


def _codes_left(conn: Connection, user_id: int) -> int:
    return int(conn.execute(sa.select(sa.func.count()).select_from(recovery_codes).where(
        recovery_codes.c.user_id == user_id, recovery_codes.c.used_at.is_(None))).scalar_one())


def recovery_codes_left(ctx: Context, user_id: int) -> int:
    with ctx.db.read() as conn:
        return _codes_left(conn, user_id)


def _kinds(conn: Connection, user_id: int) -> set[str]:
    return set(conn.execute(sa.select(second_factors.c.kind).distinct()
                            .where(second_factors.c.user_id == user_id)).scalars())


def factor_kinds(ctx: Context, user_id: int) -> set[str]:
    with ctx.db.read() as conn:
        return _kinds(conn, user_id)


def fresh_check(ctx: Context, session: SessionUser, what: str) -> Decision:
    """Whether this session passed a factor check recently enough for `what` (always, without a factor)."""
    with ctx.db.read() as conn:
        has = has_second_factor(conn, session.user_id)
        factor_at = conn.execute(sa.select(web_sessions.c.factor_at)
                                 .where(web_sessions.c.id_hash == session.session_hash)).scalar()
    return rules.check_fresh_factor(has_factor=has, factor_at=factor_at, now=ctx.clock.now(),
                                    window=ctx.settings.accounts.fresh_factor, what=what)


# -- enrolment --------------------------------------------------------------------------------

def new_totp_secret() -> str:
    return pyotp.random_base32(rules.TOTP_SECRET_LENGTH)


def _event(conn: Connection, now: datetime, actor: str, action: str, user: str, **payload: object) -> None:
    append_event(conn, now=now, actor=actor, action=action, subject=f"user:{user}", project=None,
                 payload={"user": user, **payload})


def _new_recovery_codes(conn: Connection, uid: int, name: str, now: datetime) -> list[str]:
    """Eight new codes replace whatever codes the account had; only their hashes are stored."""
    codes = [rules.format_recovery_code(secrets.token_bytes(rules.RECOVERY_CODE_BYTES))
             for _ in range(rules.RECOVERY_CODES)]
    conn.execute(recovery_codes.delete().where(recovery_codes.c.user_id == uid))
    conn.execute(recovery_codes.insert(), [
        {"user_id": uid, "code_hash": rules.hash_recovery_code(rules.normalize_recovery_code(c) or ""),
         "created_at": now} for c in codes])
    _event(conn, now, name, "recovery-codes-generated", name, count=len(codes))
    return codes


def _add_factor(conn: Connection, session: SessionUser, now: datetime, kind: str, label: str,
                **columns: object) -> Enrolled:
    first = not has_second_factor(conn, session.user_id)
    factor_id = secrets.token_hex(8)
    conn.execute(second_factors.insert().values(id=factor_id, user_id=session.user_id, kind=kind, label=label,
                                                created_at=now, last_used_at=now, **columns))
    _event(conn, now, session.name, "factor-added", session.name, factor=factor_id, kind=kind)
    codes = _new_recovery_codes(conn, session.user_id, session.name, now) if first else []
    # Enrolling proved the factor is at hand: that counts as this session's check.
    conn.execute(web_sessions.update().where(web_sessions.c.id_hash == session.session_hash)
                 .values(factor_at=now))
    return Enrolled(factor_id, codes)


def enrol_totp(ctx: Context, session: SessionUser, *, secret: str, code: str, label: str) -> Enrolled:
    """Add an authenticator app whose secret the enrolment page showed, confirmed by one of its codes."""
    if not rules.valid_totp_secret(secret):
        raise Denied.by("invalid-totp-secret", "the secret is not one this page made; reload the page and "
                        "add the new secret to your app")
    now = ctx.clock.now()
    check = rules.check_totp(secret, code, now, None)
    if not check.accepted:
        raise Denied.by("invalid-code", rules.totp_refusal(check).reason)
    with ctx.db.write() as conn:
        # The code just used is spent: it cannot sign in a second time.
        return _add_factor(conn, session, now, TOTP, rules.clean_label(label, "Authenticator app"),
                           totp_secret=secret, totp_last_step=check.step)


def _descriptors(conn: Connection, uid: int) -> list[PublicKeyCredentialDescriptor]:
    ids = conn.execute(sa.select(second_factors.c.credential_id).where(
        second_factors.c.user_id == uid, second_factors.c.kind == WEBAUTHN)).scalars()
    return [PublicKeyCredentialDescriptor(id=base64url_to_bytes(i)) for i in ids if i]


def _set_challenge(conn: Connection, key: str, challenge: bytes | None) -> None:
    conn.execute(web_sessions.update().where(web_sessions.c.id_hash == key)
                 .values(challenge=bytes_to_base64url(challenge) if challenge is not None else None))


def registration_options(ctx: Context, session: SessionUser, rp: RelyingParty) -> str:
    """The options for navigator.credentials.create (JSON); the challenge is kept in the session."""
    with ctx.db.write() as conn:
        options = generate_registration_options(
            rp_id=rp.id, rp_name=RP_NAME, user_name=session.name, user_id=str(session.user_id).encode(),
            exclude_credentials=_descriptors(conn, session.user_id),  # the same key twice is pointless
            authenticator_selection=AuthenticatorSelectionCriteria(
                resident_key=ResidentKeyRequirement.DISCOURAGED,
                user_verification=UserVerificationRequirement.PREFERRED))
        _set_challenge(conn, session.session_hash, options.challenge)
    return options_to_json(options)


def _take_challenge(conn: Connection, key: str) -> bytes | None:
    """The session's challenge, cleared as it is read: each one is verified at most once."""
    value = conn.execute(sa.select(web_sessions.c.challenge).where(web_sessions.c.id_hash == key)).scalar()
    _set_challenge(conn, key, None)
    return base64url_to_bytes(value) if value else None


_NO_CHALLENGE = Decision.deny("no-challenge", "this page's security-key request was already used or never "
                              "made; reload the page and try again")


def enrol_webauthn(ctx: Context, session: SessionUser, *, credential: str, label: str,
                   rp: RelyingParty) -> Enrolled:
    """Add the security key that answered navigator.credentials.create on the enrolment page."""
    now = ctx.clock.now()
    enrolled: Enrolled | None = None
    with ctx.db.write() as conn:
        challenge = _take_challenge(conn, session.session_hash)
        decision = _NO_CHALLENGE if challenge is None else Decision.allow()
        if challenge is not None:
            try:
                verified = verify_registration_response(credential=credential, expected_challenge=challenge,
                                                        expected_rp_id=rp.id, expected_origin=rp.origin)
            except Exception as exc:  # any malformed or wrong answer is a refusal, never a 500
                decision = Decision.deny("security-key-failed",
                                         f"the security key's answer did not verify: {_why(exc)}")
            else:
                credential_id = bytes_to_base64url(verified.credential_id)
                taken = conn.execute(sa.select(second_factors.c.id).where(
                    second_factors.c.credential_id == credential_id)).first()
                if taken is not None:
                    decision = Decision.deny("security-key-registered", "this security key is already registered")
                else:
                    enrolled = _add_factor(conn, session, now, WEBAUTHN, rules.clean_label(label, "Security key"),
                                           credential_id=credential_id,
                                           public_key=verified.credential_public_key,
                                           sign_count=verified.sign_count)
    # Raised after the commit, so the spent challenge stays cleared.
    if enrolled is None:
        raise Denied(decision)
    return enrolled


def _why(exc: Exception) -> str:
    text = " ".join(str(exc).split())[:200]
    return text or type(exc).__name__


def authentication_options(ctx: Context, session_id_hash: str, uid: int, rp: RelyingParty) -> str | None:
    """The options for navigator.credentials.get (JSON), or None without a security key; the
    challenge is kept in the session (pending or signed in)."""
    with ctx.db.write() as conn:
        keys = _descriptors(conn, uid)
        if not keys:
            return None
        options = generate_authentication_options(rp_id=rp.id, allow_credentials=keys,
                                                  user_verification=UserVerificationRequirement.PREFERRED)
        _set_challenge(conn, session_id_hash, options.challenge)
    return options_to_json(options)


# -- checking a factor ------------------------------------------------------------------------

def _check_totp(conn: Connection, uid: int, code: str, now: datetime) -> Decision:
    rows = conn.execute(sa.select(second_factors.c.id, second_factors.c.totp_secret, second_factors.c.totp_last_step)
                        .where(second_factors.c.user_id == uid, second_factors.c.kind == TOTP)).all()
    if not rows:
        return Decision.deny("second-factor-failed", "this account has no authenticator app; use another factor")
    refusal = rules.TotpCheck(rules.TotpOutcome.WRONG)
    for row in rows:
        check = rules.check_totp(row.totp_secret, code, now, row.totp_last_step)
        if check.accepted:
            # Conditional: of two requests with the same code, only one moves the step forward.
            moved = conn.execute(second_factors.update().where(
                second_factors.c.id == row.id,
                sa.or_(second_factors.c.totp_last_step.is_(None), second_factors.c.totp_last_step < check.step))
                .values(totp_last_step=check.step, last_used_at=now)).rowcount
            if moved == 1:
                return Decision.allow()
            check = rules.TotpCheck(rules.TotpOutcome.REUSED, check.step)
        if check.outcome is not rules.TotpOutcome.WRONG:
            refusal = check
    return rules.totp_refusal(refusal)


def _check_recovery(conn: Connection, uid: int, name: str, code: str, now: datetime) -> Decision:
    wrong = Decision.deny("second-factor-failed", "the recovery code is wrong or was already used")
    normalized = rules.normalize_recovery_code(code)
    if normalized is None:
        return wrong
    used = conn.execute(recovery_codes.update().where(
        recovery_codes.c.user_id == uid, recovery_codes.c.code_hash == rules.hash_recovery_code(normalized),
        recovery_codes.c.used_at.is_(None)).values(used_at=now)).rowcount
    if used != 1:
        return wrong
    _event(conn, now, name, "recovery-code-used", name, left=_codes_left(conn, uid))
    return Decision.allow()


def _check_webauthn(conn: Connection, uid: int, answer: str, challenge: bytes | None, now: datetime,
                    rp: RelyingParty) -> Decision:
    if challenge is None:
        return _NO_CHALLENGE
    try:
        parsed = json.loads(answer)
        credential_id = parsed.get("id") if isinstance(parsed, dict) else None
    except ValueError:
        credential_id = None
    row = conn.execute(sa.select(second_factors.c.id, second_factors.c.public_key, second_factors.c.sign_count)
                       .where(second_factors.c.user_id == uid, second_factors.c.kind == WEBAUTHN,
                              second_factors.c.credential_id == credential_id)).first() \
        if isinstance(credential_id, str) and credential_id else None
    if row is None:
        return Decision.deny("second-factor-failed", "this security key is not registered to this account")
    try:
        # The library checks the challenge, the origin, the RP ID hash, user presence, the
        # signature, and the count: one that stands still or goes back (when the key counts) is refused.
        verified = verify_authentication_response(
            credential=answer, expected_challenge=challenge, expected_rp_id=rp.id, expected_origin=rp.origin,
            credential_public_key=row.public_key, credential_current_sign_count=int(row.sign_count or 0))
    except Exception as exc:  # any malformed or wrong answer is a failed check, never a 500
        return Decision.deny("second-factor-failed", f"the security key's answer did not verify: {_why(exc)}")
    conn.execute(second_factors.update().where(second_factors.c.id == row.id)
                 .values(sign_count=verified.new_sign_count, last_used_at=now))
    return Decision.allow()


def _attempt(conn: Connection, ctx: Context, *, key: str, uid: int, name: str, proof: Proof, address: str,
             now: datetime, rp: RelyingParty) -> Decision:
    """One try at a factor: refused while the account is locked; a failure is counted."""
    challenge = _take_challenge(conn, key) if proof.method == WEBAUTHN else None
    lock = lock_decision(conn, ctx.settings.web, name, now)
    if not lock.allowed:
        return lock
    value = proof.value[:20000]
    if proof.method == TOTP:
        decision = _check_totp(conn, uid, value, now)
    elif proof.method == RECOVERY:
        decision = _check_recovery(conn, uid, name, value, now)
    elif proof.method == WEBAUTHN:
        decision = _check_webauthn(conn, uid, value, challenge, now, rp)
    else:
        return Decision.deny("invalid-form", "choose an authenticator app code, a security key or a recovery code")
    if decision.allowed:
        conn.execute(sign_in_failures.delete().where(sign_in_failures.c.user_name == name))
    elif decision.rule == "second-factor-failed":  # a wrong guess; a stale page (no challenge) guessed nothing
        record_failure(conn, name, address, now)
    return decision


def finish_sign_in(ctx: Context, session_id: str, proof: Proof, *, address: str, rp: RelyingParty) -> str:
    """The second step of signing in: a pending session and a good factor give a signed-in
    session under a new id (the pending id stops working). Raises Denied otherwise."""
    now = ctx.clock.now()
    key = session_hash(session_id)
    new_id: str | None = None
    with ctx.db.write() as conn:
        row = conn.execute(sa.select(web_sessions.c.expires_at, web_sessions.c.pending_factor, users.c.id,
                                     users.c.name).join(users, users.c.id == web_sessions.c.user_id)
                           .where(web_sessions.c.id_hash == key)).first()
        if row is None or row.expires_at <= now or not row.pending_factor:
            decision = Decision.deny("sign-in-expired", "this sign-in timed out or was already finished; "
                                     "sign in again")
        else:
            decision = _attempt(conn, ctx, key=key, uid=int(row.id), name=row.name, proof=proof, address=address,
                                now=now, rp=rp)
            if decision.allowed:
                conn.execute(web_sessions.delete().where(web_sessions.c.id_hash == key))
                new_id = start_session(conn, int(row.id), now, ctx.settings.web.session_lifetime, factor_at=now)
    # Raised after the commit: the counted failure and the spent challenge stay.
    if new_id is None:
        raise Denied(decision)
    return new_id


def confirm(ctx: Context, session: SessionUser, proof: Proof, *, address: str, rp: RelyingParty) -> None:
    """A signed-in session passes a factor check now (for the sensitive actions that follow)."""
    now = ctx.clock.now()
    with ctx.db.write() as conn:
        decision = _attempt(conn, ctx, key=session.session_hash, uid=session.user_id, name=session.name,
                            proof=proof, address=address, now=now, rp=rp)
        if decision.allowed:
            conn.execute(web_sessions.update().where(web_sessions.c.id_hash == session.session_hash)
                         .values(factor_at=now))
    if not decision.allowed:
        raise Denied(decision)


# -- removing and regenerating ----------------------------------------------------------------

def _require_fresh(conn: Connection, ctx: Context, session: SessionUser, now: datetime, what: str) -> None:
    factor_at = conn.execute(sa.select(web_sessions.c.factor_at)
                             .where(web_sessions.c.id_hash == session.session_hash)).scalar()
    require(rules.check_fresh_factor(has_factor=has_second_factor(conn, session.user_id), factor_at=factor_at,
                                     now=now, window=ctx.settings.accounts.fresh_factor, what=what))


def remove_factor(ctx: Context, session: SessionUser, factor_id: str) -> bool:
    """Remove one of the session's user's factors, after a fresh check (a recovery code is one).
    Returns True when it was the last one: the recovery codes go with it."""
    now = ctx.clock.now()
    with ctx.db.write() as conn:
        row = conn.execute(sa.select(second_factors.c.kind).where(
            second_factors.c.id == factor_id, second_factors.c.user_id == session.user_id)).first()
        if row is None:
            raise not_found("you have no second factor with this id")
        _require_fresh(conn, ctx, session, now, "removing a second factor")
        conn.execute(second_factors.delete().where(second_factors.c.id == factor_id))
        last = not has_second_factor(conn, session.user_id)
        if last:
            # Recovery codes stand in for a factor; without one they have nothing to recover.
            conn.execute(recovery_codes.delete().where(recovery_codes.c.user_id == session.user_id))
        _event(conn, now, session.name, "factor-removed", session.name, factor=factor_id, kind=row.kind, last=last)
    return last


def regenerate_recovery_codes(ctx: Context, session: SessionUser) -> list[str]:
    """Eight new codes replace the old ones (used or not), after a fresh check."""
    now = ctx.clock.now()
    with ctx.db.write() as conn:
        if not has_second_factor(conn, session.user_id):
            raise Denied.by("no-second-factor", "recovery codes come with a second factor; enrol one first")
        _require_fresh(conn, ctx, session, now, "making new recovery codes")
        return _new_recovery_codes(conn, session.user_id, session.name, now)


def reset_factors(ctx: Context, name: str, *, reason: str, actor: str = "operator") -> int:
    """The operator's escape hatch for a person who lost every factor and every recovery code:
    all of them go, sessions waiting for a factor end, and the event records why.
    Returns how many factors were removed (nothing happens, and nothing is recorded, at 0)."""
    reason = " ".join(reason.replace("\x00", "").split())[:500]
    if not reason:
        raise Denied.by("reason-required", "say why the factors are reset (--reason); it is recorded")
    now = ctx.clock.now()
    with ctx.db.write() as conn:
        uid = accounts.user_id(conn, name)
        removed = list(conn.execute(sa.select(second_factors.c.id).where(second_factors.c.user_id == uid)
                                    .order_by(second_factors.c.id)).scalars())
        codes = int(conn.execute(sa.select(sa.func.count()).select_from(recovery_codes)
                                 .where(recovery_codes.c.user_id == uid)).scalar_one())
        if not removed and not codes:
            return 0
        conn.execute(second_factors.delete().where(second_factors.c.user_id == uid))
        conn.execute(recovery_codes.delete().where(recovery_codes.c.user_id == uid))
        conn.execute(web_sessions.delete().where(web_sessions.c.user_id == uid,
                                                 web_sessions.c.pending_factor == sa.true()))
        conn.execute(web_sessions.update().where(web_sessions.c.user_id == uid).values(factor_at=None, challenge=None))
        _event(conn, now, actor, "factors-reset", name, factors=removed, recovery_codes=codes, reason=reason)
    return len(removed)
