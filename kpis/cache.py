"""A cache for computed figures and rendered charts, shared by every worker through Redis when one
is configured, kept in the process otherwise.

Entries are keyed by what they show (KPI, services, period, as-of date, format) and by the data
version of every service they cover, so a change of the data makes a new key: nothing needs to be
deleted, and each figure is computed once per change. Old keys age out (Redis TTL, or the oldest
entries of the in-process store).
"""

from __future__ import annotations

import hashlib
import json
import pickle
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Protocol

DEFAULT_TTL_SECONDS = 7 * 24 * 3600
PREFIX = "fls:kpi:v1:"


class Store(Protocol):
    def get(self, key: str) -> bytes | None: ...

    def set(self, key: str, value: bytes) -> None: ...


class MemoryStore:
    """In-process: a thread-safe store bounded in entries and in bytes (drawn charts are tens of
    kilobytes each), least recently used entries dropped first."""

    def __init__(self, max_entries: int = 5000, max_bytes: int = 64 * 1024 * 1024) -> None:
        self._entries: OrderedDict[str, bytes] = OrderedDict()
        self._lock = threading.Lock()
        self._bytes = 0
        self.max_entries = max_entries
        self.max_bytes = max_bytes

    def get(self, key: str) -> bytes | None:
        with self._lock:
            value = self._entries.get(key)
            if value is not None:
                self._entries.move_to_end(key)
            return value

    def set(self, key: str, value: bytes) -> None:
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._bytes -= len(old)
            self._entries[key] = value
            self._bytes += len(value)
            while self._entries and (
                len(self._entries) > self.max_entries or self._bytes > self.max_bytes
            ):
                _, dropped = self._entries.popitem(last=False)
                self._bytes -= len(dropped)


class RedisStore:
    """Shared by every worker; entries expire after `ttl` seconds unused."""

    def __init__(self, url: str, ttl: int = DEFAULT_TTL_SECONDS) -> None:
        import redis

        self._client = redis.Redis.from_url(url)
        self.ttl = ttl

    def get(self, key: str) -> bytes | None:
        import redis

        try:
            value = self._client.get(key)
        except redis.RedisError:
            return None  # Redis away: compute rather than fail the page
        return value if isinstance(value, bytes) else None

    def set(self, key: str, value: bytes) -> None:
        import redis

        try:
            self._client.set(key, value, ex=self.ttl)
        except redis.RedisError:
            pass


def make_store(redis_url: str | None) -> Store:
    """Redis when a URL is given, else the in-process store."""
    return RedisStore(redis_url) if redis_url else MemoryStore()


def cache_key(what: dict[str, Any], versions: dict[str, int]) -> str:
    """A key from what an entry shows and the data versions (by service code) it depends on."""
    text = json.dumps({"what": what, "versions": versions}, sort_keys=True, default=str)
    return PREFIX + hashlib.sha256(text.encode()).hexdigest()


class FigureCache:
    """get_or_compute(): the stored value for a key, or compute, store and return it."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.hits = 0
        self.misses = 0

    def lookup(self, key: str) -> tuple[bool, Any]:
        """(True, value) when the key is stored, else (False, None)."""
        raw = self.store.get(key)
        if raw is None:
            self.misses += 1
            return False, None
        self.hits += 1
        return True, pickle.loads(raw)

    def put(self, key: str, value: Any) -> None:
        self.store.set(key, pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL))

    def get_or_compute(self, key: str, compute: Callable[[], Any]) -> Any:
        raw = self.store.get(key)
        if raw is not None:
            self.hits += 1
            return pickle.loads(raw)
        self.misses += 1
        value = compute()
        self.store.set(key, pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL))
        return value
