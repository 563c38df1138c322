"""The Redis cache clears its own keys only (supportdesk/cache.py)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
import redis
from django.core.exceptions import ImproperlyConfigured

from supportdesk.cache import CLEAR_BATCH, PrefixedRedisCache

CACHE_TEST_DB = 13


@pytest.fixture
def redis_url() -> Iterator[str]:
    """REDIS_URL's server (a database of this test's own), else a local Redis, else skip."""
    base = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"
    url = urlsplit(base)._replace(path=f"/{CACHE_TEST_DB}").geturl()
    client = redis.Redis.from_url(url, socket_connect_timeout=0.5)
    try:
        client.ping()
    except redis.RedisError:
        if os.environ.get("REDIS_URL"):
            raise
        pytest.skip("no Redis server")
    yield url
    client.close()


def make_cache(url: str, prefix: str) -> PrefixedRedisCache:
    return PrefixedRedisCache(url, {"KEY_PREFIX": prefix})


def test_it_clears_its_own_keys_and_leaves_the_rest_of_the_database(redis_url: str) -> None:
    prefix = f"cachetest{uuid.uuid4().hex[:8]}"
    cache = make_cache(redis_url, prefix)
    neighbour = make_cache(redis_url, f"{prefix}x")  # a prefix that starts like ours
    raw = redis.Redis.from_url(redis_url)
    layer_key = f"asgi{prefix}:group:desk"  # what channels-redis keeps beside the cache
    raw.zadd(layer_key, {"specific.abc!def": 1})
    # More keys than one delete batch holds.
    cache.set_many({f"k{i}": i for i in range(CLEAR_BATCH + 3)})
    neighbour.set("kept", 1)

    cache.clear()

    assert cache.get("k0") is None
    assert cache.get(f"k{CLEAR_BATCH + 2}") is None
    assert not list(raw.scan_iter(match=f"{prefix}:*"))
    assert neighbour.get("kept") == 1
    assert raw.zcard(layer_key) == 1
    raw.delete(layer_key)
    neighbour.clear()
    raw.close()


def test_it_refuses_to_run_without_a_key_prefix(redis_url: str) -> None:
    with pytest.raises(ImproperlyConfigured):
        PrefixedRedisCache(redis_url, {})
