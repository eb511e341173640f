"""The SFT control (SPEC §9): TRL's ``SFTTrainer`` on the gold answers of the training items,
posed exactly as the RL arms pose and as evaluation poses them: the zero-shot prompt a
`toolexpander.prompts.PromptSpec` renders (with the think prefill when the run uses one), and the
answer `render_answer` writes, loss on the answer tokens only.
"""

from __future__ import annotations

from toolexpander.prompts import PromptSpec, render_answer


def sft_rows(records: list[dict], tokenizer, spec: PromptSpec) -> list[dict]:
    """``{"prompt", "completion"}`` text rows: the prompt the model is posed with (generation
    prompt included) and the gold reply after whatever part of it the prompt already wrote
    (the ``<think>`` prefill). TRL appends the end-of-turn token to the completion."""
    prefill = spec.reply_prefill(tokenizer).rstrip()
    return [
        {
            "prompt": spec.render(tokenizer, record),
            "completion": render_answer(record["answer"]).removeprefix(prefill),
        }
        for record in records
    ]


def training_args(
    *, output_dir: str, steps: int, learning_rate: float, seed: int, bf16: bool = False, use_cpu: bool = False
) -> dict:
    """The `TrainingArguments` fields the arms trained by TRL's own trainers (sft, sdft) set alike:
    a log row per optimizer step, no checkpoints, HF's default schedule (linear decay, no warm-up).
    `train_sft` and `train_sdft` take these as keywords."""
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
    batch_size: int,
    prompt_spec: PromptSpec,
    callbacks: list | None = None,
    **training,
):
    """Train ``model`` on ``records`` posed as ``prompt_spec`` says, in optimizer steps of
    ``batch_size`` items (the records cycle in epochs); ``training``: the fields of
    `training_args` (``steps`` among them). Returns the trainer."""
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    config = SFTConfig(
        **training_args(**training),
        per_device_train_batch_size=batch_size,
        completion_only_loss=True,
    )
    trainer = SFTTrainer(
        model=model,
        args=config,
        train_dataset=Dataset.from_list(sft_rows(records, tokenizer, prompt_spec)),
        processing_class=tokenizer,
        callbacks=callbacks,
    )
    trainer.train()
    return trainer
