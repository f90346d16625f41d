"""What the tests share: the GAEN reference material, found as kith-test-support finds it.

The Rust test that runs pytest (tests/python_bindings.rs) sets KITH_GAEN_DIR to the directory
kith-test-support names; KITH_REQUIRE_ALL comes from the environment (scripts/test sets it).
A test that needs a missing file skips, saying why, unless KITH_REQUIRE_ALL forbids it: then
it fails.
"""

import os
from pathlib import Path

import pytest


def _skips_forbidden():
    return os.environ.get("KITH_REQUIRE_ALL", "") not in ("", "0")


@pytest.fixture
def gaen_text():
    """Reads a file of the GAEN reference material, or skips (fails in CI) when it is absent."""

    def read(relative):
        base = os.environ.get("KITH_GAEN_DIR") or str(Path(__file__).parents[3] / ".." / "shared" / "gaen")
        path = Path(base) / relative
        if not path.is_file():
            reason = (
                f"{path} not found (the GAEN reference material belongs at ../shared/gaen beside "
                "the repository, or set KITH_GAEN_DIR)"
            )
            if _skips_forbidden():
                pytest.fail(f"KITH_REQUIRE_ALL is set, so this test may not skip: {reason}")
            print(f"skipped: {reason}")
            pytest.skip(reason)
        return path.read_text()

    return read
