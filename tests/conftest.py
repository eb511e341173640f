"""Shared fixtures: where the shared data lies, and a tiny random model built once per session.

`../shared/data` (BFCL, API-Bank, ToolRL, glaive in their upstream layouts) lies beside our CI's
clone, not beside a user's: the tests that read it skip when it is absent, everything else uses
fixtures written by the tests or data installed packages ship."""

from pathlib import Path

import pytest

pytest_plugins = ["tests.bfcl_episodes"]  # BFCL multi-turn fixtures: small_data, records

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


@pytest.fixture(scope="session")
def qwen_tiny_dir(tmp_path_factory, tiny_model_dir) -> str:
    """The tiny model with TRL's Qwen2.5 chat template, which renders tools, calls and tool turns."""
    import shutil

    import trl
    from transformers import AutoTokenizer

    folder = tmp_path_factory.mktemp("qwen-tiny") / "model"
    shutil.copytree(tiny_model_dir, folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    tokenizer.chat_template = (Path(trl.__file__).parent / "chat_templates" / "qwen2_5.jinja").read_text()
    tokenizer.save_pretrained(folder)
    return str(folder)


@pytest.fixture
def install_fake_vllm(monkeypatch):
    """``install_fake_vllm(tokenizer_dir, answer)`` puts a stand-in ``vllm`` module in place: its
    ``LLM`` loads that tokenizer and answers every prompt (given as token ids) with
    ``answer(prompt text)``. Returns the LLMs made; each keeps ``calls``: (the prompts as token-id
    dicts, the sampling settings) per ``generate``."""
    import sys
    import types

    def install(tokenizer_dir: str, answer) -> list:
        from transformers import AutoTokenizer

        created = []

        class LLM:
            def __init__(self, model, **kwargs):
                self.model, self.kwargs, self.calls = model, kwargs, []
                self.tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
                created.append(self)

            def get_tokenizer(self):
                return self.tokenizer

            def generate(self, prompts, params, use_tqdm=True):
                self.calls.append((prompts, params))
                texts = [answer(self.tokenizer.decode(p["prompt_token_ids"])) for p in prompts]
                return [types.SimpleNamespace(outputs=[types.SimpleNamespace(text=t)]) for t in texts]

        module = types.SimpleNamespace(LLM=LLM, SamplingParams=lambda **kwargs: kwargs)
        monkeypatch.setitem(sys.modules, "vllm", module)
        return created

    return install
