"""``think_prefill``: the generation prompt ends with ``<think>``; rewards, evaluation and the saved
run all see the reply with that opening put back; ``toolexpander eval --model RUN_DIR`` poses the
model as it was trained."""

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from toolexpander.prompts import (
    RUN_PROMPT_FILE,
    build_messages,
    generation_prefill,
    prefill_think,
    read_run_prompt,
)
from toolexpander.rewards import tool_n1_score, with_prefill
from toolexpander.tasks.suite import build_suite


@pytest.fixture()
def tokenizer_with(tiny_model_dir):
    """The tiny model's tokenizer with another chat template."""
    from transformers import AutoTokenizer

    def make(chat_template: str):
        tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
        tokenizer.chat_template = chat_template
        return tokenizer

    return make


CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
R1_STYLE = CHATML.replace("assistant\n{% endif %}", "assistant\n<think>\n{% endif %}")


def test_prefill_ends_the_generation_prompt_with_think_once(tokenizer_with):
    tokenizer = tokenizer_with(CHATML)
    assert generation_prefill(tokenizer) == ""
    prefill_think(tokenizer)
    prefill_think(tokenizer)  # a second call (a saved run loaded again) adds nothing
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True
    )
    assert prompt.endswith("<|im_start|>assistant\n<think>") and prompt.count("<think>") == 1
    assert generation_prefill(tokenizer) == "<think>"
    # Earlier assistant turns (demonstrations) and a prompt without a generation turn are unchanged.
    chat = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "<think>a</think>"}]
    assert tokenizer.apply_chat_template(chat, tokenize=False) == tokenizer_with(CHATML).apply_chat_template(
        chat, tokenize=False
    )


def test_a_template_that_opens_think_itself_is_detected_with_its_newline(tokenizer_with):
    tokenizer = tokenizer_with(R1_STYLE)
    assert generation_prefill(tokenizer) == "<think>\n"
    prefill_think(tokenizer)
    assert tokenizer.chat_template == R1_STYLE


@given(st.text(max_size=30), st.sampled_from(["", "<think>", "<think>\n"]))
def test_with_prefill_restores_the_opening_in_either_completion_format(text, prefill):
    assert with_prefill(text, prefill) == prefill + text
    conversational = [{"role": "assistant", "content": text}]
    assert with_prefill(conversational, prefill) == [{"role": "assistant", "content": prefill + text}]
    assert conversational == [{"role": "assistant", "content": text}]  # the input is left as it was


def test_a_prefilled_reply_scores_as_the_whole_reply():
    answer = [{"name": "get_time", "arguments": {"city": "Oslo"}}]
    generated = 'I call get_time.</think>\n<tool_call>[{"name": "get_time", "arguments": {"city": "Oslo"}}]</tool_call>'
    assert tool_n1_score(generated, answer) == 0.0  # no think block as generated
    assert tool_n1_score(with_prefill(generated, "<think>"), answer) == 1.0


def test_generation_returns_the_reply_with_its_prefilled_opening(tiny_model_dir):
    from toolexpander.evaluation.generation import generate_completions
    from toolexpander.models import load_model_and_tokenizer

    model, tokenizer = load_model_and_tokenizer(tiny_model_dir)
    chats = [build_messages(task) for task in build_suite(level="easy")["test"][:2]]
    plain = generate_completions(model, tokenizer, chats, max_new_tokens=4)
    prefill_think(tokenizer)
    prefilled = generate_completions(model, tokenizer, chats, max_new_tokens=4)
    assert all(text.startswith("<think>") for text in prefilled)
    assert prefilled != ["<think>" + text for text in plain]  # the model was conditioned on it


def test_training_with_prefill_scores_prefilled_replies_and_saves_the_prompt(tmp_path, tiny_model_dir, monkeypatch):
    from toolexpander.models import load_model_and_tokenizer
    from toolexpander.trainer import trainer as trainer_module
    from toolexpander.trainer.config import ToolExpanderConfig

    seen: list[str] = []

    def spy(completions, **kwargs):
        seen.extend(c[0]["content"] for c in completions)
        return [0.0] * len(completions)

    monkeypatch.setattr(trainer_module, "get_reward", lambda name: spy)
    model, tokenizer = load_model_and_tokenizer(tiny_model_dir)
    config = ToolExpanderConfig(
        output_dir=str(tmp_path / "run"),
        mode="grpo",
        think_prefill=True,
        num_generations=4,
        per_device_train_batch_size=8,
        max_completion_length=4,
        max_steps=1,
        report_to="none",
        use_cpu=True,
        save_strategy="no",
    )
    trainer = trainer_module.ToolExpanderTrainer(model, config, build_suite()["train"][:2], processing_class=tokenizer)
    trainer.train()
    trainer.save_model(config.output_dir)
    assert len(seen) == 8 and all(text.startswith("<think>") for text in seen)
    assert read_run_prompt(config.output_dir) == {
        "prompt_style": "plain",
        "think_prefill": True,
        "prompt_format": "tooln1",
    }
    _, saved = load_model_and_tokenizer(config.output_dir)
    assert generation_prefill(saved) == "<think>"  # a served copy prefills alike


@pytest.mark.parametrize(
    ("saved", "flags", "expected"),
    [
        ({"prompt_style": "self_exemplify", "think_prefill": True}, {}, ("self_exemplify", True, "tooln1")),
        (
            {"prompt_style": "self_exemplify", "think_prefill": True},
            {"prompt": "plain"},
            ("plain", True, "tooln1"),
        ),
        (None, {}, ("plain", False, "tooln1")),
        (None, {"think_prefill": True}, ("plain", True, "tooln1")),
        ({"prompt_format": "native"}, {}, ("plain", False, "native")),
        ({"prompt_format": "native"}, {"prompt_format": "tooln1"}, ("plain", False, "tooln1")),
    ],
)
def test_eval_poses_a_run_as_it_was_trained_unless_told_otherwise(tmp_path, saved, flags, expected):
    from toolexpander.evaluation.runner import EvalConfig, run_prompt

    if saved is not None:
        (tmp_path / RUN_PROMPT_FILE).write_text(json.dumps(saved))
    assert run_prompt(EvalConfig(bench="bfcl", model=str(tmp_path), **flags)) == expected
