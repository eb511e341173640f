"""`HardSampler`, the framework-free loop the trainer drives, with a simulated multi-process gather."""

import pytest

from toolexpander.hard_sampling.demo_bank import DemoBank
from toolexpander.hard_sampling.policy import HardSampleTracker, ShotSchedule
from toolexpander.hard_sampling.sampler import HardSampler
from toolexpander.prompts import PromptSpec
from toolexpander.tasks.suite import build_suite

G = 4


def make_sampler(use_demos=True, tokenizer=None) -> HardSampler:
    tasks = build_suite(0)["train"][:6]
    bank = DemoBank(tasks, seed=0)
    tracker = HardSampleTracker(ShotSchedule())
    return HardSampler(tasks, tracker, bank, spec=PromptSpec(), tokenizer=tokenizer, use_demos=use_demos)


def rollouts(groups: list[tuple[str, list[int]]]):
    """Flat ids, shots, correctness and texts for groups of (id, correct flags)."""
    ids = [item for item, flags in groups for _ in flags]
    correct = [float(c) for _, flags in groups for c in flags]
    return ids, [0] * len(ids), correct, [f"completion {i}" for i in range(len(ids))]


def test_a_group_split_across_ranks_counts_whole_once_gathered():
    # TRL lays each group's G rollouts out contiguously over the ranks: with 2 rollouts per rank,
    # one group of G=4 straddles rank 0 and rank 1.
    a = build_suite(0)["train"][0]["id"]
    rank0 = rollouts([(a, [0, 1])])
    rank1 = rollouts([(a, [0, 0])])
    gathered = tuple(x + y for x, y in zip(rank0, rank1))  # what accelerate's gather returns, in rank order
    single = make_sampler()
    rows, _ = single.observe(*gathered, num_generations=G, step=1)
    assert [(r["id"], r["successes"], r["hard"]) for r in rows] == [(a, 1, False)]
    # Judged per shard, rank 1 alone would call the item hard although rank 0 solved it once.
    with pytest.raises(ValueError, match="do not split into groups"):
        make_sampler().observe(*rank1, num_generations=G, step=1)


def test_hard_items_get_demonstrations_only_when_the_mode_uses_them(tiny_model_dir):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    for use_demos, expected in ((True, 1), (False, 0)):
        sampler = make_sampler(use_demos, tokenizer)
        item = next(iter(sampler.tasks))
        sampler.observe(*rollouts([(item, [0, 0, 0, 0])]), num_generations=G, step=1)
        assert sampler.shots_for(item) == expected
        assert sampler.prompt_for(item).count("<|im_start|>user") == 1 + expected


def test_correct_rollouts_feed_the_demo_bank_and_state_round_trips():
    sampler = make_sampler()
    first, second = list(sampler.tasks)[:2]
    ids, shots, correct, _ = rollouts([(first, [1, 0, 0, 0])])
    sampler.observe(
        ids, shots, correct, ["<think>x</think><tool_call>[]</tool_call>"] * 4, num_generations=G, step=1
    )
    restored = make_sampler()
    restored.load_state_dict(sampler.state_dict())
    assert restored.state_dict() == sampler.state_dict()
    demos = restored.bank.select(restored.tasks[second], 5)
    assert any(d["kind"] == "rollout" and d["source_id"] == first for d in demos)


def test_mixed_groups_are_rejected():
    sampler = make_sampler()
    a, b = list(sampler.tasks)[:2]
    ids, shots, correct, texts = rollouts([(a, [0, 0]), (b, [0, 0])])
    with pytest.raises(ValueError, match="mix several items"):
        sampler.observe(ids, shots, correct, texts, num_generations=G, step=1)
