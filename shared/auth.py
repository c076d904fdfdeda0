"""Staff tokens: signed bearer tokens naming one hub; any service can verify them without a lookup."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import jwt

ALGORITHM = "HS256"
AUDIENCE = "hubnet-staff"


class InvalidToken(Exception):
    pass


@dataclass(frozen=True, slots=True)
class StaffPrincipal:
    hub: str
    subject: str


def issue_staff_token(secret: str, *, hub: str, subject: str, ttl: timedelta = timedelta(days=30)) -> str:
    now = datetime.now(UTC)
    claims = {"hub": hub, "sub": subject, "aud": AUDIENCE, "iat": now, "exp": now + ttl}
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def verify_staff_token(secret: str, token: str) -> StaffPrincipal:
    try:
        claims = jwt.decode(
            token, secret, algorithms=[ALGORITHM], audience=AUDIENCE, options={"require": ["exp", "sub", "aud"]}
        )
    except jwt.PyJWTError as error:
        raise InvalidToken(str(error)) from error
    hub = claims.get("hub")
    if not isinstance(hub, str):
        raise InvalidToken("token names no hub")
    return StaffPrincipal(hub=hub, subject=str(claims["sub"]))
