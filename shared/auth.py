"""Staff tokens: EdDSA (Ed25519) JWTs naming one hub; only the issuer can sign them, every service verifies them."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Final

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

if TYPE_CHECKING:
    from shared.settings import CommonSettings

ALGORITHM: Final = "EdDSA"
AUDIENCE: Final = "hubnet-staff"
PUBLIC_KEY_VAR: Final = "HUBNET_AUTH_PUBLIC_KEY"
PRIVATE_KEY_VAR: Final = "HUBNET_AUTH_PRIVATE_KEY"

PublicKey = Ed25519PublicKey
PrivateKey = Ed25519PrivateKey

# Every key committed to this repository, by fingerprint: the placeholders of the deployment manifests,
# whose private halves were thrown away. A service given one was deployed without its issuer's key.
WELL_KNOWN_KEYS: Final[Mapping[str, str]] = {
    "81ce3c9d5b7bf01f4569eecc049e15d428d5b82c69e678c6e030374e42a50f18": "deploy/compose/staff-token.pub",
    "1efb92bc87a60ca362a01ffd1a0001d821d2ded3a8e5452ef871e7e198aad12f": "deploy/k8s/config.yaml",
}

# The encodings (sign bit cleared) of Ed25519's points of small order, and the non-canonical ones of 0
# and 1 (libsodium's blocklist): under such a public key, signatures made without any private key verify.
_SMALL_ORDER: Final = frozenset(
    bytes.fromhex(y)
    for y in (
        "0000000000000000000000000000000000000000000000000000000000000000",
        "0100000000000000000000000000000000000000000000000000000000000000",
        "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
        "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
        "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    )
)

HOW_TO_GENERATE: Final = (
    "generate a pair with `openssl genpkey -algorithm ed25519 -out staff-token.key && "
    "openssl pkey -in staff-token.key -pubout -out staff-token.pub`; the services get staff-token.pub, "
    "only the issuer staff-token.key"
)

log = logging.getLogger(__name__)


class InvalidToken(Exception):
    pass


class KeyRefused(Exception):
    """A configured key that cannot be used; the message names its variable and what to do."""


class StaffRole(StrEnum):
    """A staff member's roles at their hub."""

    SCREENER = "screener"  # full-time supporter (常勤サポーター): screens, enters, closes
    EXPERT_SUPPORTER = "expert_supporter"  # part-time expert (非常勤サポーター): reads, adds notes
    HUB_ADMIN = "hub_admin"  # runs the hub: everything, and the roster and staff accounts
    ANALYST = "analyst"  # reads, for reports


class Action(StrEnum):
    """What a staff route does; `PERMISSIONS` says which roles may."""

    READ = "read"
    ENTER = "enter"  # a consultation received by phone, email, at an event or in Open Hours
    SCREEN = "screen"
    NOTE = "note"
    CLOSE = "close"
    WITHDRAW = "withdraw"
    REVOKE_LINKS = "revoke_links"  # the applicant's secret links, when one has leaked
    MANAGE_ROSTER = "manage_roster"
    MANAGE_STAFF = "manage_staff"


_ALL: Final = frozenset(StaffRole)
_HANDLERS: Final = frozenset({StaffRole.SCREENER, StaffRole.HUB_ADMIN})
PERMISSIONS: Final[Mapping[Action, frozenset[StaffRole]]] = {
    Action.READ: _ALL,
    Action.ENTER: _HANDLERS,
    Action.SCREEN: _HANDLERS,
    Action.NOTE: frozenset({StaffRole.SCREENER, StaffRole.EXPERT_SUPPORTER, StaffRole.HUB_ADMIN}),
    Action.CLOSE: _HANDLERS,
    Action.WITHDRAW: _HANDLERS,
    Action.REVOKE_LINKS: _HANDLERS,
    Action.MANAGE_ROSTER: frozenset({StaffRole.HUB_ADMIN}),
    Action.MANAGE_STAFF: frozenset({StaffRole.HUB_ADMIN}),
}
"""The authorisation matrix: per action, the roles that may do it (always at the token's own hub only)."""


@dataclass(frozen=True, slots=True)
class StaffPrincipal:
    hub: str
    subject: str
    roles: frozenset[StaffRole] = field(default_factory=frozenset)

    def may(self, action: Action) -> bool:
        return not self.roles.isdisjoint(PERMISSIONS[action])


def private_pem(key: PrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def public_pem(key: PublicKey) -> str:
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def fingerprint(key: PublicKey) -> str:
    """SHA-256 of the raw 32-byte public key, in hex."""
    return hashlib.sha256(key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)).hexdigest()


def load_public_key(pem: str, *, source: str) -> PublicKey:
    """An Ed25519 public key from PEM; refused when malformed, of another kind, or weak. `source` names it."""
    data = pem.encode()
    try:
        key = serialization.load_pem_public_key(data)
    except ValueError as error:
        if b"PRIVATE KEY-----" in data:
            raise KeyRefused(f"{source} holds a private key: give the services only the public key") from None
        raise KeyRefused(f"{source} is not a public key in PEM ({error}); {HOW_TO_GENERATE}") from None
    if not isinstance(key, Ed25519PublicKey):
        raise KeyRefused(f"{source} is a {type(key).__name__}, not an Ed25519 key; {HOW_TO_GENERATE}")
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    if raw[:31] + bytes([raw[31] & 0x7F]) in _SMALL_ORDER:
        raise KeyRefused(f"{source} is a weak key (a point of small order): anyone can forge tokens it accepts")
    return key


def load_private_key(pem: str, *, source: str) -> PrivateKey:
    try:
        key = serialization.load_pem_private_key(pem.encode(), password=None)
    except (ValueError, TypeError) as error:
        raise KeyRefused(f"{source} is not an unencrypted private key in PEM ({error})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyRefused(f"{source} is a {type(key).__name__}, not an Ed25519 key; {HOW_TO_GENERATE}")
    return key


def _configured(var: str, value: str | None, file: str | Path | None) -> tuple[str, str] | None:
    """(PEM, where it came from) out of a variable or its `_FILE` twin; None when neither is set."""
    if value and file:
        raise KeyRefused(f"both {var} and {var}_FILE are set: set one of them")
    if value:
        return value, var
    if not file:
        return None
    try:
        return Path(file).read_text(encoding="utf-8"), f"{var}_FILE ({file})"
    except OSError as error:
        raise KeyRefused(f"{var}_FILE={file} cannot be read: {error.strerror}") from None


def verification_key(settings: CommonSettings) -> PublicKey:
    """The issuer's public key, which every service verifies staff tokens with.

    Refused when missing, malformed or weak; when well-known (committed here) too, except in the local
    stack (HUBNET_ENVIRONMENT=local), where nothing of value is protected.
    """
    found = _configured(PUBLIC_KEY_VAR, settings.auth_public_key, settings.auth_public_key_file)
    if found is None:
        raise KeyRefused(
            f"{PUBLIC_KEY_VAR} (or {PUBLIC_KEY_VAR}_FILE) is not set: the services verify staff tokens with "
            f"the issuer's Ed25519 public key (PEM); {HOW_TO_GENERATE}"
        )
    pem, source = found
    key = load_public_key(pem, source=source)
    where = WELL_KNOWN_KEYS.get(fingerprint(key))
    if where is not None and settings.environment != "local":
        raise KeyRefused(f"{source} is the placeholder committed in {where}, not your issuer's key; {HOW_TO_GENERATE}")
    if where is not None:
        log.warning("staff tokens are verified with the placeholder key of %s (HUBNET_ENVIRONMENT=local)", where)
    return key


def signing_key(environ: Mapping[str, str]) -> PrivateKey:
    """The issuer's private key, from HUBNET_AUTH_PRIVATE_KEY or HUBNET_AUTH_PRIVATE_KEY_FILE in `environ`."""
    found = _configured(PRIVATE_KEY_VAR, environ.get(PRIVATE_KEY_VAR), environ.get(f"{PRIVATE_KEY_VAR}_FILE"))
    if found is None:
        raise KeyRefused(f"{PRIVATE_KEY_VAR} (or {PRIVATE_KEY_VAR}_FILE) is not set: only the issuer holds it")
    pem, source = found
    return load_private_key(pem, source=source)


def issuer_key(value: str | None, file: str | Path | None, *, verified_with: PublicKey) -> PrivateKey:
    """The private key a service that issues staff tokens (intake, at sign-in) signs with: refused when
    missing, malformed, or not the pair of the public key every service verifies with."""
    found = _configured(PRIVATE_KEY_VAR, value, file)
    if found is None:
        raise KeyRefused(
            f"{PRIVATE_KEY_VAR} (or {PRIVATE_KEY_VAR}_FILE) is not set: intake signs staff tokens at sign-in "
            f"with the issuer's private key; {HOW_TO_GENERATE}"
        )
    pem, source = found
    key = load_private_key(pem, source=source)
    if fingerprint(key.public_key()) != fingerprint(verified_with):
        raise KeyRefused(f"{source} is not the pair of {PUBLIC_KEY_VAR}: tokens it signed would be refused")
    return key


def issue_staff_token(
    key: PrivateKey,
    *,
    hub: str,
    subject: str,
    roles: Iterable[StaffRole] = (StaffRole.HUB_ADMIN,),
    ttl: timedelta = timedelta(days=30),
) -> str:
    now = datetime.now(UTC)
    claims = {
        "hub": hub,
        "sub": subject,
        "roles": sorted(StaffRole(role).value for role in roles),
        "aud": AUDIENCE,
        "iat": now,
        "exp": now + ttl,
    }
    return jwt.encode(claims, key, algorithm=ALGORITHM)


def verify_staff_token(key: PublicKey, token: str) -> StaffPrincipal:
    try:
        claims = jwt.decode(
            token, key, algorithms=[ALGORITHM], audience=AUDIENCE, options={"require": ["exp", "sub", "aud"]}
        )
    except jwt.PyJWTError as error:
        raise InvalidToken(str(error)) from error
    hub = claims.get("hub")
    if not isinstance(hub, str):
        raise InvalidToken("token names no hub")
    # Roles this version does not know are left out (a newer issuer's), never guessed.
    named = claims.get("roles", [])
    known = {role.value for role in StaffRole}
    roles = frozenset(StaffRole(role) for role in named if role in known) if isinstance(named, list) else frozenset()
    return StaffPrincipal(hub=hub, subject=str(claims["sub"]), roles=roles)
