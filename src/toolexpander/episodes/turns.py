"""Multi-turn episodes with a model, in evaluation and in training (`toolexpander.trainer.episodes`):
BFCL's per-turn protocol (its ``inference_multi_turn``) run with our prompts, readers and safe
dispatcher.

For each user turn of a record (`toolexpander.tasks.bfcl_multi_turn`) the turn's messages join the
conversation; a miss_func turn, which has none, offers its held-out functions with BFCL's message
(`bfcl_multi_turn.ADDED_FUNCTIONS_MESSAGE`). Then, step after step, the model is posed the whole
conversation with the tools offered so far (``render``: `toolexpander.prompts.PromptSpec.render`,
the rendering training uses) and its reply is read in the run's call format. A reply with calls has them
executed on the episode's own simulators (`bfcl_multi_turn.simulator_dispatcher`); they join the
conversation as an assistant turn with ``tool_calls`` and one ``tool`` message per result, which
the prompt format renders (the chat template's tool turns in native, ``<tool_response>`` user text
in tooln1). A reply without a call, or whose calls cannot be read, ends the turn, as in BFCL.

Stops: more than `bfcl_multi_turn.MAX_STEPS_PER_TURN` steps with calls in one turn ends the episode
(BFCL's force quit: the checker fails an episode with fewer turns than its ground truth). Ours: a
turn ends once it has made the dispatcher's cap of calls (later ones would not be executed), and
the episode ends when a prompt leaves no room for a reply within the episode's token budget
(``fits``; a server would refuse the prompt); either way it is judged on the calls made so far.

All unfinished episodes are posed together, one batch per step. Each record gets the calls made in
each turn (what a predictions file holds, judged by the checker), the raw replies of each turn, and
why the episode stopped early (None when it ran every turn).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from toolexpander.data.schema import call_turn
from toolexpander.episodes import Dispatcher
from toolexpander.rewards.call_formats import answer_part, parse_calls
from toolexpander.tasks import bfcl_multi_turn

STEP_LIMIT = "step_limit"
EPISODE_TOKENS = "episode_tokens"


@dataclass
class Rollout:
    """One episode in progress: its conversation, the tools offered so far and what it did."""

    record: dict
    dispatcher: Dispatcher
    messages: list[dict] = field(default_factory=list)
    tools: list[dict] = field(default_factory=list)
    turns: list[list[dict]] = field(default_factory=list)  # the calls made in each turn
    replies: list[list[str]] = field(default_factory=list)  # the model's replies in each turn
    steps: int = 0  # steps with calls in the current turn
    stopped: str | None = None
    done: bool = False

    @classmethod
    def start(cls, record: dict) -> Rollout:
        instances = bfcl_multi_turn.start_simulators(record)
        rollout = cls(record, bfcl_multi_turn.simulator_dispatcher(instances), tools=list(record["tools"]))
        rollout.next_turn()
        return rollout

    def next_turn(self) -> None:
        index = len(self.turns)
        if index == len(self.record["turns"]):
            self.done = True
            return
        self.tools += self.record["added_tools"][index]
        added = [{"role": "user", "content": bfcl_multi_turn.ADDED_FUNCTIONS_MESSAGE}]
        self.messages += self.record["turns"][index] or added
        self.dispatcher.new_turn()
        self.steps = 0
        self.turns.append([])
        self.replies.append([])

    def stop(self, reason: str) -> None:
        self.stopped, self.done = reason, True

    def take(self, reply: str, call_format: str) -> None:
        """Go on from the model's ``reply`` to the current step."""
        self.replies[-1].append(reply)
        calls = parse_calls(reply, call_format)
        if not calls:  # no call, or none that can be read: the turn is over
            self.messages.append({"role": "assistant", "content": answer_part(reply).strip()})
            self.next_turn()
            return
        results = self.dispatcher.execute(calls)
        self.turns[-1] += calls
        self.messages += [call_turn(calls), *({"role": "tool", "content": text} for text in results)]
        self.steps += 1
        if self.steps > bfcl_multi_turn.MAX_STEPS_PER_TURN:
            self.stop(STEP_LIMIT)
        elif self.dispatcher.calls_this_turn >= self.dispatcher.max_calls_per_turn:
            self.next_turn()

    def prompt_record(self) -> dict:
        """The record as posed at this step: the conversation so far, the tools offered so far."""
        return {**self.record, "messages": list(self.messages), "tools": list(self.tools)}


def run_episodes(
    records: Sequence[dict],
    generate: Callable[[list[str]], list[str]],
    render: Callable[[dict], str],
    fits: Callable[[str], bool],
    call_format: str,
) -> dict[str, dict]:
    """Run every record's episode (see the module docstring): ``{id: {"turns", "replies",
    "stopped"}}``. ``generate`` maps prompts to replies, ``render`` poses a record (its
    ``messages`` the conversation so far) as prompt text, and ``fits`` tells whether a prompt
    leaves room for a reply in the episode's token budget."""
    rollouts = [Rollout.start(record) for record in records]
    while True:
        posed = []
        for rollout in rollouts:
            if rollout.done:
                continue
            prompt = render(rollout.prompt_record())
            if fits(prompt):
                posed.append((rollout, prompt))
            else:
                rollout.stop(EPISODE_TOKENS)
        if not posed:
            break
        replies = generate([prompt for _, prompt in posed])
        for (rollout, _), reply in zip(posed, replies, strict=True):
            rollout.take(reply, call_format)
    return {
        rollout.record["id"]: {"turns": rollout.turns, "replies": rollout.replies, "stopped": rollout.stopped}
        for rollout in rollouts
    }
