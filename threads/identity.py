"""Identity verification: the embedding site's backend vouches for a customer.

Anything the widget sends is the customer's own claim. To let a customer's ``external_id``
(and tier) count, the site's backend signs them with the shared secret
``SUPPORTDESK_IDENTITY_SECRET`` and the page passes the signature along, as in
Intercom's identity verification::

    signature = hex(HMAC-SHA256(secret, "v1:" + tier + ":" + external_id))

``tier`` is empty when the site does not set one. Tiers are slugs (no ``:``), so the
message splits one way only; the ``v1`` prefix leaves room for another scheme.
"""

from __future__ import annotations

import hashlib
import hmac

from django.conf import settings

SCHEME = "v1"


def identity_message(external_id: str, tier: str = "") -> bytes:
    return f"{SCHEME}:{tier}:{external_id}".encode()


def identity_sign(secret: str, external_id: str, tier: str = "") -> str:
    """The signature the site's backend computes (tests and the README use this)."""
    return hmac.new(
        secret.encode(), identity_message(external_id, tier), hashlib.sha256
    ).hexdigest()


def identity_secrets() -> list[str]:
    """The secrets a signature may be made with: the current one, then the previous one
    (during a rotation). Empty: verification is off."""
    current = settings.SUPPORTDESK_IDENTITY_SECRET
    previous = settings.SUPPORTDESK_IDENTITY_SECRET_PREVIOUS
    return [secret for secret in (current, previous) if secret]


def identity_verify(*, external_id: str, tier: str, signature: str) -> bool:
    """Whether ``signature`` signs ``external_id`` and ``tier`` with a configured secret
    (compared in constant time)."""
    candidate = signature.strip().lower()
    return any(
        hmac.compare_digest(identity_sign(secret, external_id, tier), candidate)
        for secret in identity_secrets()
    )
