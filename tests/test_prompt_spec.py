"""`PromptSpec`: every style, format, think prefill, task and demonstration kind renders byte for byte
the prompt the code before it rendered by editing the chat template in place (the SHA-256 of each
in `tests/fixtures/prompt_renders.json`); the tokenizer is left untouched; the spec round-trips
through a run folder, old files included."""

import hashlib
import json
from pathlib import Path

import pytest
import trl
from transformers import AutoTokenizer

from toolexpander.models import CHATML_TEMPLATE
from toolexpander.prompts import RENDER_DATE, RUN_PROMPT_FILE, PromptSpec, gold_demo
from toolexpander.tasks.suite import build_suite

TRL_TEMPLATES = Path(trl.__file__).parent / "chat_templates"
# A template whose generation prompt opens the think block itself (DeepSeek-R1's way).
R1_STYLE = CHATML_TEMPLATE.replace("assistant\\n' }}{% endif %}", "assistant\\n<think>\\n' }}{% endif %}")
TEMPLATES = {
    "chatml": CHATML_TEMPLATE,
    "r1_style": R1_STYLE,
    **{
        name: (TRL_TEMPLATES / f"{name}.jinja").read_text()
        for name in ("qwen2_5", "qwen3", "llama3_1", "llama3_2")
    },
}
NATIVE_TEMPLATES = ("qwen2_5", "qwen3", "llama3_1", "llama3_2")  # those that write tool calls

# The rows of the table: chat templates x formats x styles x think prefill x tasks x demonstrations.
_suite = build_suite(level="easy")
# A task with context: its own system text, an earlier call and its result.
_CONTEXT_TASK = {
    **_suite["test"][1],
    "id": "context",
    "messages": [
        {"role": "system", "content": "Answer in English."},
        {"role": "user", "content": "Weather in Oslo, then in Paris?"},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [{"name": "get_current_weather", "arguments": {"x": 1}}],
        },
        {"role": "tool", "content": '{"result": 3}'},
        {"role": "user", "content": "And now?"},
    ],
}
TASKS = {"suite": _suite["test"][0], "context": _CONTEXT_TASK}
_NO_CALL = {**_suite["train"][0], "answer": []}
DEMOS = {
    "none": [],
    "gold": [gold_demo(_suite["train"][1]), gold_demo(_NO_CALL)],
    "rollout": [{"query": "Sun in Nice?", "completion": "<think>mine</think>\n<tool_call>[]</tool_call>"}],
}


def cases():
    """``(key, template name, style, prompt format, think prefill, task name, demos name)``."""
    for template in TEMPLATES:
        for prompt_format in ("tooln1", "native") if template in NATIVE_TEMPLATES else ("tooln1",):
            for style in ("plain", "self_exemplify"):
                for prefill in (False, True):
                    for task in TASKS:
                        for demos in DEMOS:
                            key = f"{template}|{prompt_format}|{style}|{prefill}|{task}|{demos}"
                            yield key, template, style, prompt_format, prefill, task, demos


def digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


EXPECTED = json.loads((Path(__file__).parent / "fixtures" / "prompt_renders.json").read_text())


@pytest.fixture(scope="module")
def tokenizers(tiny_model_dir):
    """The tiny model's tokenizer under each chat template of the table."""
    loaded = {}
    for name, template in TEMPLATES.items():
        loaded[name] = AutoTokenizer.from_pretrained(tiny_model_dir)
        loaded[name].chat_template = template
    return loaded


def test_the_table_covers_every_case():
    assert {key for key, *_ in cases()} == set(EXPECTED["renders"])


@pytest.mark.parametrize(
    ("key", "template", "style", "prompt_format", "prefill", "task", "demos"), list(cases())
)
def test_a_spec_renders_the_prompt_the_edited_template_rendered(
    tokenizers, key, template, style, prompt_format, prefill, task, demos
):
    tokenizer = tokenizers[template]
    spec = PromptSpec(style, prompt_format, prefill)
    assert digest(spec.render(tokenizer, TASKS[task], DEMOS[demos])) == EXPECTED["renders"][key], key
    assert spec.reply_prefill(tokenizer) == EXPECTED["reply_prefill"][f"{template}|{prefill}"]
    assert tokenizer.chat_template == TEMPLATES[template]  # read, never edited


def test_a_dated_template_renders_the_same_prompt_on_any_day(tokenizers):
    # Llama 3.2's template writes today's date into the system turn unless it is given one.
    tokenizer = tokenizers["llama3_2"]
    assert "strftime_now" in tokenizer.chat_template
    assert f"Today Date: {RENDER_DATE}\n" in PromptSpec().render(tokenizer, TASKS["suite"])
    assert f"Today Date: {RENDER_DATE}\n" in PromptSpec(prompt_format="native").render(tokenizer, TASKS["suite"])


def test_a_rendered_prompt_tokenises_as_the_template_tokenises_the_chat(tokenizers):
    from toolexpander.prompts import build_messages

    tokenizer, task = tokenizers["llama3_1"], TASKS["suite"]  # a template that writes a BOS
    ids = tokenizer(PromptSpec().render(tokenizer, task), add_special_tokens=False)["input_ids"]
    assert ids == tokenizer.apply_chat_template(
        build_messages(task), add_generation_prompt=True, return_dict=False
    )


def test_a_saved_spec_loads_back_and_a_prefilled_run_saves_a_prefilling_template(tmp_path, tokenizers):
    spec = PromptSpec("self_exemplify", "tooln1", think_prefill=True)
    spec.save(tmp_path, tokenizers["chatml"])
    assert PromptSpec.load(tmp_path) == spec
    assert tokenizers["chatml"].chat_template == TEMPLATES["chatml"]
    served = AutoTokenizer.from_pretrained(tmp_path)  # what `vllm serve RUN_DIR` reads
    assert served.apply_chat_template(
        [{"role": "user", "content": "q"}], tokenize=False, add_generation_prompt=True
    ).endswith("<|im_start|>assistant\n<think>")
    # Loaded again, the run's prompt is rendered with one <think>, as in training.
    task = TASKS["suite"]
    assert spec.render(served, task) == spec.render(tokenizers["chatml"], task)
    assert spec.reply_prefill(served) == "<think>"


def test_old_run_files_load_and_other_folders_hold_none(tmp_path):
    assert PromptSpec.load(tmp_path) is None
    (tmp_path / RUN_PROMPT_FILE).write_text(
        json.dumps({"prompt_style": "self_exemplify", "think_prefill": True})
    )
    assert PromptSpec.load(tmp_path) == PromptSpec("self_exemplify", "tooln1", True)


def test_the_call_format_follows_the_prompt_format(tokenizers):
    assert PromptSpec().call_format(tokenizers["qwen2_5"]) == "tooln1"
    assert PromptSpec(prompt_format="native").call_format() == "native"  # told by each reply
    assert PromptSpec(prompt_format="native").call_format(tokenizers["qwen2_5"]) == "hermes"
    assert PromptSpec(prompt_format="native").call_format(tokenizers["llama3_2"]) == "llama3_json"
    with pytest.raises(ValueError, match="tooln1"):
        PromptSpec(prompt_format="native").call_format(tokenizers["chatml"])
    with pytest.raises(ValueError, match="prompt style"):
        PromptSpec("fancy")
