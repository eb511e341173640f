"""Shared fixtures: where the shared data lies, and a tiny random model built once per session."""

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.fail(f"shared data not found at {SHARED_DATA}: the repo must sit beside shared/")
    return SHARED_DATA


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> str:
    from toolexpander.models import build_tiny_model

    return build_tiny_model(str(tmp_path_factory.mktemp("tiny-model")))
