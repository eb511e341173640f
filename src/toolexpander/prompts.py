"""Render a task into chat messages: the one prompt for training and evaluation alike.

The output is a list of ``{"role", "content"}`` messages using only the roles
``system``/``user``/``assistant`` in strict alternation after the system turn, so any chat
template (SmolLM2, Qwen2.5, Llama 3, Mistral) accepts it. Tools are written into the system
text as JSON lines inside ``<tools></tools>`` (Tool-N1 style) rather than passed through a
template's own tool syntax, so the model sees the same prompt whatever template renders it.

Few-shot demonstrations become earlier user/assistant turns: SPEC §1 measured that a 135M
model follows turn demos and ignores demos pasted into the system text.

That is prompt format ``tooln1`` (`build_messages`). Prompt format ``native`` (`native_messages`)
poses a task the way the model is served instead: the tokenizer's chat template renders the
task's tools (``tools=``) and the gold calls of demonstrations (structured ``tool_calls``), and
the model answers in its template's own call syntax (`toolexpander.rewards.call_formats`).

A run's prompt settings travel as one `PromptSpec` (style, format, think prefill), saved with the
run; it renders a task to the text a model reads, the tokenizer's chat template applied.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from toolexpander.data.schema import query_text
from toolexpander.files import dumps_json, write_file

PROMPT_STYLES = ("plain", "self_exemplify")
PROMPT_FORMATS = ("tooln1", "native")
# Opens the reply when a run prefills the think block (`PromptSpec.think_prefill`).
THINK_OPEN = "<think>"
# Appended to the chat template of a saved run only (`PromptSpec.save`): a served copy prefills alike.
_PREFILL_SUFFIX = "{%- if add_generation_prompt %}{{- '" + THINK_OPEN + "' }}{%- endif %}"

_INTRO = (
    "You are an expert in composing function calls. You are given a user request and a list of "
    "functions. Decide which functions to call, if any, and with which arguments.\n\n"
    "Here are the available functions, one JSON object per line:\n<tools>\n{tools}\n</tools>\n\n"
)

_FORMAT_PLAIN = (
    "Answer in exactly this format:\n"
    "1. First reason step by step inside <think> </think>.\n"
    "2. Then give the calls as a JSON list inside <tool_call> </tool_call>. A complete answer looks like\n"
    # The example shows the think block too: a 135M model copies it, and skips <think> when it is absent.
    "<think>I call function_name.</think>\n"
    '<tool_call>[{{"name": "function_name", "arguments": {{"argument": "value"}}}}]</tool_call>\n'
    "Use several list items for several calls. Give every argument the type its schema asks for. "
    "If no function fits the request, answer <tool_call>[]</tool_call>."
)

_FORMAT_SELF_EXEMPLIFY = (
    "Answer in exactly this format:\n"
    "1. First think inside <think> </think>. While thinking, write one example of your own: a "
    "similar request and its correct calls, as\n"
    '<example>Query: a similar request\nCall: [{{"name": "function_name", "arguments": {{"argument": "value"}}}}]</example>\n'
    "then analyse what the example teaches about this request.\n"
    "2. Then give the calls for the real request as a JSON list inside <tool_call> </tool_call>, for example\n"
    '<tool_call>[{{"name": "function_name", "arguments": {{"argument": "value"}}}}]</tool_call>\n'
    "Use several list items for several calls. Give every argument the type its schema asks for. "
    "If no function fits the request, answer <tool_call>[]</tool_call>."
)


_NATIVE_INTRO = (
    "You are an expert in composing function calls. You are given a user request and a list of "
    "functions. Decide which functions to call, if any, and with which arguments.\n\n"
)
_NATIVE_CALLS = (
    "call the functions the request needs, in the format the function list asks for, one call per "
    "action. Give every argument the type its schema asks for. If no function fits the request, "
    "say so in plain words and call nothing."
)
_NATIVE_RULES = {
    "plain": "Answer in this order: first reason step by step inside <think> </think>, then " + _NATIVE_CALLS,
    "self_exemplify": (
        "Answer in this order: first think inside <think> </think>. While thinking, write one example "
        "of your own: a similar request and its correct calls, as\n"
        '<example>Query: a similar request\nCall: [{"name": "function_name", "arguments": {"argument": '
        '"value"}}]</example>\nthen analyse what the example teaches about this request. After the '
        "think block, " + _NATIVE_CALLS
    ),
}
# The visible reply of a gold demonstration that makes no call.
NO_CALL_REPLY = "No function fits this request."


def render_tools(tools: Sequence[dict]) -> str:
    """Tools as JSON lines, keys in a stable order."""
    return "\n".join(json.dumps(tool, ensure_ascii=False) for tool in tools)


def system_prompt(tools: Sequence[dict], style: str = "plain") -> str:
    """The system text: intro, tools, format rules."""
    if style not in PROMPT_STYLES:
        raise ValueError(f"unknown prompt style {style!r}; choose one of {', '.join(PROMPT_STYLES)}")
    rules = _FORMAT_PLAIN if style == "plain" else _FORMAT_SELF_EXEMPLIFY
    return _INTRO.format(tools=render_tools(tools)) + rules.format()


def render_calls(calls: Sequence[dict]) -> str:
    """A call list in the target format: ``<tool_call>[...]</tool_call>``."""
    payload = [{"name": c["name"], "arguments": c["arguments"]} for c in calls]
    return f"<tool_call>{json.dumps(payload, ensure_ascii=False)}</tool_call>"


def default_think(calls: Sequence[dict]) -> str:
    """A short reasoning line for gold answers that come without one."""
    # Short: completion budgets are small on CPU, and a long boilerplate cut answers off (SPEC §5).
    if not calls:
        return "No function fits, so I make no call."
    names = ", ".join(dict.fromkeys(c["name"] for c in calls))
    return f"I call {names}."


def render_answer(calls: Sequence[dict], think: str | None = None) -> str:
    """A complete assistant reply: think block, then the calls."""
    return f"<think>{think if think is not None else default_think(calls)}</think>\n{render_calls(calls)}"


def _context_turn(message: dict) -> dict:
    """Map a context message to a template-safe role: tool results become user text, an assistant
    turn's ``tool_calls`` are written after its text in the target format."""
    role, content = message["role"], message["content"]
    if message.get("tool_calls") is not None:
        content = "\n".join(filter(None, [content, render_calls(message["tool_calls"])]))
    if role == "tool":
        return {"role": "user", "content": f"<tool_response>\n{content}\n</tool_response>"}
    return {"role": role, "content": content}


def _merge_same_role(messages: list[dict]) -> list[dict]:
    """Join consecutive turns of one role: several templates require strict alternation."""
    merged: list[dict] = []
    for message in messages:
        if merged and merged[-1]["role"] == message["role"]:
            merged[-1] = {
                "role": message["role"],
                "content": merged[-1]["content"] + "\n\n" + message["content"],
            }
        else:
            merged.append(dict(message))
    return merged


# Llama 3.2's chat template writes today's date into the system turn (`strftime_now`), so a prompt
# rendered for training and the same one rendered for evaluation a day later would differ. Every
# render passes this date instead: the one Llama 3.1's template falls back to. Templates without a
# date ignore it.
RENDER_DATE = "26 Jul 2024"


def _template_opening(tokenizer) -> str:
    """``<think>`` (with any whitespace after it) when the chat template's generation prompt opens the
    think block itself, as DeepSeek-R1's template and a run saved with `think_prefill` do; else ""."""
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "x"}], tokenize=False, add_generation_prompt=True, date_string=RENDER_DATE
    )
    opened = prompt.rstrip()
    return prompt[opened.rfind(THINK_OPEN) :] if opened.endswith(THINK_OPEN) else ""


def build_messages(task: dict, *, style: str = "plain", demos: Sequence[dict] = ()) -> list[dict]:
    """The chat messages that pose ``task`` to the model.

    ``demos`` are demonstrations ``{"query": str, "completion": str}`` (see
    `toolexpander.hard_sampling.demo_bank`), shown as earlier user/assistant turns before
    the task's own context. The task's own system turns are appended to our system text.

    >>> task = {"messages": [{"role": "user", "content": "Weather in Paris?"}],
    ...         "tools": [{"name": "get_weather", "parameters": {"type": "object"}}]}
    >>> [m["role"] for m in build_messages(task, demos=[{"query": "q", "completion": "c"}])]
    ['system', 'user', 'assistant', 'user']
    """
    own_system = [m["content"] for m in task["messages"] if m["role"] == "system"]
    system = "\n\n".join([system_prompt(task["tools"], style), *own_system])
    turns: list[dict] = []
    for demo in demos:
        turns += [
            {"role": "user", "content": demo["query"]},
            {"role": "assistant", "content": demo["completion"]},
        ]
    turns += [_context_turn(m) for m in task["messages"] if m["role"] != "system"]
    return [{"role": "system", "content": system}, *_merge_same_role(turns)]


def gold_demo(task: dict, think: str | None = None) -> dict:
    """A demonstration made from a task's gold answer: its ``completion`` in our format, and the
    ``calls`` and ``think`` a native prompt renders through the chat template."""
    think = default_think(task["answer"]) if think is None else think
    return {
        "query": query_text(task),
        "completion": render_answer(task["answer"], think),
        "calls": task["answer"],
        "think": think,
    }


def tool_schemas(tools: Sequence[dict]) -> list[dict]:
    """Tools as chat templates and OpenAI-compatible servers take them."""
    return [{"type": "function", "function": tool} for tool in tools]


def template_call_format(chat_template: str | None) -> str | None:
    """The call format (`toolexpander.rewards.call_formats`) a chat template writes calls in, or
    None when it writes none we read.

    >>> template_call_format("... <tool_call>\\n{{ tool_call.name }} ...")
    'hermes'
    """
    if not chat_template:
        return None
    if "<tool_call>" in chat_template:
        return "hermes"
    if "<|start_header_id|>" in chat_template and '"parameters"' in chat_template:
        return "llama3_json"
    return None


def native_call_format(tokenizer) -> str:
    """The call format the tokenizer's chat template writes (`template_call_format`); ValueError
    when it writes none we can read."""
    call_format = template_call_format(tokenizer.chat_template)
    if call_format is None:
        raise ValueError(
            "prompt_format native needs a chat template that renders tool calls as Hermes "
            "<tool_call> blocks (Qwen) or Llama 3.x JSON; this one does not: use prompt_format tooln1"
        )
    return call_format


def _native_demo_turn(demo: dict, call_format: str) -> dict:
    calls = demo.get("calls")
    if calls is None:  # the policy's own rollout: its reply as it wrote it
        return {"role": "assistant", "content": demo["completion"]}
    think = f"{THINK_OPEN}{demo['think']}</think>\n"
    if not calls:
        return {"role": "assistant", "content": think + NO_CALL_REPLY}
    if call_format == "llama3_json":
        # Llama 3.x templates take one structured call per turn and drop the text beside it.
        return {"role": "assistant", "content": think + llama_calls_text(calls)}
    return {"role": "assistant", "content": think.rstrip(), "tool_calls": _structured(calls)}


def llama_calls_text(calls: Sequence[dict]) -> str:
    """Calls as a Llama 3.x reply writes them (JSON objects joined by "; ", which vLLM's
    ``llama3_json`` parser and ours read back)."""
    return "; ".join(json.dumps({"name": c["name"], "parameters": c["arguments"]}) for c in calls)


def _structured(calls: Sequence[dict]) -> list[dict]:
    """Calls as chat templates take them (OpenAI's shape; Llama 3.x templates read ``function``)."""
    return [{"type": "function", "function": {"name": c["name"], "arguments": c["arguments"]}} for c in calls]


def _native_context_turn(message: dict, call_format: str) -> dict:
    calls = message.get("tool_calls")
    if calls is None:
        return dict(message)
    if call_format == "llama3_json" and len(calls) > 1:
        # Llama 3.x templates refuse a message with several structured calls: they go as the text the
        # model wrote them in, and their results follow as the template's tool (ipython) turns.
        return {"role": "assistant", "content": (message.get("content") or "") + llama_calls_text(calls)}
    return {**message, "tool_calls": _structured(calls)}


def native_messages(
    task: dict, *, style: str = "plain", demos: Sequence[dict] = (), call_format: str = "hermes"
) -> list[dict]:
    """The chat that poses ``task`` in prompt format native, its tools left to the template.

    Gold demonstrations answer with structured ``tool_calls``, rollouts with their own text; the
    task's context messages keep their roles (the template renders tool results its own way) and
    their earlier calls go to the template as structured ``tool_calls`` too.
    """
    if style not in PROMPT_STYLES:
        raise ValueError(f"unknown prompt style {style!r}; choose one of {', '.join(PROMPT_STYLES)}")
    own_system = [m["content"] for m in task["messages"] if m["role"] == "system"]
    system = "\n\n".join([_NATIVE_INTRO + _NATIVE_RULES[style], *own_system])
    turns: list[dict] = []
    for demo in demos:
        turns += [{"role": "user", "content": demo["query"]}, _native_demo_turn(demo, call_format)]
    turns += [_native_context_turn(m, call_format) for m in task["messages"] if m["role"] != "system"]
    return [{"role": "system", "content": system}, *turns]


# Written next to a trained model: how it was prompted, so evaluation poses it the same way.
RUN_PROMPT_FILE = "toolexpander_prompt.json"


@dataclass(frozen=True)
class PromptSpec:
    """How a run poses its tasks: the prompt ``style`` (`PROMPT_STYLES`), the ``prompt_format``
    (`PROMPT_FORMATS`, which fixes how replies write calls: `call_format`) and ``think_prefill``
    (the reply opens inside the think block: a 135M model otherwise often skips it and loses a
    correct call to the format check, SPEC §5). Built once per run, saved with it (`save`, `load`)
    and handed to whatever renders or scores its prompts. The tokenizer is only read, never edited.

    >>> PromptSpec("self_exemplify", think_prefill=True).call_format()
    'tooln1'
    """

    style: str = "plain"
    prompt_format: str = "tooln1"
    think_prefill: bool = False

    def __post_init__(self):
        if self.style not in PROMPT_STYLES:
            raise ValueError(f"unknown prompt style {self.style!r}; choose one of {', '.join(PROMPT_STYLES)}")
        if self.prompt_format not in PROMPT_FORMATS:
            raise ValueError(
                f"unknown prompt format {self.prompt_format!r}; choose one of {', '.join(PROMPT_FORMATS)}"
            )

    def call_format(self, tokenizer=None) -> str:
        """How replies write their calls (`toolexpander.rewards.call_formats`): tooln1's own; in native
        the one ``tokenizer``'s chat template writes (`native_call_format`), or without a tokenizer
        "native" (each reply tells its family)."""
        if self.prompt_format == "tooln1":
            return "tooln1"
        return "native" if tokenizer is None else native_call_format(tokenizer)

    def render(
        self, tokenizer, task: dict, demos: Sequence[dict] = (), *, add_generation_prompt: bool = True
    ) -> str:
        """The text that poses ``task`` (``demos`` as earlier turns): ``tokenizer``'s chat template
        applied to `build_messages` (tooln1) or to `native_messages` with the task's tools (native,
        as a server renders the request), generation prompt included, then ``<think>`` when
        prefilled (`reply_prefill`). It holds any BOS token the template writes, so it is
        tokenised without special tokens. Without ``add_generation_prompt``: the conversation as
        it stands (no generation prompt, no prefill), which episode rollouts extend."""
        if self.prompt_format == "tooln1":
            messages, tools = build_messages(task, style=self.style, demos=demos), None
        else:
            call_format = self.call_format(tokenizer)
            messages = native_messages(task, style=self.style, demos=demos, call_format=call_format)
            tools = tool_schemas(task["tools"])
        text = tokenizer.apply_chat_template(
            messages,
            tools=tools,
            add_generation_prompt=add_generation_prompt,
            tokenize=False,
            date_string=RENDER_DATE,
        )
        return text + self._added_prefill(tokenizer) if add_generation_prompt else text

    def reply_prefill(self, tokenizer) -> str:
        """The opening of the reply that a rendered prompt already holds: the template's own think
        opening, else ``<think>`` when prefilled, else "". Scoring puts it back in front of the
        generated text."""
        return _template_opening(tokenizer) or self._added_prefill(tokenizer)

    def _added_prefill(self, tokenizer) -> str:
        # A template that opens the think block itself (R1, a saved prefilled run) gets no second one.
        return THINK_OPEN if self.think_prefill and not _template_opening(tokenizer) else ""

    def save(self, folder: str | Path, tokenizer=None) -> None:
        """Record the spec in ``folder`` (a saved model) for `load`. With ``tokenizer`` and a prefill
        to add, also save a copy of it whose chat template writes ``<think>`` after the generation
        prompt, so that a served copy (``vllm serve``) prefills as training did."""
        payload = {
            "prompt_style": self.style,
            "think_prefill": self.think_prefill,
            "prompt_format": self.prompt_format,
        }
        write_file(Path(folder) / RUN_PROMPT_FILE, dumps_json(payload, indent=2) + "\n")
        if tokenizer is not None and self._added_prefill(tokenizer):
            served = copy.copy(tokenizer)  # the caller's tokenizer keeps its own template
            served.chat_template = tokenizer.chat_template + _PREFILL_SUFFIX
            served.save_pretrained(folder)

    @classmethod
    def load(cls, folder: str | Path) -> PromptSpec | None:
        """The spec `save` wrote in ``folder``; None when it is not a folder we saved. Keys left
        out take their defaults."""
        path = Path(folder) / RUN_PROMPT_FILE
        if not path.is_file():
            return None
        saved = json.loads(path.read_text(encoding="utf-8"))
        return cls(
            style=saved.get("prompt_style", "plain"),
            prompt_format=saved.get("prompt_format", "tooln1"),
            think_prefill=saved.get("think_prefill", False),
        )
