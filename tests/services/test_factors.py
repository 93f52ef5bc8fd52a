"""Second factors against a real database (SQLite and PostgreSQL), with the clock passed in.

TOTP codes are computed with pyotp for the test clock's time; WebAuthn answers come from a
small software authenticator (an ES256 key, "none" attestation) built on the same formats a
browser sends, so the server's checks of challenge, origin, RP ID, signature and count run.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import secrets
import struct
from dataclasses import dataclass, field
from datetime import timedelta

import cbor2
import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from moorage.cli import factors as cli_factors
from moorage.domain import factors as rules
from moorage.domain.clock import ManualClock
from moorage.domain.decisions import Denied
from moorage.domain.events import PUBLIC_ACTIONS
from moorage.services import accounts, factors, sessions
from moorage.services.context import Context
from moorage.services.factors import Proof, RelyingParty
from moorage.services.sessions import SessionUser
from moorage.store.tables import events, log_entries, recovery_codes, second_factors, sign_in_failures, web_sessions
from moorage.web.statuses import status_of
from tests.services.helpers import count, rows
from tests.support.refusals import raises_not_found

PASSWORD = "correct horse battery staple"
ADDRESS = "192.0.2.7"
RP = RelyingParty(id="localhost", origin="http://localhost:8080")


# -- helpers ----------------------------------------------------------------------------------

def _signed_in(ctx: Context, name: str = "alice") -> tuple[str, SessionUser]:
    """Signs in an account without a factor (one step)."""
    session_id = sessions.sign_in(ctx, name, PASSWORD, address=ADDRESS)
    user = sessions.current_user(ctx, session_id)
    assert user is not None
    return session_id, user


def _user_with_totp(ctx: Context, clock: ManualClock, name: str = "alice") -> tuple[str, SessionUser, list[str]]:
    """A user with an authenticator app; returns its secret, the signed-in session and the recovery codes."""
    accounts.add_user(ctx, name, password=PASSWORD)
    _sid, user = _signed_in(ctx, name)
    secret = factors.new_totp_secret()
    enrolled = factors.enrol_totp(ctx, user, secret=secret, code=_code(secret, clock), label="phone")
    return secret, user, enrolled.recovery_codes


def _code(secret: str, clock: ManualClock, delta: int = 0) -> str:
    return rules.totp_code(secret, rules.totp_step(clock.now()) + delta)


def _wrong(secret: str, clock: ManualClock) -> str:
    step = rules.totp_step(clock.now())
    right = {rules.totp_code(secret, step + d) for d in (-1, 0, 1)}
    return next(c for c in (f"{n:06d}" for n in range(1000)) if c not in right)


def _pending(ctx: Context, name: str = "alice") -> str:
    """The password step of an account with a factor: a session that is not signed in yet."""
    session_id = sessions.sign_in(ctx, name, PASSWORD, address=ADDRESS)
    assert sessions.current_user(ctx, session_id) is None
    assert sessions.pending_user(ctx, session_id) is not None
    return session_id


def _refused(call: object, *args: object, **kwargs: object) -> tuple[str, int, str]:
    with pytest.raises(Denied) as refused:
        call(*args, **kwargs)  # type: ignore[operator]
    d = refused.value.decision
    return d.rule, status_of(d), d.reason


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass
class SoftKey:
    """A security key in software: what navigator.credentials.create / get would hand the page."""

    rp_id: str = RP.id
    origin: str = RP.origin
    key: ec.EllipticCurvePrivateKey = field(default_factory=lambda: ec.generate_private_key(ec.SECP256R1()))
    credential_id: bytes = field(default_factory=lambda: secrets.token_bytes(32))
    count: int = 0

    def _client_data(self, kind: str, options_json: str, origin: str | None) -> bytes:
        challenge = json.loads(options_json)["challenge"]
        return json.dumps({"type": kind, "challenge": challenge, "origin": origin or self.origin,
                           "crossOrigin": False}).encode()

    def create(self, options_json: str) -> str:
        numbers = self.key.public_key().public_numbers()
        cose = cbor2.dumps({1: 2, 3: -7, -1: 1, -2: numbers.x.to_bytes(32, "big"), -3: numbers.y.to_bytes(32, "big")})
        auth_data = (hashlib.sha256(self.rp_id.encode()).digest() + bytes([0x01 | 0x04 | 0x40])
                     + struct.pack(">I", self.count) + bytes(16) + struct.pack(">H", len(self.credential_id))
                     + self.credential_id + cose)
        attestation = cbor2.dumps({"fmt": "none", "attStmt": {}, "authData": auth_data})
        client_data = self._client_data("webauthn.create", options_json, None)
        return json.dumps({"id": _b64(self.credential_id), "rawId": _b64(self.credential_id), "type": "public-key",
                           "response": {"clientDataJSON": _b64(client_data), "attestationObject": _b64(attestation)},
                           "clientExtensionResults": {}})

    def get(self, options_json: str, *, count: int | None = None, origin: str | None = None) -> str:
        self.count = self.count + 1 if count is None else count
        auth_data = hashlib.sha256(self.rp_id.encode()).digest() + bytes([0x01 | 0x04]) + struct.pack(">I", self.count)
        client_data = self._client_data("webauthn.get", options_json, origin)
        signature = self.key.sign(auth_data + hashlib.sha256(client_data).digest(), ec.ECDSA(hashes.SHA256()))
        return json.dumps({"id": _b64(self.credential_id), "rawId": _b64(self.credential_id), "type": "public-key",
                           "response": {"clientDataJSON": _b64(client_data), "authenticatorData": _b64(auth_data),
                                        "signature": _b64(signature)},
                           "clientExtensionResults": {}})


# -- TOTP -------------------------------------------------------------------------------------

def test_signing_in_without_a_factor_is_one_step_as_before(ctx: Context) -> None:
    accounts.add_user(ctx, "alice", password=PASSWORD)
    session_id = sessions.sign_in(ctx, "alice", PASSWORD, address=ADDRESS)
    user = sessions.current_user(ctx, session_id)
    assert user is not None and user.factor_at is None
    assert sessions.pending_user(ctx, session_id) is None
    with ctx.db.read() as conn:
        assert not factors.has_second_factor(conn, user.user_id)
    # No factor, no fresh check asked.
    assert factors.fresh_check(ctx, user, "creating an API token").allowed


def test_totp_codes_of_the_previous_and_next_step_sign_in_once_each(ctx: Context, clock: ManualClock) -> None:
    secret, _user, codes = _user_with_totp(ctx, clock)
    assert len(codes) == 8
    clock.advance(timedelta(minutes=5))  # past the step the enrolment code used

    pending = _pending(ctx)
    new_id = factors.finish_sign_in(ctx, pending, Proof("totp", _code(secret, clock, -1)), address=ADDRESS, rp=RP)
    user = sessions.current_user(ctx, new_id)
    assert user is not None and user.factor_at == clock.now()
    assert sessions.pending_user(ctx, pending) is None and sessions.current_user(ctx, pending) is None  # new id

    pending = _pending(ctx)
    factors.finish_sign_in(ctx, pending, Proof("totp", _code(secret, clock, +1)), address=ADDRESS, rp=RP)

    # The next step's code was used, so it and the current step's code are spent.
    for delta in (+1, 0):
        pending = _pending(ctx)
        rule, status, reason = _refused(factors.finish_sign_in, ctx, pending,
                                        Proof("totp", _code(secret, clock, delta)), address=ADDRESS, rp=RP)
        assert (rule, status) == ("second-factor-failed", 401) and "already used" in reason
        assert sessions.pending_user(ctx, pending) is not None  # still waiting for a good factor
    assert count(ctx, sign_in_failures) == 2  # replays count as failures

    # Half a minute later the new current code works (and clears the failures).
    clock.advance(timedelta(seconds=30))
    new_id = factors.finish_sign_in(ctx, pending, Proof("totp", _code(secret, clock, +1)), address=ADDRESS, rp=RP)
    assert sessions.current_user(ctx, new_id) is not None
    assert count(ctx, sign_in_failures) == 0


def test_a_code_already_used_at_enrolment_does_not_sign_in(ctx: Context, clock: ManualClock) -> None:
    secret, _user, _codes = _user_with_totp(ctx, clock)
    pending = _pending(ctx)
    rule, _status, reason = _refused(factors.finish_sign_in, ctx, pending, Proof("totp", _code(secret, clock)),
                                     address=ADDRESS, rp=RP)
    assert rule == "second-factor-failed" and "already used" in reason


def test_five_wrong_codes_lock_the_account_like_wrong_passwords_until_the_lockout_ends(
        ctx: Context, clock: ManualClock) -> None:
    secret, _user, _codes = _user_with_totp(ctx, clock)
    clock.advance(timedelta(minutes=1))
    pending = _pending(ctx)
    for _ in range(5):
        rule, status, reason = _refused(factors.finish_sign_in, ctx, pending, Proof("totp", _wrong(secret, clock)),
                                        address=ADDRESS, rp=RP)
        assert (rule, status) == ("second-factor-failed", 401) and "wrong" in reason
        clock.advance(timedelta(seconds=10))
    assert [r.address for r in rows(ctx, sign_in_failures)] == [ADDRESS] * 5

    # Locked: the right code is refused, and so is the right password, with today's sentence.
    with pytest.raises(Denied) as locked:
        factors.finish_sign_in(ctx, pending, Proof("totp", _code(secret, clock)), address=ADDRESS, rp=RP)
    decision = locked.value.decision
    assert (decision.rule, status_of(decision)) == ("sign-in-rate-limit", 429)
    assert decision.reason.startswith("too many failed sign-ins for this account; try again after ")
    password_lock = _refused(sessions.sign_in, ctx, "alice", PASSWORD, address=ADDRESS)
    assert password_lock == ("sign-in-rate-limit", 429, decision.reason)

    # The lock lifts when the oldest failure is older than the lockout.
    assert decision.until is not None
    clock.set(decision.until)
    pending = _pending(ctx)
    new_id = factors.finish_sign_in(ctx, pending, Proof("totp", _code(secret, clock)), address=ADDRESS, rp=RP)
    assert sessions.current_user(ctx, new_id) is not None
    assert count(ctx, sign_in_failures) == 0


def test_the_right_password_does_not_reset_the_count_of_wrong_codes(ctx: Context, clock: ManualClock) -> None:
    """Otherwise whoever knows the password could guess codes four at a time without end."""
    secret, _user, _codes = _user_with_totp(ctx, clock)
    for _ in range(5):
        pending = _pending(ctx)  # the password again each time
        _refused(factors.finish_sign_in, ctx, pending, Proof("totp", _wrong(secret, clock)), address=ADDRESS, rp=RP)
    assert count(ctx, sign_in_failures) == 5
    assert _refused(sessions.sign_in, ctx, "alice", PASSWORD, address=ADDRESS)[0] == "sign-in-rate-limit"


def test_a_pending_sign_in_expires_and_cannot_be_finished_afterwards(ctx: Context, clock: ManualClock) -> None:
    secret, _user, _codes = _user_with_totp(ctx, clock)
    pending = _pending(ctx)
    clock.advance(sessions.PENDING_LIFETIME)
    assert sessions.pending_user(ctx, pending) is None
    rule, status, _reason = _refused(factors.finish_sign_in, ctx, pending, Proof("totp", _code(secret, clock)),
                                     address=ADDRESS, rp=RP)
    assert (rule, status) == ("sign-in-expired", 401)
    # A signed-in session cannot be "finished" again either.
    _refused(factors.finish_sign_in, ctx, "made-up", Proof("totp", "123456"), address=ADDRESS, rp=RP)


def test_enrolment_needs_a_valid_code_and_a_secret_of_ours(ctx: Context, clock: ManualClock) -> None:
    accounts.add_user(ctx, "alice", password=PASSWORD)
    _sid, user = _signed_in(ctx)
    secret = factors.new_totp_secret()
    assert rules.valid_totp_secret(secret)
    rule, status, _ = _refused(factors.enrol_totp, ctx, user, secret=secret, code=_wrong(secret, clock), label="")
    assert (rule, status) == ("invalid-code", 400)
    assert _refused(factors.enrol_totp, ctx, user, secret="SHORT", code="123456", label="")[0] == "invalid-totp-secret"
    assert count(ctx, second_factors) == 0 and count(ctx, recovery_codes) == 0
    assert count(ctx, sign_in_failures) == 0  # enrolling is not signing in
    enrolled = factors.enrol_totp(ctx, user, secret=secret, code=_code(secret, clock), label="  ")
    (row,) = rows(ctx, second_factors)
    assert (row.kind, row.label, row.totp_secret, row.totp_last_step) == (
        "totp", "Authenticator app", secret, rules.totp_step(clock.now()))
    assert factors.list_factors(ctx, user.user_id)[0].id == enrolled.factor_id
    # A second factor gives no new recovery codes: those come with the first.
    other = factors.new_totp_secret()
    assert factors.enrol_totp(ctx, user, secret=other, code=_code(other, clock), label="tablet").recovery_codes == []
    assert factors.recovery_codes_left(ctx, user.user_id) == 8


# -- recovery codes ---------------------------------------------------------------------------

def test_recovery_codes_are_stored_hashed_and_work_once(ctx: Context, clock: ManualClock) -> None:
    _secret, user, codes = _user_with_totp(ctx, clock)
    assert len(set(codes)) == 8
    hashes_ = {r.code_hash for r in rows(ctx, recovery_codes)}
    assert hashes_ == {rules.hash_recovery_code(rules.normalize_recovery_code(c) or "") for c in codes}
    stored = repr([tuple(r) for r in rows(ctx, recovery_codes)])
    assert not any(c.replace("-", "") in stored or c in stored for c in codes)

    pending = _pending(ctx)
    typed = codes[3].upper().replace("-", " ")  # as someone might type it
    new_id = factors.finish_sign_in(ctx, pending, Proof("recovery", typed), address=ADDRESS, rp=RP)
    assert sessions.current_user(ctx, new_id) is not None
    assert factors.recovery_codes_left(ctx, user.user_id) == 7

    pending = _pending(ctx)
    rule, status, reason = _refused(factors.finish_sign_in, ctx, pending, Proof("recovery", codes[3]),
                                    address=ADDRESS, rp=RP)
    assert (rule, status, reason) == ("second-factor-failed", 401, "the recovery code is wrong or was already used")
    assert count(ctx, sign_in_failures) == 1
    factors.finish_sign_in(ctx, pending, Proof("recovery", codes[4]), address=ADDRESS, rp=RP)
    assert factors.recovery_codes_left(ctx, user.user_id) == 6


def test_a_recovery_code_of_another_account_does_not_work(ctx: Context, clock: ManualClock) -> None:
    _s, _alice, alice_codes = _user_with_totp(ctx, clock, "alice")
    _s, _bob, _bob_codes = _user_with_totp(ctx, clock, "bob")
    pending = _pending(ctx, "bob")
    assert _refused(factors.finish_sign_in, ctx, pending, Proof("recovery", alice_codes[0]),
                    address=ADDRESS, rp=RP)[0] == "second-factor-failed"


def test_regenerating_recovery_codes_needs_a_fresh_check_and_replaces_the_old_ones(
        ctx: Context, clock: ManualClock) -> None:
    secret, user, old = _user_with_totp(ctx, clock)
    new = factors.regenerate_recovery_codes(ctx, user)  # enrolment was the check, a moment ago
    assert len(new) == 8 and not set(new) & set(old)
    clock.advance(ctx.settings.accounts.fresh_factor + timedelta(minutes=1))
    rule, status, reason = _refused(factors.regenerate_recovery_codes, ctx, user)
    assert (rule, status) == ("fresh-factor-required", 403)
    assert reason.startswith("making new recovery codes needs a second-factor check within the last 15 minutes")
    factors.confirm(ctx, user, Proof("totp", _code(secret, clock)), address=ADDRESS, rp=RP)
    assert len(factors.regenerate_recovery_codes(ctx, user)) == 8
    pending = _pending(ctx)
    for code in (old[0], new[0]):
        assert _refused(factors.finish_sign_in, ctx, pending, Proof("recovery", code),
                        address=ADDRESS, rp=RP)[0] == "second-factor-failed"


def test_recovery_codes_alone_are_not_a_second_factor(ctx: Context) -> None:
    accounts.add_user(ctx, "alice", password=PASSWORD)
    _sid, user = _signed_in(ctx)
    assert _refused(factors.regenerate_recovery_codes, ctx, user)[0] == "no-second-factor"
    with ctx.db.write() as conn:  # leftovers, as an older version might have left them
        conn.execute(recovery_codes.insert().values(user_id=user.user_id, code_hash="0" * 64,
                                                    created_at=user.expires_at))
    with ctx.db.read() as conn:
        assert not factors.has_second_factor(conn, user.user_id)
    assert sessions.current_user(ctx, sessions.sign_in(ctx, "alice", PASSWORD, address=ADDRESS)) is not None


# -- fresh checks and removal -----------------------------------------------------------------

def test_a_fresh_check_lasts_the_configured_window(ctx: Context, clock: ManualClock) -> None:
    secret, _user, _codes = _user_with_totp(ctx, clock)
    clock.advance(timedelta(minutes=1))
    new_id = factors.finish_sign_in(ctx, _pending(ctx), Proof("totp", _code(secret, clock)), address=ADDRESS, rp=RP)
    user = sessions.current_user(ctx, new_id)
    assert user is not None
    assert factors.fresh_check(ctx, user, "creating an API token").allowed
    clock.advance(timedelta(minutes=16))
    stale = factors.fresh_check(ctx, user, "creating an API token")
    assert not stale.allowed and stale.rule == "fresh-factor-required"
    # A wrong code is no check, and counts as a failed sign-in.
    assert _refused(factors.confirm, ctx, user, Proof("totp", _wrong(secret, clock)),
                    address=ADDRESS, rp=RP)[0] == "second-factor-failed"
    assert count(ctx, sign_in_failures) == 1
    assert not factors.fresh_check(ctx, user, "x").allowed
    factors.confirm(ctx, user, Proof("totp", _code(secret, clock)), address=ADDRESS, rp=RP)
    assert factors.fresh_check(ctx, user, "x").allowed
    assert count(ctx, sign_in_failures) == 0


def test_removing_the_last_factor_needs_a_fresh_check_or_a_recovery_code(ctx: Context, clock: ManualClock) -> None:
    secret, user, codes = _user_with_totp(ctx, clock)
    (factor,) = factors.list_factors(ctx, user.user_id)
    clock.advance(timedelta(minutes=16))
    rule, status, reason = _refused(factors.remove_factor, ctx, user, factor.id)
    assert (rule, status) == ("fresh-factor-required", 403)
    assert reason.startswith("removing a second factor needs a second-factor check within the last 15 minutes")
    assert count(ctx, second_factors) == 1

    # Lost the phone: a recovery code is a factor check.
    factors.confirm(ctx, user, Proof("recovery", codes[0]), address=ADDRESS, rp=RP)
    assert factors.remove_factor(ctx, user, factor.id) is True
    with ctx.db.read() as conn:
        assert not factors.has_second_factor(conn, user.user_id)
    assert count(ctx, recovery_codes) == 0  # they belonged to the factors
    # Signing in is one step again.
    assert sessions.current_user(ctx, sessions.sign_in(ctx, "alice", PASSWORD, address=ADDRESS)) is not None
    with raises_not_found():
        factors.remove_factor(ctx, user, factor.id)
    del secret


def test_removing_one_of_two_factors_keeps_the_recovery_codes(ctx: Context, clock: ManualClock) -> None:
    _secret, user, _codes = _user_with_totp(ctx, clock)
    other = factors.new_totp_secret()
    second = factors.enrol_totp(ctx, user, secret=other, code=_code(other, clock), label="tablet")
    assert factors.remove_factor(ctx, user, second.factor_id) is False
    assert factors.recovery_codes_left(ctx, user.user_id) == 8
    # Another account's factor is not found, whatever the session's freshness.
    accounts.add_user(ctx, "bob", password=PASSWORD)
    _sid, bob = _signed_in(ctx, "bob")
    (alice_factor,) = factors.list_factors(ctx, user.user_id)
    with raises_not_found():
        factors.remove_factor(ctx, bob, alice_factor.id)


# -- WebAuthn ---------------------------------------------------------------------------------

def test_a_security_key_enrols_signs_in_and_a_count_that_does_not_go_up_is_refused(ctx: Context) -> None:
    accounts.add_user(ctx, "alice", password=PASSWORD)
    _sid, user = _signed_in(ctx)
    key = SoftKey()
    options = factors.registration_options(ctx, user, RP)
    assert json.loads(options)["rp"] == {"id": "localhost", "name": "moorage"}
    enrolled = factors.enrol_webauthn(ctx, user, credential=key.create(options), label="yubikey", rp=RP)
    assert len(enrolled.recovery_codes) == 8
    (row,) = rows(ctx, second_factors)
    assert (row.kind, row.label, row.credential_id, row.sign_count) == ("webauthn", "yubikey",
                                                                        _b64(key.credential_id), 0)
    # The challenge was used once and cleared.
    assert _refused(factors.enrol_webauthn, ctx, user, credential=key.create(options), label="again",
                    rp=RP)[0] == "no-challenge"
    # The same key again: excluded in the options, refused by the server.
    options = factors.registration_options(ctx, user, RP)
    assert json.loads(options)["excludeCredentials"][0]["id"] == _b64(key.credential_id)
    assert _refused(factors.enrol_webauthn, ctx, user, credential=key.create(options), label="again",
                    rp=RP)[0] == "security-key-registered"

    pending = _pending(ctx)
    pending_hash = sessions.session_hash(pending)
    options = factors.authentication_options(ctx, pending_hash, user.user_id, RP)
    assert options is not None
    assert json.loads(options)["allowCredentials"][0]["id"] == _b64(key.credential_id)
    new_id = factors.finish_sign_in(ctx, pending, Proof("webauthn", key.get(options, count=5)), address=ADDRESS, rp=RP)
    assert sessions.current_user(ctx, new_id) is not None
    assert rows(ctx, second_factors)[0].sign_count == 5

    # A count that stands still (a cloned key, a replay) is refused and counted.
    pending = _pending(ctx)
    options = factors.authentication_options(ctx, sessions.session_hash(pending), user.user_id, RP)
    assert options is not None
    rule, status, reason = _refused(factors.finish_sign_in, ctx, pending, Proof("webauthn", key.get(options, count=5)),
                                    address=ADDRESS, rp=RP)
    assert (rule, status) == ("second-factor-failed", 401) and "sign count" in reason
    assert count(ctx, sign_in_failures) == 1
    # The challenge is spent even though the answer failed: the right answer needs a new one.
    assert _refused(factors.finish_sign_in, ctx, pending, Proof("webauthn", key.get(options, count=6)),
                    address=ADDRESS, rp=RP)[0] == "no-challenge"
    options = factors.authentication_options(ctx, sessions.session_hash(pending), user.user_id, RP)
    assert options is not None
    factors.finish_sign_in(ctx, pending, Proof("webauthn", key.get(options, count=6)), address=ADDRESS, rp=RP)
    assert rows(ctx, second_factors)[0].sign_count == 6


def test_a_security_key_answer_for_another_origin_or_garbage_is_refused_never_an_error(ctx: Context) -> None:
    accounts.add_user(ctx, "alice", password=PASSWORD)
    _sid, user = _signed_in(ctx)
    key = SoftKey()
    factors.enrol_webauthn(ctx, user, credential=key.create(factors.registration_options(ctx, user, RP)),
                           label="", rp=RP)
    pending = _pending(ctx)
    answers = [
        lambda o: key.get(o, origin="http://evil.invalid"),
        lambda o: "not json",
        lambda o: json.dumps({"id": _b64(key.credential_id), "response": {}}),
        lambda o: SoftKey().get(o),  # a key the account does not have
        lambda o: json.dumps([1, 2]),
    ]
    for answer in answers:
        options = factors.authentication_options(ctx, sessions.session_hash(pending), user.user_id, RP)
        assert options is not None
        rule, status, _reason = _refused(factors.finish_sign_in, ctx, pending, Proof("webauthn", answer(options)),
                                         address=ADDRESS, rp=RP)
        assert (rule, status) == ("second-factor-failed", 401)
    # Registration garbage too.
    options = factors.registration_options(ctx, user, RP)
    assert _refused(factors.enrol_webauthn, ctx, user, credential="{}", label="", rp=RP)[0] == "security-key-failed"
    assert count(ctx, second_factors) == 1
    del options


def test_an_unknown_method_is_refused(ctx: Context, clock: ManualClock) -> None:
    _user_with_totp(ctx, clock)
    rule, status, _ = _refused(factors.finish_sign_in, ctx, _pending(ctx), Proof("sms", "123456"),
                               address=ADDRESS, rp=RP)
    assert (rule, status) == ("invalid-form", 400)


# -- events and the operator's reset ---------------------------------------------------------

def test_factor_events_name_the_user_are_not_public_and_hold_no_secrets(ctx: Context, clock: ManualClock) -> None:
    secret, user, codes = _user_with_totp(ctx, clock)
    factors.finish_sign_in(ctx, _pending(ctx), Proof("recovery", codes[0]), address=ADDRESS, rp=RP)
    (factor,) = factors.list_factors(ctx, user.user_id)
    factors.remove_factor(ctx, user, factor.id)  # the enrolment's check is still fresh
    mine = [e for e in rows(ctx, events) if e.subject == "user:alice" and e.action != "user-created"]
    assert [e.action for e in mine] == ["factor-added", "recovery-codes-generated", "recovery-code-used",
                                        "factor-removed"]
    assert all(e.actor == "alice" and e.project is None and e.action not in PUBLIC_ACTIONS for e in mine)
    assert mine[0].payload == {"user": "alice", "factor": factor.id, "kind": "totp"}
    assert mine[2].payload == {"user": "alice", "left": 7}
    assert mine[3].payload == {"user": "alice", "factor": factor.id, "kind": "totp", "last": True}
    published = b"".join(r.entry for r in rows(ctx, log_entries)).decode()
    everything = published + repr([tuple(e) for e in rows(ctx, events)])
    assert secret not in everything and "phone" not in everything and ADDRESS not in everything
    assert not any(c in everything or c.replace("-", "") in everything for c in codes)


def test_an_operator_resets_the_factors_of_a_locked_out_user_with_a_reason(ctx: Context, clock: ManualClock,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    _secret, user, _codes = _user_with_totp(ctx, clock)
    pending = _pending(ctx)
    parser = argparse.ArgumentParser()
    user_commands = parser.add_subparsers(dest="command").add_parser("user").add_subparsers(dest="user_command")
    cli_factors.register(user_commands)
    monkeypatch.setenv("MOORAGE_DATA_DIR", str(ctx.settings.data_dir))
    if ctx.settings.database_url:
        monkeypatch.setenv("MOORAGE_DATABASE_URL", ctx.settings.database_url)
    with pytest.raises(SystemExit):  # --reason is required
        parser.parse_args(["user", "reset-factors", "alice"])
    args = parser.parse_args(["user", "reset-factors", "alice", "--reason", "lost phone and codes; id checked"])
    assert args.func(args) == 0
    with ctx.db.read() as conn:
        assert not factors.has_second_factor(conn, user.user_id)
    assert count(ctx, recovery_codes) == 0
    assert sessions.pending_user(ctx, pending) is None  # the sign-in waiting for a factor ended
    (reset,) = [e for e in rows(ctx, events) if e.action == "factors-reset"]
    assert (reset.actor, reset.subject, reset.project) == ("operator", "user:alice", None)
    assert reset.payload["reason"] == "lost phone and codes; id checked" and reset.payload["recovery_codes"] == 8
    assert "factors-reset" not in PUBLIC_ACTIONS
    assert sessions.current_user(ctx, sessions.sign_in(ctx, "alice", PASSWORD, address=ADDRESS)) is not None
    # Again: nothing to remove, nothing recorded; a reason is required; an unknown user is not found.
    assert args.func(args) == 0
    assert len([e for e in rows(ctx, events) if e.action == "factors-reset"]) == 1
    assert _refused(factors.reset_factors, ctx, "alice", reason="  ")[0] == "reason-required"
    with raises_not_found():
        factors.reset_factors(ctx, "nobody", reason="x")


def test_the_session_row_keeps_the_challenge_only_until_it_is_used(ctx: Context) -> None:
    accounts.add_user(ctx, "alice", password=PASSWORD)
    _sid, user = _signed_in(ctx)
    key = SoftKey()
    options = factors.registration_options(ctx, user, RP)
    with ctx.db.read() as conn:
        stored = conn.execute(sa.select(web_sessions.c.challenge)
                              .where(web_sessions.c.id_hash == user.session_hash)).scalar()
    assert stored == json.loads(options)["challenge"]
    factors.enrol_webauthn(ctx, user, credential=key.create(options), label="k", rp=RP)
    with ctx.db.read() as conn:
        assert conn.execute(sa.select(web_sessions.c.challenge)
                            .where(web_sessions.c.id_hash == user.session_hash)).scalar() is None
