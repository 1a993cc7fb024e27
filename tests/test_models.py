import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from halluray.config import build_config
from halluray.models.build import build_gpt2, load_model, save_model
from halluray.models.generation import continuation_logprobs, sample
from halluray.models.optim import warmup_cosine
from halluray.models.pretrain import pack_documents, pretrain, uses_bf16
from halluray.models.tokenizer import train_word_tokenizer
from halluray.world.build import build_corpus, vocabulary_texts
from halluray.world.corpus import reference_bio

TINY = ["model.n_layer=1", "model.n_embd=32", "model.n_head=2", "model.n_positions=64"]


def _tiny(world, **pretrain):
    cfg = build_config({}, TINY + ["world.num_people=60"] + [f"model.pretrain.{k}={v}" for k, v in pretrain.items()])
    corpus = build_corpus(cfg, world)
    tok = train_word_tokenizer(list(vocabulary_texts(world)) + corpus)
    return cfg, corpus, tok, build_gpt2(cfg.model, tok, seed=0)


def test_tokenizer_gives_each_word_one_token_and_round_trips(world):
    _, corpus, tok, _ = _tiny(world)
    text = reference_bio(world.people[0])
    ids = tok(text)["input_ids"]
    assert len(ids) == len(text.split()) and tok.unk_token_id not in ids
    assert tok.decode(ids) == text
    assert all(tok.unk_token_id not in ids for ids in tok(corpus[:50])["input_ids"])


def test_model_and_tokenizer_round_trip_through_from_pretrained(world, tmp_path):
    _, _, tok, model = _tiny(world)
    save_model(model, tok, tmp_path / "m")
    assert (tmp_path / "m" / "model.safetensors").is_file()
    model2 = AutoModelForCausalLM.from_pretrained(tmp_path / "m")
    tok2 = AutoTokenizer.from_pretrained(tmp_path / "m")
    text = reference_bio(world.people[1])
    assert tok2(text)["input_ids"] == tok(text)["input_ids"]
    ids = torch.tensor([tok(text)["input_ids"]])
    model.eval()
    torch.testing.assert_close(model2(ids).logits, model(ids).logits)
    loaded, _ = load_model(tmp_path / "m")
    assert not loaded.training


def test_warmup_cosine_schedule():
    assert warmup_cosine(0, 4, 12) == 0.25
    assert warmup_cosine(3, 4, 12) == 1.0
    assert abs(warmup_cosine(8, 4, 12) - 0.5) < 1e-12
    assert abs(warmup_cosine(12, 4, 12)) < 1e-12


def test_pack_documents_separates_with_eos(world):
    _, _, tok, _ = _tiny(world)
    blocks = pack_documents(tok, ["Zapur sent a letter .", "I do not know ."] * 4, 8)
    assert blocks.shape == (6, 8)  # 8 docs x 6 tokens (incl. EOS) = 48 tokens
    assert blocks[0, 5].item() == tok.eos_token_id


def test_pretraining_lowers_loss(world):
    cfg, corpus, tok, model = _tiny(world, steps=100, batch_size=8, warmup_steps=5, lr=0.01)
    losses = pretrain(model, tok, corpus, cfg.model.pretrain, seed=0)
    assert sum(losses[-5:]) / 5 < 0.6 * sum(losses[:5]) / 5


def test_bf16_pretraining_learns_as_fp32_does_and_keeps_fp32_weights(world):
    cfg, corpus, tok, model = _tiny(world, steps=60, batch_size=8, warmup_steps=5, lr=0.01)
    fp32 = pretrain(model, tok, corpus, cfg.model.pretrain, seed=0)
    _, _, _, model = _tiny(world)
    bf16 = pretrain(model, tok, corpus, cfg.model.pretrain.model_copy(update={"precision": "bf16"}), seed=0)
    assert bf16[0] != fp32[0]  # the forward ran in bf16
    assert abs(sum(bf16[-5:]) - sum(fp32[-5:])) / sum(fp32[-5:]) < 0.05
    assert {p.dtype for p in model.parameters()} == {torch.float32}


@pytest.mark.parametrize("avx512_bf16, amx, expected",
                         [(True, False, True), (False, True, True), (False, False, False)])
def test_auto_precision_pretrains_in_bf16_only_on_a_cpu_that_computes_it(monkeypatch, avx512_bf16, amx, expected):
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx)
    assert uses_bf16("auto", "cpu") is expected
    assert uses_bf16("bf16", "cpu") and not uses_bf16("fp32", "cpu")


def test_sampling_is_seeded_and_logprobs_sum_tokens(world):
    _, _, tok, model = _tiny(world)
    prompts = ["Write a biography for " + p.name + " ." for p in world.people[:3]]
    a = sample(model, tok, prompts, max_new_tokens=5, seed=1)
    assert a == sample(model, tok, prompts, max_new_tokens=5, seed=1) and len(a) == 3
    # Batched, padded scoring equals one-at-a-time scoring.
    conts = ["Perth", "was born in 1964", "I do not know ."]
    batched = continuation_logprobs(model, tok, prompts, conts)
    single = [continuation_logprobs(model, tok, [p], [c])[0] for p, c in zip(prompts, conts)]
    assert torch.allclose(torch.tensor(batched), torch.tensor(single), atol=1e-5)
