"""The SFT control (SPEC §9): TRL's ``SFTTrainer`` on the gold answers of the training items,
posed exactly as the RL arms pose and as evaluation poses them: the zero-shot prompt of
`toolexpander.prompts`, rendered by the model's chat template (with the think prefill when the run
uses one), and the answer `render_answer` writes, loss on the answer tokens only.
"""

from __future__ import annotations

from toolexpander.prompts import build_messages, generation_prefill, render_answer


def sft_rows(records: list[dict], tokenizer, style: str = "plain") -> list[dict]:
    """``{"prompt", "completion"}`` text rows: the prompt the model is posed with (generation
    prompt included) and the gold reply after whatever part of it the template already wrote
    (the ``<think>`` prefill). TRL appends the end-of-turn token to the completion."""
    prefill = generation_prefill(tokenizer).rstrip()
    rows = []
    for record in records:
        prompt = tokenizer.apply_chat_template(
            build_messages(record, style=style), add_generation_prompt=True, tokenize=False
        )
        answer = render_answer(record["answer"])
        rows.append({"prompt": prompt, "completion": answer.removeprefix(prefill)})
    return rows


def training_args(
    output_dir: str, steps: int, learning_rate: float, seed: int, bf16: bool, use_cpu: bool
) -> dict:
    """The `TrainingArguments` fields the arms trained by TRL's own trainers (sft, sdft) set alike:
    a log row per optimizer step, no checkpoints, HF's default schedule (linear decay, no warm-up)."""
    return {
        "output_dir": output_dir,
        "max_steps": steps,
        "learning_rate": learning_rate,
        "seed": seed,
        "bf16": bf16,
        "use_cpu": use_cpu,
        "logging_steps": 1,
        "save_strategy": "no",
        "report_to": "none",
        # Recomputing every forward in the backward costs time a small model does not need to save.
        "gradient_checkpointing": False,
    }


def train_sft(
    model,
    tokenizer,
    records: list[dict],
    *,
    output_dir: str,
    steps: int,
    batch_size: int,
    learning_rate: float,
    seed: int,
    style: str = "plain",
    bf16: bool = False,
    use_cpu: bool = False,
    callbacks: list | None = None,
):
    """Train ``model`` for ``steps`` optimizer steps of ``batch_size`` items (the records cycle
    in epochs); returns the trainer. HF's default schedule (linear decay, no warm-up)."""
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    config = SFTConfig(
        **training_args(output_dir, steps, learning_rate, seed, bf16, use_cpu),
        per_device_train_batch_size=batch_size,
        completion_only_loss=True,
    )
    trainer = SFTTrainer(
        model=model,
        args=config,
        train_dataset=Dataset.from_list(sft_rows(records, tokenizer, style)),
        processing_class=tokenizer,
        callbacks=callbacks,
    )
    trainer.train()
    return trainer
