"""Escalation rate limits: token buckets per thread, per customer and per queue.

``escalation_open`` asks :func:`check` before it creates an escalation (a merge into the
thread's active escalation never counts), once the routing has chosen its queue: the
per-queue bucket is the one of the queue the escalation lands in, keyword rules included. Over a limit the escalation is still created —
a customer who needs a person is never dropped — but it is marked ``throttled`` with a
note and nobody is notified about it, so a loop (AI ↔ human ping-pong, a flood of
handoffs) cannot become a storm of emails and webhooks.

Each limit is ``"<count>/<seconds>"``: a bucket of ``count`` tokens that refills at
``count / seconds`` tokens per second. An escalation takes one token from each of its
buckets, all or nothing. Buckets live in Redis when ``REDIS_URL`` is set (one Lua script,
atomic across processes) and in the ``RateBucket`` table otherwise (conditional updates
inside the escalation's transaction, so a rolled-back escalation gives its tokens back).
A limiter that is down fails open: escalating matters more than limiting.
"""

from __future__ import annotations

import hashlib
import logging
import math
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction

from escalations.models import Escalation, RateBucket
from threads.models import Thread

logger = logging.getLogger(__name__)

LIMITS = ("per_thread", "per_customer", "per_queue")


def queue_key(queue: Any) -> str:
    """The per-queue bucket's name: the queue the escalation joins (``None``: no queue,
    one bucket for every unqueued escalation)."""
    return f"queue:{queue.pk}" if queue is not None else "queue:none"


@dataclass(frozen=True)
class Bucket:
    name: str  # per_thread | per_customer | per_queue
    key: str
    capacity: float
    rate: float  # tokens per second


@dataclass(frozen=True)
class Decision:
    """What :func:`check` decided; ``exceeded`` names the limits that said no."""

    allowed: bool = True
    exceeded: tuple[str, ...] = ()
    retry_after: float = 0.0

    @property
    def throttled(self) -> bool:
        return not self.allowed

    @property
    def note(self) -> str:
        if self.allowed:
            return ""
        limits = ", ".join(
            f"{name} ({settings.SUPPORTDESK_ESCALATION_LIMITS[name]})" for name in self.exceeded
        )
        return f"Over the escalation rate limit: {limits}. Queued without notifications."[:300]


ALLOWED = Decision()


def parse_limit(spec: str) -> tuple[float, float] | None:
    """``"5/3600"`` → (capacity 5, refill 5/3600 per second); ``"off"`` or 0 → None."""
    if not spec or spec.strip().lower() == "off":
        return None
    count, _, seconds = spec.partition("/")
    capacity, period = int(count), int(seconds or 3600)
    if capacity <= 0 or period <= 0:
        return None
    return float(capacity), capacity / period


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:40]


def buckets_for(thread: Thread, queue: Any = None) -> list[Bucket]:
    """The buckets an escalation of ``thread`` into ``queue`` takes a token from."""
    idents = {
        "per_thread": str(thread.pk),
        "per_customer": str(thread.customer_id),
        "per_queue": queue_key(queue),
    }
    buckets = []
    for name in LIMITS:
        parsed = parse_limit(str(settings.SUPPORTDESK_ESCALATION_LIMITS.get(name, "off")))
        if parsed is None:
            continue
        capacity, rate = parsed
        buckets.append(Bucket(name, f"esc:{name}:{_digest(idents[name])}", capacity, rate))
    return buckets


def check(*, thread: Thread, source: str, queue: Any = None) -> Decision:
    """Take one token from each of the thread's buckets, all or nothing.

    Called by ``escalation_open`` inside its transaction, just before it creates a new
    escalation in ``queue`` (the routing's choice: the per-queue bucket is that queue's). Sources in ``SUPPORTDESK_ESCALATION_LIMITS_EXEMPT`` (a staff member's own
    escalation) are never limited. Never raises: a limiter that fails allows.
    """
    if not settings.SUPPORTDESK_RATE_LIMITS_ENABLED:
        return ALLOWED
    if source in settings.SUPPORTDESK_ESCALATION_LIMITS_EXEMPT:
        return ALLOWED
    buckets = buckets_for(thread, queue)
    if not buckets:
        return ALLOWED
    try:
        now = _clock()
        if settings.SUPPORTDESK_ESCALATION_LIMITS_BACKEND == "redis":
            levels, allowed = _take_redis(buckets, now)
        else:
            levels, allowed = _take_db(buckets, datetime.fromtimestamp(now, tz=UTC))
    except Exception:
        logger.exception("escalation rate limiter failed; allowing the escalation")
        return ALLOWED
    if allowed:
        return ALLOWED
    exceeded = [(bucket, level) for bucket, level in zip(buckets, levels, strict=True) if level < 1]
    retry_after = max((1 - level) / bucket.rate for bucket, level in exceeded)
    logger.info("escalation of thread %s throttled by %s", thread.pk, [b.name for b, _ in exceeded])
    return Decision(
        allowed=False,
        exceeded=tuple(bucket.name for bucket, _ in exceeded),
        retry_after=retry_after,
    )


def _clock() -> float:
    # One clock for both backends (tests move it).
    return time.time()


# --- database backend -------------------------------------------------------------------


class _Denied(Exception):
    pass


# Conditional updates that lose to a concurrent writer try again this many times.
_DB_RETRIES = 20


def _take_db(buckets: list[Bucket], now: datetime) -> tuple[list[float], bool]:
    levels: list[float] = []
    try:
        # A savepoint: when one bucket says no, the tokens taken from the others go back.
        with transaction.atomic():
            for bucket in buckets:
                levels.append(_take_one_db(bucket, now))
            if any(level < 1 for level in levels):
                raise _Denied()
    except _Denied:
        return levels, False
    return levels, True


def _full_at(bucket: Bucket, tokens: float, now: datetime) -> datetime:
    return now + timedelta(seconds=math.ceil((bucket.capacity - tokens) / bucket.rate) + 1)


def _take_one_db(bucket: Bucket, now: datetime) -> float:
    """Take one token; returns the level *before* taking (< 1: nothing was taken)."""
    for _ in range(_DB_RETRIES):
        row, created = RateBucket.objects.get_or_create(
            key=bucket.key,
            defaults={"tokens": bucket.capacity, "updated_at": now, "expires_at": now},
        )
        if created:
            _prune(now)
        elapsed = max(0.0, (now - row.updated_at).total_seconds())
        level = min(bucket.capacity, row.tokens + elapsed * bucket.rate)
        if level < 1:
            return level
        left = level - 1
        won = RateBucket.objects.filter(pk=row.pk, version=row.version).update(
            tokens=left,
            updated_at=max(now, row.updated_at),
            version=row.version + 1,
            expires_at=_full_at(bucket, left, now),
        )
        if won:
            return level
    logger.warning("rate bucket %s stayed contended; counting it as empty", bucket.key)
    return 0.0


def _prune(now: datetime) -> None:
    # Buckets that have refilled say nothing; new buckets clear a few old ones, so the
    # table grows with live buckets only, without a job of its own.
    stale = list(RateBucket.objects.filter(expires_at__lt=now).values_list("pk", flat=True)[:100])
    if stale:
        RateBucket.objects.filter(pk__in=stale, expires_at__lt=now).delete()


# --- Redis backend ----------------------------------------------------------------------

# KEYS: the buckets. ARGV: now, then capacity and rate per bucket. Refills every bucket,
# takes one token from each only if all have one, and returns [allowed, level...] with
# the levels before taking (as strings: Lua numbers would be truncated to integers).
_TAKE_SCRIPT = """
local now = tonumber(ARGV[1])
local levels = {}
local allowed = 1
for i, key in ipairs(KEYS) do
  local capacity = tonumber(ARGV[2 * i])
  local rate = tonumber(ARGV[2 * i + 1])
  local state = redis.call('HMGET', key, 'tokens', 'ts')
  local tokens = tonumber(state[1]) or capacity
  local ts = tonumber(state[2]) or now
  if now > ts then
    tokens = math.min(capacity, tokens + (now - ts) * rate)
    ts = now
  end
  levels[i] = tokens
  if tokens < 1 then allowed = 0 end
  redis.call('HSET', key, 'ts', tostring(ts))
end
local out = {allowed}
for i, key in ipairs(KEYS) do
  local capacity = tonumber(ARGV[2 * i])
  local rate = tonumber(ARGV[2 * i + 1])
  local left = levels[i]
  if allowed == 1 then left = left - 1 end
  redis.call('HSET', key, 'tokens', tostring(left))
  redis.call('EXPIRE', key, math.ceil((capacity - left) / rate) + 60)
  out[i + 1] = tostring(levels[i])
end
return out
"""

_clients: dict[str, Any] = {}
_clients_lock = threading.Lock()


def redis_client() -> Any:
    """The client for ``SUPPORTDESK_ESCALATION_LIMITS_REDIS_URL`` (one pool per URL)."""
    import redis

    url = settings.SUPPORTDESK_ESCALATION_LIMITS_REDIS_URL
    if not url:
        raise RuntimeError("SUPPORTDESK_ESCALATION_LIMITS_REDIS_URL (or REDIS_URL) is not set")
    with _clients_lock:
        client = _clients.get(url)
        if client is None:
            client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
            _clients[url] = client
        return client


def _take_redis(buckets: list[Bucket], now: float) -> tuple[list[float], bool]:
    prefix = settings.SUPPORTDESK_ESCALATION_LIMITS_PREFIX
    keys = [f"{prefix}:{bucket.key}" for bucket in buckets]
    argv: list[str] = [repr(now)]
    for bucket in buckets:
        argv += [repr(bucket.capacity), repr(bucket.rate)]
    result = redis_client().eval(_TAKE_SCRIPT, len(keys), *keys, *argv)
    allowed = int(result[0]) == 1
    levels = [float(value) for value in result[1:]]
    return levels, allowed


# --- the note on a throttled escalation ---------------------------------------------------


def note_throttled(escalation: Escalation) -> None:
    """``opened_hooks``: a throttled escalation gets an internal note on its thread, so
    the person who picks it up sees why nobody was paged."""
    if not escalation.throttled:
        return
    from threads import services as thread_services
    from threads.models import AuthorKind, Role, Visibility

    thread_services.message_create(
        thread=escalation.thread,
        role=Role.SYSTEM,
        author_kind=AuthorKind.SYSTEM,
        content=escalation.throttle_note or "Over the escalation rate limit.",
        provider="system",
        visibility=Visibility.INTERNAL,
    )
