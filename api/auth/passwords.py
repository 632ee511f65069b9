"""Password hashing with argon2id (argon2-cffi), off the event loop and bounded in concurrency."""

from __future__ import annotations

import asyncio

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from api.auth.config import AuthSettings
from api.errors import WeakPasswordError


class Passwords:
    """Hashes and verifies passwords. Verification of an unknown user still spends one hash
    (against a dummy), so response time does not tell which user names exist."""

    def __init__(self, settings: AuthSettings) -> None:
        self._settings = settings
        self._hasher = PasswordHasher(
            time_cost=settings.argon2_time_cost,
            memory_cost=settings.argon2_memory_kib,
            parallelism=settings.argon2_parallelism,
        )
        self._slots = asyncio.Semaphore(settings.hash_concurrency)
        self._dummy = self._hasher.hash("no such user: equalise the time of a failed lookup")

    def check_policy(self, password: str, *, username: str) -> None:
        """Raise `WeakPasswordError` when a chosen password is too short or is the user name."""
        if len(password) < self._settings.min_password_chars:
            raise WeakPasswordError(
                f"password shorter than {self._settings.min_password_chars} characters"
            )
        if password.strip().lower() == username.lower():
            raise WeakPasswordError("password equals the user name")

    def hash(self, password: str) -> str:
        return self._hasher.hash(password)

    def verify(self, password_hash: str | None, password: str) -> bool:
        """True when ``password`` matches; a None hash (no such user) is always False."""
        try:
            return self._hasher.verify(password_hash or self._dummy, password) and bool(
                password_hash
            )
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, password_hash: str) -> bool:
        """True when the hash was made with weaker parameters than configured now."""
        try:
            return self._hasher.check_needs_rehash(password_hash)
        except InvalidHashError:
            return True

    async def ahash(self, password: str) -> str:
        async with self._slots:
            return await asyncio.to_thread(self.hash, password)

    async def averify(self, password_hash: str | None, password: str) -> bool:
        async with self._slots:
            return await asyncio.to_thread(self.verify, password_hash, password)
