"""The SDFT arm (SPEC §9): TRL's ``trl.experimental.sdft.SDFTTrainer``, self-distillation from
demonstrations (Shenfeld et al. 2026, arXiv 2601.19897). The student samples replies under the
zero-shot prompt; the teacher is the same model, frozen at the start of training (TRL's default
``teacher_model_kind="base"``), reading those same replies under the prompt with two
demonstrations; the student is trained towards the teacher's next-token distribution at every
token of its own replies (TRL's default top-k logit divergence). No reward is used.

The prompts are ours, text a `PromptSpec` renders as evaluation and the other arms render it (with
the ``<think>`` prefill when the run uses one): the student's is the zero-shot prompt, the
teacher's the same with two gold demonstrations from the demonstration pool (`DemoBank`, gold
answers only), as the hard-sampling arms pose a hard item.

TRL composes a teacher prompt from the student's with ``teacher_prompt_template``
(``"{prompt}\\n\\n{privileged_context}"``, which must hold both): the student's last user turn
(or whole text) with the context pasted in, so it cannot place demonstrations as user/assistant
turns between the system turn and the request, the form a 135M model follows (SPEC §1). So the
dataset's ``privileged_context`` holds the teacher's whole conversation, and
`_teacher_prompt_builder` (TRL's context builder less its template step) poses it as it is.
"""

from __future__ import annotations

from toolexpander.prompts import PromptSpec
from toolexpander.study.sft import training_args

SHOTS = 2  # demonstrations the teacher reads: the hard-sampling arms' fixed 2 shots


def sdft_rows(
    records: list[dict], demo_pool: list[dict], tokenizer, spec: PromptSpec, shots: int = SHOTS
) -> list[dict]:
    """``{"prompt", "privileged_context"}`` rows of TRL's SDFT dataset, as rendered text: the
    student's zero-shot prompt, and the teacher's with ``shots`` gold demonstrations from
    ``demo_pool`` (the record itself is never its own demonstration)."""
    from toolexpander.hard_sampling.demo_bank import DemoBank

    bank = DemoBank(demo_pool, sources=("gold",))
    return [
        {
            "prompt": spec.render(tokenizer, record),
            "privileged_context": spec.render(tokenizer, record, bank.select(record, shots)),
        }
        for record in records
    ]


def train_sdft(
    model,
    tokenizer,
    records: list[dict],
    demo_pool: list[dict],
    *,
    batch_size: int,
    num_generations: int,
    max_completion_length: int,
    temperature: float,
    prompt_spec: PromptSpec,
    shots: int = SHOTS,
    callbacks: list | None = None,
    **training,
):
    """Train ``model`` for ``steps`` optimizer steps; returns the trainer. ``training``: the fields
    of `toolexpander.study.sft.training_args` (``steps`` among them), as `train_sft` takes them.

    The budget is the RL arms' (`toolexpander.demo.run.arm_training_fields`): each step poses
    ``batch_size`` items (the records cycle in epochs) and the student samples ``num_generations``
    replies to each at ``temperature``, up to ``max_completion_length`` tokens: the same items per
    step, rollouts per item, reply length and optimizer steps. On top of that the teacher reads
    every rollout once (one forward pass, no generation), and no reward is computed. HF's default
    schedule (linear decay, no warm-up), as the SFT arm."""
    from datasets import Dataset
    from trl.experimental.sdft import SDFTConfig, SDFTTrainer

    class TextPromptSDFT(SDFTTrainer):
        def _tokenize_prompts(self, prompts):
            # Text the chat template rendered (`PromptSpec.render`): it holds any BOS token already.
            return self.processing_class(text=prompts, add_special_tokens=False)["input_ids"]

    config = SDFTConfig(
        **training_args(**training),
        per_device_train_batch_size=batch_size * num_generations,
        num_generations=num_generations,
        max_completion_length=max_completion_length,
        # TRL cuts prompts to 512 tokens from the left: it would cut the tools out of a 2-shot prompt.
        max_prompt_length=None,
        temperature=temperature,
    )
    trainer = TextPromptSDFT(
        model=model,
        args=config,
        train_dataset=Dataset.from_list(sdft_rows(records, demo_pool, tokenizer, prompt_spec, shots)),
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
