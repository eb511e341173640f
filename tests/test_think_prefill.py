"""``think_prefill``: the rendered prompt ends with ``<think>`` (the chat template is left as it is);
rewards, evaluation and the saved run all see the reply with that opening put back; ``toolexpander
eval --model RUN_DIR`` poses the model as it was trained."""

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from toolexpander.models import CHATML_TEMPLATE
from toolexpander.prompts import RUN_PROMPT_FILE, PromptSpec
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
TASK = build_suite(level="easy")["test"][0]


def test_prefill_ends_the_prompt_with_think_once_and_leaves_the_template(tokenizer_with):
    tokenizer = tokenizer_with(CHATML)
    plain, prefilled = PromptSpec(), PromptSpec(think_prefill=True)
    assert plain.reply_prefill(tokenizer) == ""
    assert prefilled.render(tokenizer, TASK) == plain.render(tokenizer, TASK) + "<think>"
    assert prefilled.render(tokenizer, TASK).endswith("<|im_start|>assistant\n<think>")
    assert prefilled.reply_prefill(tokenizer) == "<think>"
    assert tokenizer.chat_template == CHATML


def test_a_template_that_opens_think_itself_gets_no_second_one(tokenizer_with):
    tokenizer = tokenizer_with(R1_STYLE)
    for spec in (PromptSpec(), PromptSpec(think_prefill=True)):
        assert spec.reply_prefill(tokenizer) == "<think>\n"
        assert spec.render(tokenizer, TASK).endswith("assistant\n<think>\n")


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
    tasks = build_suite(level="easy")["test"][:2]
    plain = generate_completions(model, tokenizer, [PromptSpec().render(tokenizer, t) for t in tasks], 4)
    spec = PromptSpec(think_prefill=True)
    prompts = [spec.render(tokenizer, t) for t in tasks]
    prefilled = generate_completions(
        model, tokenizer, prompts, 4, reply_prefill=spec.reply_prefill(tokenizer)
    )
    assert all(text.startswith("<think>") for text in prefilled)
    assert prefilled != ["<think>" + text for text in plain]  # the model was conditioned on it


def test_training_with_prefill_scores_prefilled_replies_and_saves_the_prompt(
    tmp_path, tiny_model_dir, monkeypatch
):
    from toolexpander.models import load_model_and_tokenizer
    from toolexpander.trainer import trainer as trainer_module
    from toolexpander.trainer.config import ToolExpanderConfig

    seen: list[str] = []

    def spy(completions, **kwargs):
        seen.extend(completions)
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
    trainer = trainer_module.ToolExpanderTrainer(
        model, config, build_suite()["train"][:2], processing_class=tokenizer
    )
    trainer.train()
    trainer.save_model(config.output_dir)
    assert len(seen) == 8 and all(text.startswith("<think>") for text in seen)
    assert tokenizer.chat_template == CHATML_TEMPLATE  # never edited
    saved = json.loads((Path(config.output_dir) / RUN_PROMPT_FILE).read_text())
    assert saved == {"prompt_style": "plain", "think_prefill": True, "prompt_format": "tooln1"}
    assert PromptSpec.load(config.output_dir) == PromptSpec(think_prefill=True)
    _, served = load_model_and_tokenizer(config.output_dir)
    assert PromptSpec().reply_prefill(served) == "<think>"  # a served copy prefills alike


@pytest.mark.parametrize(
    ("saved", "flags", "expected"),
    [
        ({"prompt_style": "self_exemplify", "think_prefill": True}, {}, ("self_exemplify", "tooln1", True)),
        (
            {"prompt_style": "self_exemplify", "think_prefill": True},
            {"prompt": "plain"},
            ("plain", "tooln1", True),
        ),
        (None, {}, ("plain", "tooln1", False)),
        (None, {"think_prefill": True}, ("plain", "tooln1", True)),
        ({"prompt_format": "native"}, {}, ("plain", "native", False)),
        ({"prompt_format": "native"}, {"prompt_format": "tooln1"}, ("plain", "tooln1", False)),
        ({"think_prefill": True}, {"think_prefill": False}, ("plain", "tooln1", False)),
    ],
)
def test_eval_poses_a_run_as_it_was_trained_unless_told_otherwise(tmp_path, saved, flags, expected):
    from toolexpander.evaluation.runner import EvalConfig, run_prompt

    if saved is not None:
        (tmp_path / RUN_PROMPT_FILE).write_text(json.dumps(saved))
    assert run_prompt(EvalConfig(bench="bfcl", model=str(tmp_path), **flags)) == PromptSpec(*expected)
