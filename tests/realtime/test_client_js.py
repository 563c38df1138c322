"""The shared client library (static/supportdesk/realtime.js), tested with node's runner."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

JS_TESTS = Path(__file__).resolve().parent / "js"
NODE = shutil.which("node")


@pytest.mark.skipif(NODE is None, reason="node is not installed")
def test_it_passes_the_client_library_tests_under_node() -> None:
    assert NODE is not None
    result = subprocess.run(
        [NODE, "--test", *sorted(str(p) for p in JS_TESTS.glob("*.test.cjs"))],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "# fail 0" in result.stdout
