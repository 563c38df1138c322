"""Customer tiers: only staff and a signed identity set them, never the customer."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import Permission
from django.db import connection
from django.urls import reverse
from rest_framework.test import APIClient

from tests.factories import UserFactory
from tests.threads.test_concurrency import run_concurrently
from threads import services
from threads.identity import identity_sign
from threads.models import Customer, IdempotencyRecord, Thread

pytestmark = pytest.mark.django_db

SECRET = "site-secret-for-tests-0123456789abcdef"
OLD_SECRET = "old-site-secret-for-tests-0123456789abc"


@pytest.fixture(autouse=True)
def _identity_secret(settings: Any) -> None:
    settings.SUPPORTDESK_IDENTITY_SECRET = SECRET
    settings.SUPPORTDESK_IDENTITY_SECRET_PREVIOUS = None


def open_thread(client: APIClient, customer: dict[str, Any], **headers: Any) -> Any:
    return client.post("/api/v1/threads/", {"customer": customer}, format="json", **headers)


def signed(external_id: str, tier: str = "", *, secret: str = SECRET, **extra: Any) -> dict:
    customer = {"external_id": external_id, **extra}
    if tier:
        customer["tier"] = tier
    customer["signature"] = identity_sign(secret, external_id, tier)
    return customer


def customer_of(response: Any) -> Customer:
    assert response.status_code == 201, response.json()
    return (
        Thread.objects.select_related("customer").get(pk=response.json()["thread"]["id"]).customer
    )


def test_it_ignores_a_tier_the_customer_sends_without_a_signature(anon_client: APIClient) -> None:
    customer = customer_of(open_thread(anon_client, {"external_id": "u-1", "tier": "vip"}))
    assert (customer.tier, customer.verified, customer.external_id) == ("standard", False, "u-1")


def test_it_gives_every_unverified_thread_a_new_customer_row(anon_client: APIClient) -> None:
    first = customer_of(open_thread(anon_client, {"external_id": "u-1"}))
    second = customer_of(open_thread(anon_client, {"external_id": "u-1"}))
    assert first.pk != second.pk


def test_it_applies_a_signed_tier(anon_client: APIClient) -> None:
    customer = customer_of(open_thread(anon_client, signed("u-7", "vip", name="Vera")))
    assert (customer.tier, customer.verified, customer.name) == ("vip", True, "Vera")


def test_it_reuses_the_row_of_a_verified_external_id(anon_client: APIClient) -> None:
    first = customer_of(open_thread(anon_client, signed("u-7", "vip")))
    # Later visits need not repeat the tier: it stays with the customer.
    second = customer_of(open_thread(anon_client, signed("u-7")))
    assert second.pk == first.pk
    assert second.tier == "vip"
    assert Customer.objects.filter(external_id="u-7").count() == 1
    assert Thread.objects.filter(customer=first).count() == 2


def test_it_keeps_an_unverified_claim_apart_from_the_verified_customer(
    anon_client: APIClient,
) -> None:
    verified = customer_of(open_thread(anon_client, signed("u-7", "vip")))
    claim = customer_of(open_thread(anon_client, {"external_id": "u-7", "tier": "vip"}))
    assert claim.pk != verified.pk
    assert (claim.tier, claim.verified) == ("standard", False)
    assert Thread.objects.filter(customer=verified).count() == 1


def test_it_updates_the_tier_when_the_site_signs_a_new_one(anon_client: APIClient) -> None:
    customer = customer_of(open_thread(anon_client, signed("u-7", "vip")))
    customer_of(open_thread(anon_client, signed("u-7", "priority")))
    customer.refresh_from_db()
    assert customer.tier == "priority"


def test_it_lets_unsigned_name_and_email_fill_blanks_only(anon_client: APIClient) -> None:
    customer = customer_of(open_thread(anon_client, signed("u-7", name="Vera")))
    customer_of(open_thread(anon_client, signed("u-7", name="Mallory", email="vera@example.com")))
    customer.refresh_from_db()
    assert (customer.name, customer.email) == ("Vera", "vera@example.com")


def test_it_accepts_the_previous_secret_during_a_rotation(
    anon_client: APIClient, settings: Any
) -> None:
    settings.SUPPORTDESK_IDENTITY_SECRET_PREVIOUS = OLD_SECRET
    customer = customer_of(open_thread(anon_client, signed("u-7", "vip", secret=OLD_SECRET)))
    assert (customer.tier, customer.verified) == ("vip", True)


FORGERIES = {
    "wrong-secret": lambda: signed("u-7", "vip", secret="another-secret-0123456789abcdefgh"),
    "tier-raised-after-signing": lambda: {**signed("u-7", "standard"), "tier": "vip"},
    "tier-added-after-signing": lambda: {**signed("u-7"), "tier": "vip"},
    "other-external-id": lambda: {**signed("u-7", "vip"), "external_id": "u-8"},
    "not-hex": lambda: {"external_id": "u-7", "tier": "vip", "signature": "x" * 64},
    "truncated": lambda: {
        **signed("u-7", "vip"),
        "signature": signed("u-7", "vip")["signature"][:63],
    },
}


@pytest.mark.parametrize("forge", FORGERIES.values(), ids=FORGERIES.keys())
def test_it_refuses_a_forged_signature_and_stores_nothing(
    anon_client: APIClient, forge: Any
) -> None:
    customer_of(open_thread(anon_client, signed("u-7", "standard")))
    before = (Customer.objects.count(), Thread.objects.count())
    response = anon_client.post(
        "/api/v1/threads/",
        {"customer": forge(), "message": "Upgrade me"},
        format="json",
        HTTP_IDEMPOTENCY_KEY="forged-1",
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid_signature"
    assert list(error["fields"]) == ["customer.signature"]
    assert (Customer.objects.count(), Thread.objects.count()) == before
    assert Customer.objects.get(external_id="u-7", verified=True).tier == "standard"
    assert not IdempotencyRecord.objects.filter(key="forged-1").exists()


def test_it_refuses_a_signature_without_an_external_id(anon_client: APIClient) -> None:
    response = open_thread(anon_client, {"tier": "vip", "signature": identity_sign(SECRET, "")})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "external_id_required"
    assert not Customer.objects.exists()


def test_it_refuses_a_signature_when_verification_is_not_configured(
    anon_client: APIClient, settings: Any
) -> None:
    settings.SUPPORTDESK_IDENTITY_SECRET = None
    response = open_thread(anon_client, signed("u-7", "vip"))
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "identity_verification_off"
    assert not Customer.objects.exists()


def test_it_refuses_a_signed_tier_that_is_not_configured(anon_client: APIClient) -> None:
    response = open_thread(anon_client, signed("u-7", "platinum"))
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_tier"
    assert not Customer.objects.exists()


def test_it_uses_the_configured_tiers(anon_client: APIClient, settings: Any) -> None:
    settings.SUPPORTDESK_CUSTOMER_TIERS = ["free", "pro", "enterprise"]
    assert customer_of(open_thread(anon_client, {"name": "Ann"})).tier == "free"
    assert customer_of(open_thread(anon_client, signed("u-9", "enterprise"))).tier == "enterprise"


@pytest.mark.django_db(transaction=True)
def test_it_creates_one_row_for_concurrent_first_threads_of_a_verified_customer() -> None:
    if connection.vendor == "sqlite":
        pytest.skip("SQLite's IMMEDIATE transactions serialise the writers anyway")

    def first_visit(index: int) -> int:
        thread, _ = services.thread_create(
            customer_external_id="u-42", customer_verified=True, customer_tier="vip"
        )
        return thread.customer_id

    results = run_concurrently(4, first_visit)
    assert all(isinstance(result, int) for result in results), results
    assert len(set(results)) == 1
    assert Customer.objects.filter(external_id="u-42").count() == 1


# --- staff ---------------------------------------------------------------------------


def test_it_shows_the_tier_in_the_staff_thread(
    anon_client: APIClient, staff_client: APIClient
) -> None:
    customer = customer_of(open_thread(anon_client, signed("u-7", "vip", name="Vera")))
    thread = Thread.objects.get(customer=customer)
    body = staff_client.get(f"/api/v1/desk/threads/{thread.pk}/").json()
    assert body["customer"] == {
        "id": customer.pk,
        "name": "Vera",
        "email": "",
        "external_id": "u-7",
        "tier": "vip",
        "verified": True,
    }


def test_it_lets_a_supervisor_set_the_tier_in_the_admin(admin_client: Any) -> None:
    thread, _ = services.thread_create(customer_name="Ann")
    url = reverse("admin:threads_customer_change", args=[thread.customer_id])
    assert admin_client.get(url).status_code == 200
    response = admin_client.post(url, {"tier": "priority"})
    assert response.status_code == 302
    thread.customer.refresh_from_db()
    assert thread.customer.tier == "priority"


def test_it_refuses_an_unknown_tier_in_the_admin(admin_client: Any) -> None:
    thread, _ = services.thread_create(customer_name="Ann")
    url = reverse("admin:threads_customer_change", args=[thread.customer_id])
    response = admin_client.post(url, {"tier": "platinum"})
    assert response.status_code == 200  # the form again, with the error
    thread.customer.refresh_from_db()
    assert thread.customer.tier == "standard"


def _supervisor_client() -> APIClient:
    user = UserFactory(username="sue")
    user.user_permissions.add(Permission.objects.get(codename="change_customer"))
    client = APIClient()
    client.force_authenticate(user)
    return client


def test_it_lets_a_supervisor_set_the_tier_through_the_desk_api() -> None:
    thread, _ = services.thread_create(customer_name="Ann")
    url = f"/api/v1/desk/customers/{thread.customer_id}/"
    response = _supervisor_client().patch(url, {"tier": "vip"}, format="json")
    assert response.status_code == 200
    assert response.json()["tier"] == "vip"
    thread.customer.refresh_from_db()
    assert thread.customer.tier == "vip"


def test_it_refuses_a_tier_change_by_an_agent_without_the_permission(
    staff_client: APIClient,
) -> None:
    thread, _ = services.thread_create(customer_name="Ann")
    url = f"/api/v1/desk/customers/{thread.customer_id}/"
    assert staff_client.get(url).json()["tier"] == "standard"
    response = staff_client.patch(url, {"tier": "vip"}, format="json")
    assert response.status_code == 403
    thread.customer.refresh_from_db()
    assert thread.customer.tier == "standard"


def test_it_refuses_an_unknown_tier_through_the_desk_api() -> None:
    thread, _ = services.thread_create(customer_name="Ann")
    url = f"/api/v1/desk/customers/{thread.customer_id}/"
    response = _supervisor_client().patch(url, {"tier": "platinum"}, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_tier"
    thread.customer.refresh_from_db()
    assert thread.customer.tier == "standard"


def test_it_answers_404_for_an_unknown_customer(staff_client: APIClient) -> None:
    assert staff_client.get("/api/v1/desk/customers/999999/").status_code == 404
    assert staff_client.get(f"/api/v1/desk/customers/{2**64}/").status_code == 404


def test_it_never_lets_a_customer_reach_the_customer_endpoint(anon_client: APIClient) -> None:
    thread, token = services.thread_create(customer_name="Ann")
    url = f"/api/v1/desk/customers/{thread.customer_id}/"
    response = anon_client.patch(
        url, {"tier": "vip"}, format="json", HTTP_AUTHORIZATION=f"Bearer {token}"
    )
    assert response.status_code == 401
    thread.customer.refresh_from_db()
    assert thread.customer.tier == "standard"


def test_it_signs_as_the_readme_tells_site_backends_to() -> None:
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    block = next(
        part.split("```", 1)[0]
        for part in readme.split("```python\n")[1:]
        if "def support_signature" in part
    )
    recipe: dict[str, Any] = {}
    exec(block.split("# In the view")[0], recipe)
    for external_id, tier in (("42", "vip"), ("u-7", ""), ("ä:b", "priority")):
        assert recipe["support_signature"](SECRET, external_id, tier) == identity_sign(
            SECRET, external_id, tier
        )
