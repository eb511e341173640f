"""Shared fixtures: where the shared data lies, and a tiny random model built once per session.

`../shared/data` (BFCL, API-Bank, ToolRL, glaive in their upstream layouts) lies beside our CI's
clone, not beside a user's: the tests that read it skip when it is absent, everything else uses
fixtures written by the tests or data installed packages ship."""

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"needs the upstream data sets in {SHARED_DATA} (beside the project's CI clone only)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> str:
    from toolexpander.models import build_tiny_model

    return build_tiny_model(str(tmp_path_factory.mktemp("tiny-model")))
