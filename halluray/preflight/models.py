"""The shape of a model without loading it: tensor shapes from the safetensors headers, sizes from config.json.

A safetensors file starts with 8 bytes (little-endian header length) and a JSON header naming every tensor's
dtype and shape, so reading it costs microseconds and counts parameters exactly, including what a config does
not say (tied embeddings, biases, an architecture we do not know). halluray loads safetensors only
(`use_safetensors=True`), so a stage that runs refuses a model directory without them. A plan needs only the
shapes: without weights they come from config.json, through the model transformers builds on the meta device
(exact for every architecture transformers knows, no memory: importing transformers and the architecture's
modules takes a few seconds, building Llama-2-7B there 0.1 s).
"""

from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from halluray.config import ExperimentConfig, LoRAConfig
from halluray.errors import InputError
from halluray.world.build import make_world, vocabulary_texts

DTYPE_BYTES = {"F64": 8, "I64": 8, "U64": 8, "F32": 4, "I32": 4, "U32": 4, "F16": 2, "BF16": 2, "I16": 2, "U16": 2,
               "F8_E4M3": 1, "F8_E5M2": 1, "I8": 1, "U8": 1, "BOOL": 1}
CONFIG_DTYPE_BYTES = {"float64": 8, "float32": 4, "float16": 2, "bfloat16": 2}
"""Bytes per parameter of config.json's `dtype` (`torch_dtype` before transformers 5), which the weights have."""
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model")
MAX_HEADER_BYTES = 100_000_000
"""safetensors' own limit on the JSON header; a larger length means the file is not safetensors."""
WORD_TOKENIZER_SPECIALS = 3
"""PAD, UNK and EOS, which `train_word_tokenizer` (halluray/models/tokenizer.py) adds to the world's words."""

Shapes = dict[str, tuple[int, ...]]


@dataclass(frozen=True)
class ModelShape:
    """What the memory plan needs to know about one model."""

    where: str
    """Its directory, or what will build it."""
    tensors: Shapes
    stored_bytes: float
    """Bytes per parameter as saved: what `from_pretrained` (dtype "auto") loads for the inference roles."""
    hidden: int | None
    layers: int | None
    vocab: int | None
    context: int | None
    kv_dim: int | None
    """Width of the keys (and of the values) one token caches per layer: hidden x kv heads / heads."""
    logits: bool = True
    """It computes vocabulary logits (a causal LM); False for a backbone with a value head."""

    @property
    def params(self) -> int:
        return sum(math.prod(shape) for shape in self.tensors.values())

    @property
    def head_params(self) -> int:
        """The value head's parameters (`with_value_head`): new, so trained even on a frozen LoRA backbone."""
        return sum(math.prod(shape) for name, shape in self.tensors.items() if name.startswith("value_head."))

    def lora_params(self, lora: LoRAConfig) -> int:
        """Adapter parameters peft adds: r x (in + out) for each 2-D weight of a targeted module."""
        return sum(lora.r * sum(shape) for name, shape in self.tensors.items()
                   if len(shape) == 2 and _targeted(name, lora.target_modules))

    def with_value_head(self) -> ModelShape:
        """The critic's and the scalar RM's model: the backbone (no LM head) and a hidden -> 1 linear head."""
        backbone = {name: shape for name, shape in self.tensors.items() if not name.startswith("lm_head.")}
        head = {"value_head.weight": (1, self.hidden), "value_head.bias": (1,)} if self.hidden else {}
        return replace(self, tensors={**backbone, **head}, logits=False)


def _targeted(tensor: str, targets: list[str]) -> bool:
    """peft's rule: a target matches the module's full name or its last dotted parts."""
    module = tensor.removesuffix(".weight")
    return tensor.endswith(".weight") and any(module == t or module.endswith(f".{t}") for t in targets)


def read_model(path: Path, key: str | None, fix: str, *, weights: bool = True) -> ModelShape:
    """The shape of the Hugging Face model in `path`, or an InputError naming `key` (the config key that
    points there; None for a directory a stage writes) and `fix`. `weights`: a stage will load the model, so
    its safetensors weights and tokenizer must be there; without, config.json alone gives the shapes (a plan)."""
    where = f"{key}: {path}" if key else str(path)
    if not path.is_dir():
        raise InputError(f"{where} does not exist; {fix}")
    config = _config(path, where, fix)
    files = sorted(path.glob("*.safetensors"))
    if weights and not files:
        raise InputError(f"{where} has no *.safetensors weights, and halluray loads only safetensors; re-save the "
                         f"model with save_pretrained(path, safe_serialization=True), or {fix}")
    if weights and not any((path / name).is_file() for name in TOKENIZER_FILES):
        raise InputError(f"{where} has no tokenizer ({', '.join(TOKENIZER_FILES)}); save the model's tokenizer "
                         f"into it with tokenizer.save_pretrained, or {fix}")
    if not files:
        return _shape(f"{path} (config.json only, no weights yet)", _config_tensors(config, where, fix),
                      _config_width(config), config)
    tensors, stored = {}, 0
    for file in files:
        for name, (dtype, shape) in _header(file, where).items():
            tensors[name] = shape
            stored += DTYPE_BYTES.get(dtype, 4) * math.prod(shape)
    n = sum(math.prod(shape) for shape in tensors.values())
    return _shape(str(path), tensors, stored / max(n, 1), config)


def _config_tensors(config: dict, where: str, fix: str) -> Shapes:
    """Every parameter's shape in the causal LM transformers builds from `config` on the meta device, where
    tensors have shapes but no storage. Tied weights are one parameter, as in the safetensors files."""
    # Imported here, not at the top: transformers takes a second or more to import, and every other preflight
    # (every CLI command) must stay fast; only a model directory without weights needs it.
    from transformers import AutoConfig, AutoModelForCausalLM

    try:
        with torch.device("meta"):
            model = AutoModelForCausalLM.from_config(AutoConfig.for_model(**config))
    except (ValueError, KeyError, TypeError) as e:
        # transformers' message goes on to list every architecture it knows: its first sentence says enough
        reason = str(e).split(". ", 1)[0].splitlines()[0]
        raise InputError(f"{where}: transformers cannot build a causal LM from its config.json ({reason}), so its "
                         f"shapes need its *.safetensors weights (their headers); add them, or {fix}") from None
    return {name: tuple(p.shape) for name, p in model.named_parameters()}


def _config_width(config: dict) -> float:
    """Bytes per parameter as saved, from the config's dtype; fp32 (what transformers loads by default) when
    it names none."""
    dtype = str(config.get("dtype") or config.get("torch_dtype") or "float32")
    return CONFIG_DTYPE_BYTES.get(dtype.removeprefix("torch."), 4)


def _config(path: Path, where: str, fix: str) -> dict:
    file = path / "config.json"
    try:
        config = json.loads(file.read_text())
    except FileNotFoundError:
        raise InputError(f"{where} is not a Hugging Face model directory (no config.json); {fix}") from None
    except (ValueError, UnicodeDecodeError) as e:
        raise InputError(f"{where}: config.json is not valid JSON ({e}); {fix}") from None
    if not isinstance(config, dict) or "model_type" not in config:
        raise InputError(f"{where}: config.json has no model_type, so it is not a Hugging Face model config; {fix}")
    return config


def _header(file: Path, where: str) -> dict[str, tuple[str, tuple[int, ...]]]:
    """{tensor name: (dtype, shape)} from a safetensors file's header (the weights are not read)."""
    with file.open("rb") as f:
        raw = f.read(8)
        size = struct.unpack("<Q", raw)[0] if len(raw) == 8 else 0
        try:
            header = json.loads(f.read(size)) if 0 < size <= MAX_HEADER_BYTES else None
        except (ValueError, UnicodeDecodeError):
            header = None
    if not isinstance(header, dict):
        raise InputError(f"{where}: {file.name} is not a safetensors file (unreadable header); re-save the model "
                         f"with save_pretrained(path, safe_serialization=True)")
    return {name: (t["dtype"], tuple(t["shape"])) for name, t in header.items() if name != "__metadata__"}


def _first(config: dict, *keys: str) -> int | None:
    """The first of `keys` the config sets: architectures name the same size differently (GPT-2: n_embd)."""
    return next((config[k] for k in keys if isinstance(config.get(k), int)), None)


def _shape(where: str, tensors: Shapes, stored_bytes: float, config: dict) -> ModelShape:
    hidden = _first(config, "hidden_size", "n_embd", "d_model")
    heads = _first(config, "num_attention_heads", "n_head")
    kv_heads = _first(config, "num_key_value_heads") or heads
    return ModelShape(where, tensors, stored_bytes, hidden, _first(config, "num_hidden_layers", "n_layer"),
                      _first(config, "vocab_size"), _first(config, "max_position_embeddings", "n_positions", "n_ctx"),
                      hidden * kv_heads // heads if hidden and heads and kv_heads else None)


def planned_base_model(cfg: ExperimentConfig) -> ModelShape:
    """The GPT-2 `halluray world` will build from `model.*`, before it exists: its vocabulary is the world's
    words (generated here, milliseconds) plus the tokenizer's special tokens."""
    m = cfg.model
    words = {w for text in vocabulary_texts(make_world(cfg)) for w in text.split()}
    vocab, h = len(words) + WORD_TOKENIZER_SPECIALS, m.n_embd
    # GPT2LMHeadModel's tensors; its LM head is tied to wte, so it is not a tensor of its own.
    tensors: Shapes = {"transformer.wte.weight": (vocab, h), "transformer.wpe.weight": (m.n_positions, h),
                       "transformer.ln_f.weight": (h,), "transformer.ln_f.bias": (h,)}
    layer = {"ln_1.weight": (h,), "ln_1.bias": (h,), "attn.c_attn.weight": (h, 3 * h), "attn.c_attn.bias": (3 * h,),
             "attn.c_proj.weight": (h, h), "attn.c_proj.bias": (h,), "ln_2.weight": (h,), "ln_2.bias": (h,),
             "mlp.c_fc.weight": (h, 4 * h), "mlp.c_fc.bias": (4 * h,), "mlp.c_proj.weight": (4 * h, h),
             "mlp.c_proj.bias": (h,)}
    for i in range(m.n_layer):
        tensors.update({f"transformer.h.{i}.{name}": shape for name, shape in layer.items()})
    config = {"n_embd": h, "n_head": m.n_head, "n_layer": m.n_layer, "vocab_size": vocab, "n_positions": m.n_positions}
    return _shape("the GPT-2 `halluray world` builds from model.*", tensors, 4, config)
