"""How big the fault-injection tests run.

``make test`` runs them small (quick versions); ``make test-faults`` sets
``FAULTS_FULL=1`` for the counts of the issue. ``FAULTS_<NAME>=<n>`` overrides one count
(e.g. ``FAULTS_TRIALS=20`` while developing). Randomness is seeded with ``FAULTS_SEED``.
"""

from __future__ import annotations

import os

FULL = os.environ.get("FAULTS_FULL", "") == "1"
SEED = int(os.environ.get("FAULTS_SEED", "20250609"))


def count(name: str, *, quick: int, full: int) -> int:
    """``FAULTS_<NAME>`` if set, else the full count under FAULTS_FULL=1, else quick."""
    raw = os.environ.get(f"FAULTS_{name.upper()}")
    if raw:
        return int(raw)
    return full if FULL else quick
