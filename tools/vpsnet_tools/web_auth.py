"""Basic auth as exporter-toolkit's basic_auth_users: the Authorization header read,
bcrypt checks cached. Imported by web (the server) and exporter_server."""

from __future__ import annotations

import base64
import binascii
import collections
import hashlib
import threading

AUTH_CACHE = 256


class BasicAuth:
    """exporter-toolkit's basic_auth_users: bcrypt checks are slow on purpose, so
    a verified (user, password) is remembered (as its SHA-256) and the checks
    run in one thread of their own with a bounded queue: a password guesser
    costs one core at most and never delays a scrape that authenticates."""

    def __init__(self, users: dict[str, bytes]) -> None:
        self.users = users
        self._ok: collections.OrderedDict[bytes, None] = collections.OrderedDict()
        self._lock = threading.Lock()
        # unknown users are checked against a real hash too: equal timing
        self._decoy = next(iter(users.values()))

    @staticmethod
    def credentials(header: str | None) -> tuple[str, bytes] | None:
        if not header:
            return None
        scheme, _sep, value = header.strip().partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            raw = base64.b64decode(value.strip(), validate=True)
        except (binascii.Error, ValueError):
            return None
        user, sep, password = raw.partition(b":")
        if not sep:
            return None
        try:
            return user.decode("utf-8"), password
        except UnicodeDecodeError:
            return None

    @staticmethod
    def _key(user: str, password: bytes) -> bytes:
        return hashlib.sha256(user.encode() + b"\0" + password).digest()

    def cached(self, user: str, password: bytes) -> bool:
        with self._lock:
            return self._key(user, password) in self._ok

    def check(self, user: str, password: bytes) -> bool:
        """The slow check (a worker runs it)."""
        import bcrypt

        hashed = self.users.get(user)
        try:
            ok = bcrypt.checkpw(password, hashed or self._decoy) and hashed is not None
        except ValueError:  # bcrypt 5 refuses passwords over 72 bytes
            ok = False
        if ok:
            with self._lock:
                self._ok[self._key(user, password)] = None
                while len(self._ok) > AUTH_CACHE:
                    self._ok.popitem(last=False)
        return ok
