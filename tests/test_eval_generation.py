"""The model path of ``toolexpander eval``: batched HF generation (a tiny local model end to end,
and a scripted model for padding and order) and the vLLM backend with vLLM mocked."""

import json
import sys

import pytest
import torch
from transformers import AutoTokenizer

from toolexpander.cli import main
from toolexpander.evaluation.generation import generate_completions
from toolexpander.evaluation.runner import EvalConfig, run_eval


class EchoLastToken:
    """A stand-in model whose "generation" repeats the last prompt token: only left padding
    keeps that token at the end of every row, and only the attention mask tells the rows apart."""

    training = True
    device = torch.device("cpu")

    def __init__(self):
        self.calls = []

    def eval(self):
        self.training = False

    def train(self, mode=True):
        self.training = mode

    def generate(self, input_ids, attention_mask, max_new_tokens, pad_token_id, **sampling):
        self.calls.append(
            {"shape": tuple(input_ids.shape), "mask_zeros": int((attention_mask == 0).sum()), **sampling}
        )
        assert not self.training
        return torch.cat([input_ids, input_ids[:, -1:].repeat(1, max_new_tokens)], dim=1)


def test_generate_completions_pads_left_and_keeps_order(tiny_model_dir):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    tokenizer.padding_side = "right"
    chats = [[{"role": "user", "content": "x" * n + ending}] for n, ending in [(1, "a"), (30, "b"), (5, "c")]]
    prompts = [tokenizer.apply_chat_template(c, tokenize=False, add_generation_prompt=True) for c in chats]
    model = EchoLastToken()
    texts = generate_completions(
        model, tokenizer, prompts, max_new_tokens=2, batch_size=2, reply_prefill="<p>"
    )
    # the chat template ends with "<|im_start|>assistant\n": its last token is "\n"
    assert texts == ["<p>\n\n"] * 3
    assert [c["shape"][0] for c in model.calls] == [2, 1]  # longest first, then the rest
    assert model.calls[0]["mask_zeros"] > 0 and model.calls[0]["do_sample"] is False
    assert model.training and tokenizer.padding_side == "right"  # both restored


def test_generate_completions_returns_texts_in_input_order(tiny_model_dir):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)

    class EchoPrompt(EchoLastToken):
        def generate(self, input_ids, attention_mask, max_new_tokens, pad_token_id, **sampling):
            return torch.cat([input_ids, input_ids], dim=1)  # "completion" = the prompt itself

    prompts = [
        f"<|im_start|>user\n{text}<|im_end|>\n"
        for text in ["short", "a much longer message here", "mid size"]
    ]
    texts = generate_completions(EchoPrompt(), tokenizer, prompts, max_new_tokens=1, batch_size=2)
    assert [text.split("user\n")[1].split("\n")[0] for text in texts] == [
        "short",
        "a much longer message here",
        "mid size",
    ]


@pytest.mark.slow
def test_tiny_model_end_to_end(tmp_path, tiny_model_dir, shared_data, capsys):
    runs = {
        "bfcl": [
            "--bench",
            "bfcl:simple_java,live_multiple,irrelevance",
            "--data-dir",
            str(shared_data / "bfcl"),
        ],
        "apibank": ["--bench", "apibank", "--data-dir", str(shared_data / "api_bank")],
    }
    for name, bench in runs.items():
        out = tmp_path / name
        common = [*bench, "--limit", "2", "--out", str(out)]
        status = main(
            ["eval", *common, "--model", tiny_model_dir, "--max-new-tokens", "4", "--batch-size", "3"]
        )
        assert status == 0
        results = json.loads((out / "results.json").read_text())
        assert all(stats["n"] == 2 for stats in results["categories"].values())
        items = [json.loads(line) for line in (out / "items.jsonl").read_text().splitlines()]
        assert len(items) == 2 * len(results["categories"])
        assert all(isinstance(item["completion"], str) for item in items)
        # items.jsonl doubles as a predictions file and scores the same
        rescored = tmp_path / f"{name}-rescored"
        assert (
            main(
                [
                    "eval",
                    *bench,
                    "--limit",
                    "2",
                    "--predictions",
                    str(out / "items.jsonl"),
                    "--out",
                    str(rescored),
                ]
            )
            == 0
        )
        assert json.loads((rescored / "results.json").read_text())["categories"] == results["categories"]
    assert "| apibank_l2 | 2 |" in capsys.readouterr().out


@pytest.fixture
def fake_vllm(install_fake_vllm, tiny_model_dir):
    """A ``vllm`` whose LLM answers every prompt with no call and, like a model, does not repeat a
    ``<think>`` the prompt opened."""

    def answer(prompt: str) -> str:
        reply = "no tool fits</think><tool_call>[]</tool_call>"
        return reply if prompt.endswith("<think>") else "<think>" + reply

    return install_fake_vllm(tiny_model_dir, answer)


@pytest.mark.parametrize("think_prefill", [False, True])
def test_vllm_backend(fake_vllm, shared_data, capsys, think_prefill):
    config = EvalConfig(
        bench="bfcl:irrelevance,simple_python",
        data_dir=str(shared_data / "bfcl"),
        model="org/model",
        backend="vllm",
        limit=3,
        max_new_tokens=64,
        dtype="bfloat16",
        think_prefill=think_prefill,
    )
    results = run_eval(config)
    (llm,) = fake_vllm
    assert (llm.model, llm.kwargs) == ("org/model", {"dtype": "bfloat16"})
    ((prompt_ids, sampling),) = llm.calls
    prompts = [llm.tokenizer.decode(p["prompt_token_ids"]) for p in prompt_ids]
    assert len(prompts) == 6 and all(p.startswith("<|im_start|>system\n") for p in prompts)
    assert all(p.endswith("<think>") == think_prefill for p in prompts)
    assert sampling == {"max_tokens": 64, "temperature": 0.0}
    # Scored as the whole reply either way: the prefilled <think> is put back in front.
    assert results["categories"]["irrelevance"]["accuracy"] == 1.0
    assert results["categories"]["simple_python"]["accuracy"] == 0.0
    assert results["config"]["think_prefill"] is think_prefill


def test_vllm_missing_is_a_user_error(monkeypatch, shared_data, capsys):
    monkeypatch.setitem(sys.modules, "vllm", None)  # makes "import vllm" fail
    status = main(
        [
            "eval",
            "--bench",
            "bfcl:irrelevance",
            "--data-dir",
            str(shared_data / "bfcl"),
            "--model",
            "org/model",
            "--backend",
            "vllm",
            "--limit",
            "1",
        ]
    )
    assert status == 2 and "pip install 'toolexpander[vllm]'" in capsys.readouterr().err
