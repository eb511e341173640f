"""Prompt format native: replies read per template family (golden cases), the rewards scoring the
parsed calls as they score our format, prompts rendered by real chat templates (TRL ships them
offline), the served path (template + transformers' parser), and a tiny model trained and
evaluated in both formats."""

import json
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import trl

from toolexpander.prompts import (
    PromptSpec,
    gold_demo,
    native_call_format,
    render_answer,
    template_call_format,
)
from toolexpander.rewards import parse_calls, tool_n1, toolrl
from toolexpander.rewards.rewards import self_exemplify_score, tool_n1_score, toolrl_score

TEMPLATES = Path(trl.__file__).parent / "chat_templates"
F5 = {"name": "f", "arguments": {"a": "5"}}
G = {"name": "g", "arguments": {"n": 2, "flag": True}}


NATIVE = PromptSpec(prompt_format="native")


def template(name: str) -> str:
    return (TEMPLATES / f"{name}.jinja").read_text()


def hermes(*calls: dict) -> str:
    return "".join(f"\n<tool_call>\n{json.dumps(c)}\n</tool_call>" for c in calls)


def llama(*calls: dict) -> str:
    return "; ".join(json.dumps({"name": c["name"], "parameters": c["arguments"]}) for c in calls)


# --- golden replies per family: single, parallel, none, malformed ------------------------------

GOLDEN = [
    ("hermes", "<think>one</think>" + hermes(F5), [F5]),
    ("hermes", "<think>two</think>" + hermes(F5, G), [F5, G]),
    ("hermes", "<think>none</think>\nNo function fits this request.", []),
    ("hermes", '<think>bad</think>\n<tool_call>\n{"name": "f", "arguments": {"a": 5}\n</tool_call>', None),
    ("hermes", "<think>cut</think>" + hermes(F5) + '\n<tool_call>\n{"name": "g"', None),
    ("hermes", '<think>no args</think>\n<tool_call>\n{"name": "f"}\n</tool_call>', None),
    ("llama3_json", "<think>one</think>" + llama(F5), [F5]),
    ("llama3_json", "<think>two</think>" + llama(F5, G), [F5, G]),
    ("llama3_json", "<think>none</think>No function fits this request.", []),
    ("llama3_json", '<think>bad</think>{"name": "f", "parameters": {"a": 5}', None),
    ("llama3_json", "<think>prose after</think>" + llama(F5) + " and then", [F5]),  # as vLLM reads it
    ("llama3_json", "<think>junk</think>" + llama(F5) + " and {then}", None),
    ("llama3_json", '<think>tag</think><|python_tag|>{"name": "f", "arguments": {"a": "5"}}', [F5]),
]


@pytest.mark.parametrize(("family", "reply", "expected"), GOLDEN)
def test_golden_replies_parse_per_family(family, reply, expected):
    assert parse_calls(reply, family) == expected
    assert parse_calls(reply, "native") == expected  # the family told by the reply itself


def test_a_string_argument_stays_a_string_and_a_number_a_number():
    calls = parse_calls(
        "<think>.</think>" + hermes({"name": "f", "arguments": {"s": "5", "i": 5, "x": 1.0}}), "hermes"
    )
    assert calls[0]["arguments"] == {"s": "5", "i": 5, "x": 1.0}
    assert [type(v) for v in calls[0]["arguments"].values()] == [str, int, float]


def many(count: int) -> list[dict]:
    return [{"name": "f", "arguments": {"i": i}} for i in range(count)]


@pytest.mark.parametrize(("family", "render"), [("hermes", hermes), ("llama3_json", llama)])
def test_32000_calls_are_read_in_linear_time(family, render):
    reply = "<think>.</think>" + render(*many(32_000))
    start = time.perf_counter()
    assert parse_calls(reply, family) == parse_calls(reply, "native") == many(32_000)
    assert time.perf_counter() - start < 5


def test_a_hermes_model_writing_bare_json_makes_no_call():
    # What vLLM's hermes parser returns for it: content, no tool call.
    assert parse_calls("<think>.</think>" + llama(F5), "hermes") == []


# --- the rewards: same semantics in every format ------------------------------------------------


@pytest.mark.parametrize(
    ("call_format", "render"),
    [
        ("tooln1", lambda *c: "\n" + render_answer(list(c)).split("\n", 1)[1]),
        ("hermes", hermes),
        ("llama3_json", llama),
    ],
)
def test_rewards_score_the_parsed_calls_alike_in_every_format(call_format, render):
    def reply(*calls):
        return "<think>plan</think>" + render(*calls)

    answer = json.dumps([G, F5])
    assert tool_n1([reply(F5, G)], [answer], call_format=call_format) == [1.0]  # order-free
    assert tool_n1([reply(F5)], [answer], call_format=call_format) == [0.0]
    as_number = {"name": "f", "arguments": {"a": 5}}
    assert tool_n1([reply(as_number, G)], [answer], call_format=call_format) == [0.0]  # "5" != 5
    assert tool_n1([render(F5, G)], [answer], call_format=call_format) == [0.0]  # no think block
    assert toolrl([reply(F5, G)], [answer], call_format=call_format) == [4.0]
    assert toolrl_score(reply(F5), answer, call_format) == toolrl_score(
        "<think>plan</think>\n" + render_answer([F5]).split("\n", 1)[1], answer
    )


def test_a_malformed_native_call_does_not_pass_for_no_call():
    broken = '<think>.</think>\n<tool_call>\n{"name": "f"\n</tool_call>'
    assert tool_n1_score(broken, "[]", "hermes") == 0.0
    assert tool_n1_score("<think>.</think>No function fits.", "[]", "hermes") == 1.0
    assert toolrl_score(broken, "[]", "hermes") == -3.0  # no format point, ill-formed calls


def test_the_self_exemplify_bonus_needs_a_readable_native_answer():
    think = '<think><example>Query: rain in Oslo?\nCall: [{"name": "w", "arguments": {"city": "Oslo"}}]</example></think>'
    assert self_exemplify_score(think + hermes(F5), "[]", call_format="hermes") == 0.01
    assert (
        self_exemplify_score(think + '\n<tool_call>\n{"name"\n</tool_call>', "[]", call_format="hermes")
        == 0.0
    )
    assert (
        self_exemplify_score(
            think + hermes(F5), json.dumps([F5]), requires_correct=True, call_format="hermes"
        )
        == 0.01
    )


# --- prompts rendered by real templates ---------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("qwen2_5", "hermes"),
        ("qwen3", "hermes"),
        ("llama3_1", "llama3_json"),
        ("llama3_2", "llama3_json"),
        ("llama3", None),
    ],
)
def test_the_call_format_is_read_from_the_template(name, expected):
    assert template_call_format(template(name)) == expected


@pytest.fixture
def tokenizer(tiny_model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)


TASK = {
    "id": "t",
    "messages": [{"role": "user", "content": "Weather in Paris?"}],
    "tools": [
        {"name": "get_weather", "description": "Weather", "parameters": {"type": "object", "properties": {}}}
    ],
    "answer": [{"name": "get_weather", "arguments": {"city": "Paris"}}],
}
DEMO_TASK = {
    **TASK,
    "id": "d",
    "messages": [{"role": "user", "content": "Rain in Oslo?"}],
    "answer": [
        {"name": "get_weather", "arguments": {"city": "Oslo"}},
        {"name": "get_weather", "arguments": {"city": "Bergen"}},
    ],
}


def test_a_template_without_tool_calls_is_refused_for_native(tokenizer):
    with pytest.raises(ValueError, match="tooln1"):
        native_call_format(tokenizer)  # the tiny model's plain ChatML template


def test_native_prompt_renders_tools_and_gold_demonstrations_through_the_template(tokenizer):
    tokenizer.chat_template = template("qwen2_5")
    rollout = {"query": "Sun in Nice?", "completion": "<think>mine</think>\n" + hermes(F5).strip()}
    text = NATIVE.render(tokenizer, TASK, [gold_demo(DEMO_TASK), rollout])
    assert '<tools>\n{"type": "function", "function": {"name": "get_weather"' in text
    # The demonstration's calls as the template writes them, after its think block.
    assert (
        "<think>I call get_weather.</think>\n<tool_call>\n"
        '{"name": "get_weather", "arguments": {"city": "Oslo"}}\n</tool_call>\n<tool_call>'
    ) in text
    assert text.endswith("<|im_start|>user\nWeather in Paris?<|im_end|>\n<|im_start|>assistant\n")
    # The policy's own rollout is shown as it wrote it.
    assert "<|im_start|>assistant\n" + rollout["completion"] + "<|im_end|>" in text


def test_llama_demonstrations_with_several_calls_render_as_the_model_would_write_them(tokenizer):
    tokenizer.chat_template = template("llama3_1")  # it raises on two structured calls in one turn
    text = NATIVE.render(tokenizer, TASK, [gold_demo(DEMO_TASK)])
    reply = text.split("<|start_header_id|>assistant<|end_header_id|>\n\n")[1].split("<|eot_id|>")[0]
    assert parse_calls(reply, "llama3_json") == DEMO_TASK["answer"]
    assert reply.startswith("<think>")


def test_a_native_prompt_holds_one_bos_when_the_trainer_tokenises_it(tokenizer):
    from tokenizers import processors

    from toolexpander.trainer.trainer import ToolExpanderTrainer

    tokenizer.chat_template = template("llama3_1")
    tokenizer.bos_token = "<|endoftext|>"
    bos = tokenizer.bos_token_id
    tokenizer._tokenizer.post_processor = processors.TemplateProcessing(
        single="<|endoftext|> $A", special_tokens=[("<|endoftext|>", bos)]
    )
    assert tokenizer("x")["input_ids"][0] == bos  # this tokenizer adds a BOS of its own
    text = NATIVE.render(tokenizer, TASK)
    assert text.startswith("<|endoftext|>")  # ... and the template writes one too
    fake = SimpleNamespace(processing_class=tokenizer)
    ids = ToolExpanderTrainer._tokenize_prompts(fake, [text])[0][0]
    assert ids[0] == bos and ids.count(bos) == 1


# --- the served path: the template renders a reply, transformers' parser reads it back -----------


@pytest.mark.parametrize("name", ["qwen2_5", "llama3_1", "llama3_2"])
def test_a_served_reply_round_trips_through_template_and_parser(tokenizer, name):
    from trl.chat_template_utils import add_response_schema, supports_tool_calling

    tokenizer.chat_template = template(name)
    assert supports_tool_calling(tokenizer)
    add_response_schema(tokenizer)  # the family's response parser, as a transformers server sets it
    call = {"name": "get_weather", "arguments": {"city": "Paris", "days": "5"}}
    prompt = NATIVE.render(tokenizer, TASK)
    # A scripted model reply, written by the template itself as the next assistant turn.
    turn = {"role": "assistant", "content": "", "tool_calls": [{"type": "function", "function": call}]}
    full = tokenizer.apply_chat_template(
        [*[{"role": "user", "content": "Weather in Paris?"}], turn],
        tools=[{"type": "function", "function": TASK["tools"][0]}],
        tokenize=False,
    )
    reply = full[
        len(
            tokenizer.apply_chat_template(
                [{"role": "user", "content": "Weather in Paris?"}],
                tools=[{"type": "function", "function": TASK["tools"][0]}],
                tokenize=False,
                add_generation_prompt=True,
            )
        ) :
    ]
    served = tokenizer.parse_response(reply, prefix=prompt)
    assert [t["function"] for t in served["tool_calls"]] == [call]
    assert parse_calls(reply, native_call_format(tokenizer)) == [call]  # "5" stays a string
    assert tool_n1_score("<think>.</think>" + reply, [call], native_call_format(tokenizer)) == 1.0


# --- a tiny model with the Qwen2.5 template: train 2 steps and evaluate, in both formats ---------


@pytest.mark.parametrize("prompt_format", ["tooln1", "native"])
def test_both_formats_train_two_steps_and_evaluate(tmp_path, qwen_tiny_dir, prompt_format):
    from toolexpander.cli import main
    from toolexpander.tasks.suite import build_suite

    out = tmp_path / "run"
    argv = [
        "train",
        "--config",
        str(Path(__file__).parents[1] / "recipes" / "tiny-cpu.yaml"),
        "--model_name_or_path",
        qwen_tiny_dir,
        "--build_tiny_model",
        "false",
        "--output_dir",
        str(out),
        "--max_steps",
        "2",
        "--save_strategy",
        "no",
        "--max_train_items",
        "2",
        "--think_prefill",
        "true",
        "--carry_over",
        "swap",
        "--prompt_format",
        prompt_format,
    ]
    assert main(argv) == 0
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    # Step 1: every item hard (a random model); step 2: posed with demonstrations, swapped to zero-shot.
    assert [m["hard/demo_share"] for m in metrics if "hard/ratio" in m] == [0.0, 1.0]
    assert [m["carry_over/swapped_share"] for m in metrics if "hard/ratio" in m] == [0.0, 1.0]
    assert all("rewards/tool_n1/mean" in m and "rewards/self_exemplify/mean" in m for m in metrics[:2])
    assert json.loads((out / "toolexpander_prompt.json").read_text())["prompt_format"] == prompt_format
    data = tmp_path / "items.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in build_suite()["test"][:2]))
    results_dir = tmp_path / "eval"
    argv = [
        "eval",
        "--bench",
        str(data),
        "--model",
        str(out),
        "--max_new_tokens",
        "8",
        "--out",
        str(results_dir),
    ]
    assert main(argv) == 0
    results = json.loads((results_dir / "results.json").read_text())
    assert results["config"]["prompt_format"] == prompt_format  # read from the run's folder
    assert results["config"]["call_format"] == {"tooln1": "tooln1", "native": "hermes"}[prompt_format]
    items = [json.loads(line) for line in (results_dir / "items.jsonl").read_text().splitlines()]
    assert len(items) == 2 and all(item["completion"].startswith("<think>") for item in items)


def test_the_native_recipe_is_the_qwen_recipe_in_native_format():
    import yaml

    recipes = Path(__file__).parents[1] / "recipes"
    base = yaml.safe_load((recipes / "qwen2.5-1.5b-gpu.yaml").read_text())
    native = yaml.safe_load((recipes / "qwen2.5-1.5b-gpu-native.yaml").read_text())
    changed = {"prompt_format": "native", "think_prefill": True, "output_dir": base["output_dir"] + "-native"}
    assert native == {**base, **changed}


@pytest.mark.parametrize(
    ("name", "call_text", "result_text"),
    [
        (
            "qwen2_5",
            '<|im_start|>assistant\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Rome"}}',
            "<|im_start|>user\n<tool_response>\nsunny\n</tool_response><|im_end|>",
        ),
        # Llama's template reads call.function: earlier calls must reach it in that shape.
        (
            "llama3_1",
            '<|start_header_id|>assistant<|end_header_id|>\n\n{"name": "get_weather", "parameters": {"city": "Rome"}}',
            '<|start_header_id|>ipython<|end_header_id|>\n\n"sunny"<|eot_id|>',  # it JSON-encodes a string
        ),
    ],
)
def test_earlier_calls_in_the_context_are_rendered_by_the_template(tokenizer, name, call_text, result_text):
    tokenizer.chat_template = template(name)
    earlier = {"name": "get_weather", "arguments": {"city": "Rome"}}
    task = {
        **TASK,
        "messages": [
            {"role": "user", "content": "Weather in Rome, then Paris?"},
            {"role": "assistant", "content": "", "tool_calls": [earlier]},
            {"role": "tool", "content": "sunny"},
        ],
    }
    text = NATIVE.render(tokenizer, task)
    assert call_text in text and result_text in text


def test_several_earlier_calls_reach_a_llama_template_as_the_reply_it_wrote(tokenizer):
    """Llama 3.x templates take one structured call per message (two raise): a step of an episode
    with two calls goes in as the model's own text, its results as ipython turns, and the
    conversation before the results is a prefix of the one after (episodes extend it)."""
    from toolexpander.rewards.call_formats import parse_calls

    tokenizer.chat_template = template("llama3_1")
    calls = [{"name": "get_weather", "arguments": {"city": c}} for c in ("Rome", "Paris")]
    asked = [{"role": "user", "content": "Weather in Rome and Paris?"}]
    replied = [*asked, {"role": "assistant", "content": "", "tool_calls": calls}]
    answered = [*replied, {"role": "tool", "content": "sunny"}, {"role": "tool", "content": "rain"}]
    text = NATIVE.render(tokenizer, {**TASK, "messages": answered})
    reply = '{"name": "get_weather", "parameters": {"city": "Rome"}}; {"name": "get_weather", "parameters": {"city": "Paris"}}'
    assert f"<|start_header_id|>assistant<|end_header_id|>\n\n{reply}<|eot_id|>" in text
    assert text.count("<|start_header_id|>ipython<|end_header_id|>") == 2
    assert parse_calls(reply, "llama3_json") == calls
    head = NATIVE.render(tokenizer, {**TASK, "messages": replied}, add_generation_prompt=False)
    assert text.startswith(head)
    single = NATIVE.render(tokenizer, {**TASK, "messages": [*asked, {**replied[1], "tool_calls": calls[:1]}]})
    assert "<|python_tag|>" not in single and '{"name": "get_weather", "parameters": {"city": "Rome"}}' in single


def test_vllm_eval_in_native_generates_from_the_rendered_tokens_and_reads_hermes(
    tmp_path, qwen_tiny_dir, install_fake_vllm, capsys
):
    from transformers import AutoTokenizer

    from toolexpander.evaluation.runner import EvalConfig, run_eval
    from toolexpander.tasks.suite import build_suite

    record = build_suite()["test"][0]
    llms = install_fake_vllm(qwen_tiny_dir, lambda prompt: "<think>.</think>" + hermes(*record["answer"]))
    data = tmp_path / "items.jsonl"
    data.write_text(json.dumps(record) + "\n")
    results = run_eval(EvalConfig(bench=str(data), model="org/model", backend="vllm", prompt_format="native"))
    tokenizer = AutoTokenizer.from_pretrained(qwen_tiny_dir)
    expected = tokenizer(NATIVE.render(tokenizer, record), add_special_tokens=False)["input_ids"]
    assert [prompt for prompts, _ in llms[0].calls for prompt in prompts] == [{"prompt_token_ids": expected}]
    assert results["overall"] == 1.0 and results["config"]["call_format"] == "hermes"


def test_bfcl_in_native_shows_the_docs_as_bfcl_ships_them_and_checks_hermes_replies(tokenizer):
    # As BFCL's local Qwen FC handler: the docs with the language hint and BFCL's type names.
    from toolexpander.evaluation.runner import load_benchmark, prompt_text
    from toolexpander.evaluation.scoring import evaluate_records
    from toolexpander.tasks.bfcl import prompt_tools

    tokenizer.chat_template = template("qwen2_5")
    records = load_benchmark("bfcl:simple_python").records()[:3]
    for record in records:
        text = prompt_text(record, NATIVE, tokenizer)
        for tool in prompt_tools(record):
            assert json.dumps({"type": "function", "function": tool}, ensure_ascii=False) in text
        assert "Python 3 syntax" in text and '"type": "dict"' in text
    replies = {r["id"]: "<think>.</think>" + hermes(*r["answer"]) for r in records}
    replies[records[0]["id"]] = "<think>.</think>" + llama(*records[0]["answer"])  # not Hermes: no call
    items, _ = evaluate_records(records, replies, call_format="hermes")
    assert [item["valid"] for item in items] == [False, True, True]
