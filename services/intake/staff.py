"""Staff accounts: each person signs in with their own account at their hub (argon2id through argon2-cffi),
and gets a staff token naming their roles. Repeated failures lock the account for a while.

A refusal never says whether the account exists: an unknown address, a wrong password and a locked
account answer alike, and take alike (an unknown address is checked against a dummy hash).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.intake import repository, tables
from shared import auth

LOCK_AFTER: Final = 5
"""Failed sign-ins in a row that lock an account."""
LOCKED_FOR: Final = timedelta(minutes=15)
MIN_PASSWORD: Final = 12

_hasher: Final = PasswordHasher()  # RFC 9106's second recommended profile (argon2id, 64 MiB, t=3, p=4)
_DUMMY: Final = _hasher.hash("a password no account has")


class SignInRefused(Exception):
    pass


class AccountExists(Exception):
    pass


@dataclass(frozen=True, slots=True)
class SignedIn:
    token: str
    expires_at: datetime
    roles: frozenset[auth.StaffRole]
    display_name: str


async def _verify(password_hash: str, password: str) -> bool:
    # About 0.1 s of CPU: off the event loop.
    def verify() -> bool:
        try:
            return _hasher.verify(password_hash, password)
        except (VerificationError, InvalidHashError):
            return False

    return await asyncio.to_thread(verify)


async def hash_password(password: str) -> str:
    return await asyncio.to_thread(_hasher.hash, password)


async def sign_in(
    sessions: async_sessionmaker[AsyncSession],
    *,
    hub: str,
    email: str,
    password: str,
    key: auth.PrivateKey,
    ttl: timedelta,
) -> SignedIn:
    """A token for the account, or `SignInRefused`. Attempts on one account are taken one at a time (the
    row is locked while the password is checked), so parallel guesses count as they should."""
    now = datetime.now(UTC)
    async with sessions.begin() as session:
        account = await repository.staff_account(session, hub, email.strip().lower(), for_update=True)
        if account is None or not account.active:
            await _verify(_DUMMY, password)
            raise SignInRefused
        if account.locked_until is not None and account.locked_until > now:
            await _verify(_DUMMY, password)
            raise SignInRefused
        if not await _verify(account.password_hash, password):
            account.failed_attempts += 1
            if account.failed_attempts >= LOCK_AFTER:
                account.failed_attempts = 0
                account.locked_until = now + LOCKED_FOR
            failed = True
        else:
            failed = False
            account.failed_attempts = 0
            account.locked_until = None
            account.last_sign_in_at = now
            if _hasher.check_needs_rehash(account.password_hash):
                account.password_hash = await hash_password(password)
        roles = frozenset(auth.StaffRole(role) for role in account.roles)
        subject, display_name = account.email, account.display_name
    if failed:  # the count is committed first
        raise SignInRefused
    token = auth.issue_staff_token(key, hub=hub, subject=subject, roles=roles, ttl=ttl)
    return SignedIn(token=token, expires_at=now + ttl, roles=roles, display_name=display_name)


async def create_account(
    session: AsyncSession,
    *,
    hub: str,
    email: str,
    display_name: str,
    roles: Iterable[auth.StaffRole],
    password: str,
) -> tables.StaffAccount:
    """A new account; `AccountExists` when the hub has one for the address."""
    address = email.strip().lower()
    if await repository.staff_account(session, hub, address, for_update=False) is not None:
        raise AccountExists(address)
    account = tables.StaffAccount(
        id=uuid.uuid4(),
        hub=hub,
        email=address,
        display_name=display_name,
        roles=sorted(auth.StaffRole(role).value for role in roles),
        password_hash=await hash_password(password),
        active=True,
        failed_attempts=0,
        locked_until=None,
        created_at=datetime.now(UTC),
    )
    await repository.save_staff_account(session, account)
    return account
