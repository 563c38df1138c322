"""The Redis cache, sharing its server (and often its database) with the channel layer.

Django's ``RedisCache.clear()`` is a ``FLUSHDB``: it would also drop the channel layer's
group memberships and queued frames (live sockets stop getting events until they
reconnect), the escalation rate-limit buckets and another deployment's keys. Here
``clear()`` deletes only this cache's own keys, found by its ``KEY_PREFIX``.
"""

from __future__ import annotations

from django.core.cache.backends.redis import RedisCache
from django.core.exceptions import ImproperlyConfigured

# Keys deleted per round trip while clearing.
CLEAR_BATCH = 500


class PrefixedRedisCache(RedisCache):
    def __init__(self, server: str, params: dict[str, object]) -> None:
        super().__init__(server, params)
        if not self.key_prefix:
            # Without a prefix "our keys" would be every key of the database.
            raise ImproperlyConfigured("PrefixedRedisCache needs a KEY_PREFIX")

    def clear(self) -> None:
        client = self._cache.get_client(None, write=True)  # type: ignore[attr-defined]
        batch: list[bytes] = []
        for key in client.scan_iter(match=f"{self.key_prefix}:*", count=CLEAR_BATCH):
            batch.append(key)
            if len(batch) >= CLEAR_BATCH:
                client.delete(*batch)
                batch.clear()
        if batch:
            client.delete(*batch)
