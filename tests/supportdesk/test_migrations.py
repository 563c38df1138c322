from __future__ import annotations

import pytest
from django.core.management import call_command


@pytest.mark.django_db
def test_it_has_a_migration_for_every_model_change() -> None:
    # A model change without its migration would reach production as a missing column;
    # with --check, makemigrations exits 1 (SystemExit fails the test) when one is due.
    call_command("makemigrations", "--check", "--dry-run", verbosity=0)
