"""Second factors: TOTP codes (RFC 6238), recovery codes, and how fresh a factor check must be.

Pure: the time is passed in, randomness comes from the caller. The services keep the state
(the last accepted TOTP step, the hashes of the recovery codes, when a session last passed a check).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum

import pyotp

from moorage.domain.decisions import Decision
from moorage.domain.durations import describe

TOTP_STEP = 30  # seconds (RFC 6238's default, what every authenticator app uses)
TOTP_DIGITS = 6
TOTP_WINDOW = 1  # one step either side: clocks drift, people type slowly
TOTP_SECRET_LENGTH = 32  # base32 characters: 160 bits, the size of SHA-1's output (RFC 4226)
ISSUER = "moorage"
RECOVERY_CODES = 8
RECOVERY_CODE_BYTES = 10  # 80 bits: 16 base32 characters
LABEL_LENGTH = 100

_BASE32 = re.compile(r"^[A-Z2-7]+$")
_RECOVERY = re.compile(r"^[a-z2-7]{16}$")


def totp_step(now: datetime) -> int:
    """The 30-second step this instant falls in (counted from the Unix epoch)."""
    return int(now.timestamp()) // TOTP_STEP


def valid_totp_secret(secret: str) -> bool:
    """A secret we would have made: 32 base32 characters (the enrolment form carries it back)."""
    return len(secret) == TOTP_SECRET_LENGTH and bool(_BASE32.match(secret))


def group(text: str, size: int = 4) -> str:
    """ABCD EFGH IJKL ...: easier to type from the screen."""
    return " ".join(text[i:i + size] for i in range(0, len(text), size))


def totp_uri(secret: str, account: str) -> str:
    """The otpauth:// address an authenticator app imports (issuer moorage, the user name)."""
    return pyotp.TOTP(secret, digits=TOTP_DIGITS, interval=TOTP_STEP).provisioning_uri(name=account,
                                                                                       issuer_name=ISSUER)


def totp_code(secret: str, step: int) -> str:
    """The code of one step (what the app shows during it)."""
    return pyotp.TOTP(secret, digits=TOTP_DIGITS, interval=TOTP_STEP).generate_otp(step)


def normalize_totp_code(code: str) -> str | None:
    """The six digits, spaces removed ("123 456" is how apps show them); None if not a code."""
    digits = re.sub(r"\s+", "", code)
    return digits if len(digits) == TOTP_DIGITS and digits.isascii() and digits.isdigit() else None


class TotpOutcome(Enum):
    ACCEPTED = "accepted"
    REUSED = "reused"  # right code, but its step was already used: a replay
    WRONG = "wrong"
    MALFORMED = "malformed"


@dataclass(frozen=True, slots=True)
class TotpCheck:
    outcome: TotpOutcome
    step: int | None = None  # the step the code belongs to (accepted or reused)

    @property
    def accepted(self) -> bool:
        return self.outcome is TotpOutcome.ACCEPTED


def check_totp(secret: str, code: str, now: datetime, last_step: int | None) -> TotpCheck:
    """A code of the previous, current or next step, once: only if its step is past last_step.

    The current step is tried first, so a code that (rarely) matches two steps counts for the
    one the app is showing now."""
    digits = normalize_totp_code(code)
    if digits is None:
        return TotpCheck(TotpOutcome.MALFORMED)
    current = totp_step(now)
    reused: int | None = None
    for step in (current, current - 1, current + 1):
        if step < 0 or not hmac.compare_digest(totp_code(secret, step), digits):
            continue
        if last_step is None or step > last_step:
            return TotpCheck(TotpOutcome.ACCEPTED, step)
        reused = step
    return TotpCheck(TotpOutcome.REUSED, reused) if reused is not None else TotpCheck(TotpOutcome.WRONG)


def totp_refusal(check: TotpCheck) -> Decision:
    """The sentence for a refused code (the caller counts it as a failed sign-in)."""
    if check.outcome is TotpOutcome.MALFORMED:
        return Decision.deny("second-factor-failed", "a code from an authenticator app is 6 digits")
    if check.outcome is TotpOutcome.REUSED:
        return Decision.deny("second-factor-failed", "this code was already used; wait for the next one "
                             f"(a new code every {TOTP_STEP} seconds)")
    return Decision.deny("second-factor-failed", "the code is wrong (is the device's clock right?)")


def format_recovery_code(raw: bytes) -> str:
    """Ten random bytes as four groups of four base32 letters and digits: abcd-efgh-ijkl-mnop."""
    if len(raw) != RECOVERY_CODE_BYTES:
        raise ValueError(f"a recovery code is made of {RECOVERY_CODE_BYTES} random bytes")
    text = base64.b32encode(raw).decode("ascii").lower()
    return "-".join(text[i:i + 4] for i in range(0, 16, 4))


def normalize_recovery_code(text: str) -> str | None:
    """Lower case, without the dashes and spaces people copy along; None if it cannot be a code."""
    compact = re.sub(r"[\s\-]+", "", text).lower()
    if not _RECOVERY.match(compact):
        return None
    try:
        base64.b32decode(compact.upper())
    except binascii.Error:
        return None
    return compact


def hash_recovery_code(normalized: str) -> str:
    """SHA-256 is enough: the codes carry 80 random bits, so there is nothing to guess from."""
    return hashlib.sha256(normalized.encode("ascii")).hexdigest()


def clean_label(label: str, default: str) -> str:
    label = " ".join(label.replace("\x00", "").split())[:LABEL_LENGTH]
    return label or default


def check_fresh_factor(*, has_factor: bool, factor_at: datetime | None, now: datetime, window: timedelta,
                       what: str) -> Decision:
    """A sensitive action wants a second-factor check at most `window` old, if the account has a
    factor at all (whether accounts must have one is another rule: domain/accounts.py)."""
    if not has_factor:
        return Decision.allow("no-second-factor")
    if factor_at is not None and factor_at <= now < factor_at + window:
        return Decision.allow(until=factor_at + window)
    last = ("this session has not passed one yet" if factor_at is None
            else f"the last was at {factor_at:%d %b %Y %H:%M} UTC")
    return Decision.deny("fresh-factor-required",
                         f"{what} needs a second-factor check within the last {describe(window)}; {last}")

