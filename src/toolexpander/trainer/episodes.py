"""Multi-turn episodes as GRPO rollouts (issue 25, SPEC §10): a BFCL multi-turn record is a training
item, and one rollout is one whole episode on that rollout's own simulators.

Why TRL's ``rollout_func`` and not its ``tools=`` / ``environment_factory``: TRL's tool loop
(``_tool_call_loop``) continues one user turn (reply, tool results, reply ...) and cannot pose a
next user turn; our episodes have several. ``rollout_func`` hands the whole rollout to us and takes
back ``prompt_ids``, ``completion_ids``, ``logprobs`` and an ``env_mask``, which TRL uses as its
``tool_mask`` (0: out of the loss) and reward columns (``turns_valid`` here). The turn protocol is
the evaluation's (`toolexpander.episodes.turns.Rollout`: reading replies in the run's call
format, the safe dispatcher, BFCL's step limit and the cap on calls per turn), so training and
`toolexpander eval` play an episode alike.

The token stream of an episode (`EpisodeRunner`): the prompt is the first turn as `PromptSpec`
renders it (after any demonstration episodes); then each reply's own tokens (mask 1), then what
comes back (tool results, the next user turn, the next generation prompt; mask 0) as the chat
template renders it. Like TRL's ``_get_tool_suffix_ids``, that suffix is the text the template adds
after the reply's end-of-turn token (``eos_token``), so the next step is generated from exactly the
tokens the loss sees (the evaluation instead re-renders the whole conversation each step). A
template that rewrites earlier turns when one is added (the suffix is not an extension) is refused.
Stops: a reply cut by ``max_completion_length`` (no end of turn: nothing can follow it), BFCL's
step limit, or a next step that would pass ``max_episode_tokens`` (prompt, episode so far and one
more reply); an episode that stops is judged on the calls made so far.

Reward (`EPISODE_REWARDS`): ``all_turns`` is 1 iff BFCL's per-turn verdict
(`toolexpander.tasks.bfcl_multi_turn.check_episode`, equal to the official checker's) passes on
every turn; ``turn_share`` (ours, not BFCL's) is the share of passed turns. Both are 1.0 only for a
fully correct episode, which is what hardness is judged on.

Demonstration episodes (`EpisodeDemoBank`): a hard item is posed after the gold trajectories of
other items on the same simulator classes (each: its user turns, its ground-truth calls with their
results from fresh simulators, and a closing reply per turn), graded and faded by the hard-sampling
policy like single-call demonstrations; carry-over then trains the episode under the bare prompt.

Not served (refused where a run would meet it): miss_func items (tools added mid-episode would
rewrite the prompt's start), a mix of episodes and single replies, the self-exemplify bonus (it
scores one reply), TRL's in-training evaluation (use ``toolexpander eval``). ``max_completion_length``
bounds each reply, so ``loss_type=dr_grpo``, which divides by it, weighs long episodes more.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from toolexpander.data.schema import call_turn, task_name
from toolexpander.episodes.turns import EPISODE_TOKENS, Rollout
from toolexpander.prompts import PromptSpec, render_calls
from toolexpander.tasks import bfcl_multi_turn

TRUNCATED = "truncated"
# The closing reply of each turn of a demonstration episode (a reply without a call ends a turn).
NATIVE_TURN_END = "Done."

# Token ids to generate from -> per prompt, the reply's ids and their sampling log-probs (or None).
Generate = Callable[[list[list[int]]], tuple[list[list[int]], list[list[float]] | None]]


def all_turns(completions, turns_valid, **kwargs) -> list[float]:
    """1 iff every turn of the episode passes BFCL's verdict."""
    return [float(all(valid)) for valid in turns_valid]


def turn_share(completions, turns_valid, **kwargs) -> list[float]:
    """The share of the episode's turns that pass BFCL's verdict (ours: a partial reward)."""
    return [sum(valid) / len(valid) for valid in turns_valid]


EPISODE_REWARDS = {func.__name__: func for func in (all_turns, turn_share)}


def is_episode_run(records: Sequence[dict]) -> bool:
    """Whether ``records`` are BFCL multi-turn episodes to train on; ValueError when a run cannot
    train on them."""
    kinds = {task_name(record) == bfcl_multi_turn.NAME for record in records}
    if len(kinds) > 1:
        raise ValueError(f"a run trains on {bfcl_multi_turn.NAME} episodes or on single replies, not both")
    changing = next((r["id"] for r in records if kinds == {True} and any(r["added_tools"])), None)
    if changing is not None:
        # The tools are rendered at the top of the prompt: adding some would rewrite the episode's start.
        raise ValueError(
            f"episode {changing!r} offers new tools mid-episode (miss_func), which training cannot pose"
        )
    return kinds == {True}


@dataclass
class EpisodeOutput:
    """One rollout: its prompt, its completion (every token after the prompt), which completion
    tokens the model wrote (1) or the environment did (0), the sampling log-probs of the model's
    tokens (None elsewhere, or no list when generation gives none), its verdict per turn."""

    prompt_ids: list[int]
    completion_ids: list[int] = field(default_factory=list)
    env_mask: list[int] = field(default_factory=list)
    logprobs: list[float | None] = field(default_factory=list)
    turns_valid: list[bool] = field(default_factory=list)
    stopped: str | None = None


class EpisodeRunner:
    """Plays episodes as token streams (see the module docstring)."""

    def __init__(self, spec: PromptSpec, tokenizer, *, max_reply_tokens: int, max_episode_tokens: int):
        self.spec, self.tokenizer = spec, tokenizer
        self.call_format = spec.call_format(tokenizer)
        self.prefill = spec.reply_prefill(tokenizer)  # the reply's opening the prompt already holds
        self.max_reply_tokens, self.max_episode_tokens = max_reply_tokens, max_episode_tokens

    def _ids(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def _suffix(self, rollout: Rollout, before: int) -> str:
        """What the template writes after the reply (the first message added since ``before``) up to
        the next generation prompt."""
        record = rollout.prompt_record()
        replied = {**record, "messages": record["messages"][: before + 1]}
        head = self.spec.render(self.tokenizer, replied, add_generation_prompt=False)
        full = self.spec.render(self.tokenizer, record)
        if not full.startswith(head):
            raise ValueError(
                "the chat template rewrites earlier turns when a turn is added (e.g. it drops earlier "
                "think blocks), so an episode cannot be trained as one token stream"
            )
        eos = self.tokenizer.eos_token
        end = head.rfind(eos) if eos else -1
        return full[end + len(eos) if end >= 0 else len(head) :]

    def run(
        self, records: Sequence[dict], prefixes: Sequence[list[dict]], generate: Generate, eos_ids: set[int]
    ) -> list[EpisodeOutput]:
        """One episode per record, ``prefixes`` (demonstration messages) before its first turn."""
        rollouts = []
        for record, prefix in zip(records, prefixes, strict=True):
            rollout = Rollout.start(record)
            rollout.messages[:0] = prefix
            rollouts.append(rollout)
        outputs = [
            EpisodeOutput(self._ids(self.spec.render(self.tokenizer, r.prompt_record()))) for r in rollouts
        ]
        active = list(range(len(rollouts)))
        while active:
            replies, logprobs = generate([outputs[i].prompt_ids + outputs[i].completion_ids for i in active])
            going = []
            for j, (i, reply) in enumerate(zip(active, replies, strict=True)):
                rollout, out = rollouts[i], outputs[i]
                out.completion_ids += reply
                out.env_mask += [1] * len(reply)
                out.logprobs += logprobs[j] if logprobs is not None else [None] * len(reply)
                if not reply or reply[-1] not in eos_ids:
                    rollout.stop(TRUNCATED)
                    continue
                before = len(rollout.messages)
                text = self.tokenizer.decode(reply, skip_special_tokens=True)
                rollout.take(self.prefill + text, self.call_format)
                if rollout.done:
                    continue
                suffix = self._ids(self._suffix(rollout, before))
                length = len(out.prompt_ids) + len(out.completion_ids) + len(suffix) + self.max_reply_tokens
                if length > self.max_episode_tokens:
                    rollout.stop(EPISODE_TOKENS)
                    continue
                out.completion_ids += suffix
                out.env_mask += [0] * len(suffix)
                out.logprobs += [None] * len(suffix)
                going.append(i)
            active = going
        for rollout, out in zip(rollouts, outputs, strict=True):
            out.turns_valid = bfcl_multi_turn.check_episode(rollout.record, rollout.turns)["turns_valid"]
            out.stopped = rollout.stopped
        return outputs


def gold_trajectory(record: dict, call_format: str) -> list[dict]:
    """``record``'s episode as its ground truth plays it, as chat messages: per turn its user
    messages, its calls with their results (fresh simulators, the safe dispatcher), a closing reply."""
    dispatcher = bfcl_multi_turn.simulator_dispatcher(bfcl_multi_turn.start_simulators(record))
    closing = render_calls([]) if call_format == "tooln1" else NATIVE_TURN_END
    messages = []
    for turn, calls in zip(record["turns"], record["ground_truth"], strict=True):
        dispatcher.new_turn()
        messages += turn or [{"role": "user", "content": bfcl_multi_turn.ADDED_FUNCTIONS_MESSAGE}]
        if calls:
            messages.append(call_turn(calls))
            messages += [{"role": "tool", "content": text} for text in dispatcher.execute(calls)]
        messages.append({"role": "assistant", "content": closing})
    return messages


class EpisodeDemoBank:
    """Demonstration episodes for `toolexpander.hard_sampling.HardSampler`: for a record, the gold
    trajectories (`gold_trajectory`) of other records with the same simulator classes, in an order
    drawn from ``seed``. Only gold: the policy's correct episodes are not kept as demonstrations."""

    def __init__(self, records: Sequence[dict], *, call_format: str, seed: int = 0):
        order = list(records)
        random.Random(seed).shuffle(order)
        self._by_classes: dict[frozenset, list[dict]] = defaultdict(list)
        for record in order:
            self._by_classes[frozenset(record["involved_classes"])].append(record)
        self.call_format = call_format
        self._trajectories: dict[str, list[dict]] = {}

    def select(self, task: dict, k: int) -> list[list[dict]]:
        """Up to ``k`` demonstration episodes (each a message list) for ``task``."""
        others = [r for r in self._by_classes[frozenset(task["involved_classes"])] if r["id"] != task["id"]]
        return [self._trajectory(record) for record in others[:k]]

    def _trajectory(self, record: dict) -> list[dict]:
        if record["id"] not in self._trajectories:
            self._trajectories[record["id"]] = gold_trajectory(record, self.call_format)
        return self._trajectories[record["id"]]

    def add_rollout(self, item_id: str, completion: str) -> None:
        """Nothing to keep: demonstration episodes are gold trajectories only."""

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        """Stateless: built again from the records."""
