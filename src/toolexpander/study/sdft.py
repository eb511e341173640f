"""The SDFT arm (SPEC §9): TRL's ``trl.experimental.sdft.SDFTTrainer``, self-distillation from
demonstrations (Shenfeld et al. 2026, arXiv 2601.19897). The student samples replies under the
zero-shot prompt; the teacher is the same model, frozen at the start of training (TRL's default
``teacher_model_kind="base"``), reading those same replies under the prompt with two
demonstrations; the student is trained towards the teacher's next-token distribution at every
token of its own replies (TRL's default top-k logit divergence). No reward is used.

The prompts are ours: the student's is `build_messages(record)`, rendered by the chat template as
evaluation and the other arms render it (with the ``<think>`` prefill when the tokenizer has it);
the teacher's is `build_messages(record, demos=...)` with two gold demonstrations from the
demonstration pool (`DemoBank`, gold answers only), as the hard-sampling arms pose a hard item.

TRL composes a teacher prompt from the student's with ``teacher_prompt_template``
(``"{prompt}\\n\\n{privileged_context}"``, which must hold both): the student's last user turn
(or whole text) with the context pasted in, so it cannot place demonstrations as user/assistant
turns between the system turn and the request, the form a 135M model follows (SPEC §1). So the
dataset's ``privileged_context`` holds the teacher's whole conversation, and
`_teacher_prompt_builder` (TRL's context builder less its template step) poses it as it is.
"""

from __future__ import annotations

from toolexpander.prompts import build_messages
from toolexpander.study.sft import training_args

SHOTS = 2  # demonstrations the teacher reads: the hard-sampling arms' fixed 2 shots


def sdft_rows(
    records: list[dict], demo_pool: list[dict], style: str = "plain", shots: int = SHOTS
) -> list[dict]:
    """``{"prompt", "privileged_context"}`` rows of TRL's SDFT dataset, conversational: the student's
    zero-shot messages, and the teacher's messages with ``shots`` gold demonstrations from
    ``demo_pool`` (the record itself is never its own demonstration)."""
    from toolexpander.hard_sampling.demo_bank import DemoBank

    bank = DemoBank(demo_pool, sources=("gold",))
    return [
        {
            "prompt": build_messages(record, style=style),
            "privileged_context": build_messages(record, style=style, demos=bank.select(record, shots)),
        }
        for record in records
    ]


def train_sdft(
    model,
    tokenizer,
    records: list[dict],
    demo_pool: list[dict],
    *,
    output_dir: str,
    steps: int,
    batch_size: int,
    num_generations: int,
    max_completion_length: int,
    temperature: float,
    learning_rate: float,
    seed: int,
    style: str = "plain",
    shots: int = SHOTS,
    bf16: bool = False,
    use_cpu: bool = False,
    callbacks: list | None = None,
):
    """Train ``model`` for ``steps`` optimizer steps; returns the trainer.

    The budget is the RL arms' (`toolexpander.demo.run.arm_training_fields`): each step poses
    ``batch_size`` items (the records cycle in epochs) and the student samples ``num_generations``
    replies to each at ``temperature``, up to ``max_completion_length`` tokens: the same items per
    step, rollouts per item, reply length and optimizer steps. On top of that the teacher reads
    every rollout once (one forward pass, no generation), and no reward is computed. HF's default
    schedule (linear decay, no warm-up), as the SFT arm."""
    from datasets import Dataset
    from trl.experimental.sdft import SDFTConfig, SDFTTrainer

    config = SDFTConfig(
        **training_args(output_dir, steps, learning_rate, seed, bf16, use_cpu),
        per_device_train_batch_size=batch_size * num_generations,
        num_generations=num_generations,
        max_completion_length=max_completion_length,
        # TRL cuts prompts to 512 tokens from the left: it would cut the tools out of a 2-shot prompt.
        max_prompt_length=None,
        temperature=temperature,
    )
    trainer = SDFTTrainer(
        model=model,
        args=config,
        train_dataset=Dataset.from_list(sdft_rows(records, demo_pool, style, shots)),
        processing_class=tokenizer,
        callbacks=callbacks,
    )
    trainer.teacher_context_builder = _teacher_prompt_builder(trainer)
    trainer.train()
    return trainer


def _teacher_prompt_builder(trainer):
    """TRL's `DemonstrationTeacherContextBuilder` posing the teacher ``privileged_context`` as it
    is (our whole 2-shot conversation) instead of filling TRL's template into the student's last
    turn. It tokenises, pads and appends the student's reply exactly as TRL's does."""
    from trl.experimental.sdft.sdft_trainer import DemonstrationTeacherContextBuilder

    class TeacherPrompt(DemonstrationTeacherContextBuilder):
        def _compose_teacher_prompt(self, prompt, privileged_context):
            return privileged_context

    return TeacherPrompt(trainer)
