"""The generated hostile inputs (``generated_cases.py``, hypothesis) run in one subprocess under
an address-space limit: no signal, every example passing, memory under the cap."""

from __future__ import annotations

import pytest

from tests.security.harness import PEAK_LIMIT_MB, run_limited

pytest.importorskip("hypothesis", reason="hypothesis is not installed (the test extra)")


def test_generated_idx_headers_metadata_and_pickles() -> None:
    module = "tests/security/generated_cases.py"
    outcome = run_limited(["-m", "pytest", "-q", "-p", "no:cacheprovider", module], timeout=600)
    assert outcome.signal is None, f"killed by {outcome.signal}: {outcome.stdout[-3000:]}"
    assert outcome.returncode == 0, outcome.stdout[-5000:] + outcome.stderr[-2000:]
    assert " passed" in outcome.stdout and "4 passed" in outcome.stdout, outcome.stdout[-2000:]
    assert outcome.peak_mb < PEAK_LIMIT_MB, f"peak {outcome.peak_mb:.0f} MB"
