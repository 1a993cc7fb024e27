"""The text two-stage reward model (paper §5): the decomposer's fact lists, the training examples both LMs get
from reward data, and a real `train-rm` run (`reward_model.kind=two-stage-text`) whose saved RM scores text."""

import json
import random

import pytest
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import AutoTokenizer, PreTrainedTokenizerFast

from halluray.config import build_config
from halluray.factuality.reward_functions import RewardScheme
from halluray.io import write_jsonl
from halluray.layout import RunLayout
from halluray.models.heads import ClaimBeliefVerifier, claim_tensors
from halluray.pipeline import train_rm
from halluray.reward_models.data import label_responses
from halluray.reward_models.models import (
    CopyOnly,
    TextDecomposer,
    TextTwoStageRewardModel,
    TwoStageRewardModel,
    load_reward_model,
)
from halluray.reward_models.text import (
    FactLines,
    capitalised_words,
    decomposer_examples,
    fact_set_scores,
    recombined_examples,
    stated_facts,
    text_verifier_examples,
)
from halluray.world.checker import ExactChecker
from halluray.world.templates import ABSTAIN_BIO, MENTION_TEMPLATES, bio_prompt, render_fact
from tests.conftest import TINY


def byte_level_tokenizer() -> PreTrainedTokenizerFast:
    """A GPT-2-style byte-level BPE (it keeps newlines), trained here: no hub access in tests."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(["Response: Paris is in France.\nFacts:\n- fact one\n"],
                            trainers.BpeTrainer(initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                                special_tokens=["<eos>"]))
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<eos>", pad_token="<eos>")


def test_decomposer_lists_facts_one_per_line_on_real_text():
    lines = FactLines.for_tokenizer(byte_level_tokenizer())
    assert lines.format(["Paris is in France", "It is big"]) == "- Paris is in France\n- It is big\n"
    # sft_tensors puts a space before the target; a repeated fact counts once; a cut-off last line still counts.
    assert lines.parse(" - Paris is in France\n- It is big\n- Paris is in France\n- It has") == \
        ["Paris is in France", "It is big", "It has"]
    assert lines.parse(" ") == []


def test_decomposer_ends_facts_with_a_period_on_the_worlds_word_tokenizer(tiny_model_dir):
    lines = FactLines.for_tokenizer(AutoTokenizer.from_pretrained(tiny_model_dir))
    target = lines.format(["Zapur comes from Perth", "Zapur enjoys chess"])
    assert target.split() == "Zapur comes from Perth . Zapur enjoys chess .".split()
    assert lines.parse("Zapur comes from Perth . Zapur enjoys chess . Zapur comes from Perth .") == [
        "Zapur comes from Perth", "Zapur enjoys chess"]


def test_copy_only_decomposer_writes_nothing_but_the_responses_own_words(tiny_model_dir):
    scores = torch.zeros(2, 5)
    masked = CopyOnly([{0, 3}, {4}], vocab_size=5)(torch.zeros(2, 1, dtype=torch.long), scores)
    assert torch.isfinite(masked).tolist() == [[True, False, False, True, False], [False] * 4 + [True]]
    # The tiny model's random weights write no fact unconstrained; copying, they write the response's words.
    responses = ["Zapur comes from Perth .", "In 1964 , Zapur was born . Zapur enjoys chess ."]
    copying = TextDecomposer(tiny_model_dir, torch.device("cpu"), False, max_new_tokens=12, max_length=64,
                             copy_only=True)
    written = copying(responses)
    assert all(written)
    for response, facts in zip(responses, written):
        assert set(" ".join(facts).split()) <= set(response.split())


def _record(response, facts, unverifiable=()):
    return {"topic": "Zapur", "prompt": bio_prompt("Zapur"), "response": response, "facts": facts,
            "unverifiable": list(unverifiable)}


def test_training_examples_leave_out_abstentions_and_unverifiable_labels():
    stating = _record("Zapur enjoys chess . Zapur attended the meeting . Zapur comes from Perth .",
                      [["Zapur comes from Perth", "Perth", "true"], ["Zapur enjoys chess", "chess", "false"]],
                      unverifiable=["Zapur attended the meeting"])
    empty = _record("Zapur attended the meeting .", [])
    abstaining = _record(ABSTAIN_BIO, [])
    # The decomposer's target: every stated fact, unverifiable ones too, in the order of the response.
    assert stated_facts(stating) == ["Zapur enjoys chess", "Zapur attended the meeting", "Zapur comes from Perth"]
    assert decomposer_examples([stating, empty, abstaining]) == [(stating["response"], stated_facts(stating)),
                                                                 (empty["response"], [])]
    prompt = bio_prompt("Zapur")
    assert text_verifier_examples([stating, empty, abstaining]) == [
        ((prompt, "Zapur comes from Perth"), 1.0), ((prompt, "Zapur enjoys chess"), 0.0)]


def test_fact_set_scores():
    scores = fact_set_scores([["a", "b"], [], ["a"]], [["b", "a"], [], ["a", "c"]])
    assert scores == {"exact_match": pytest.approx(2 / 3), "f1": pytest.approx((1 + 1 + 2 / 3) / 3)}


def reward_data(world, seed=0) -> list[dict]:
    """Bios of 1-2 facts, labeled by the exact checker. Separable by construction: a stated birth city is
    always right and a stated hobby always wrong, so a verifier can learn the labels from the text alone."""
    rng = random.Random(seed)
    records, responses = [], []
    for person in world.people:
        for _ in range(2):
            other = next(p for p in rng.sample(world.people, 3) if p.facts["hobby"] != person.facts["hobby"])
            sentences = [render_fact(person.name, "birth_city", person.facts["birth_city"], rng.randrange(3)),
                         render_fact(person.name, "hobby", other.facts["hobby"])]
            rng.shuffle(sentences)
            kind = rng.random()
            if kind < 0.1:
                response = ABSTAIN_BIO
            elif kind < 0.2:
                response = rng.choice(MENTION_TEMPLATES).format(name=person.name)  # no fact at all
            else:
                response = " ".join(sentences[:rng.randint(1, 2)])
            records.append({"topic": person.name, "prompt": bio_prompt(person.name), "target": ""})
            responses.append(response)
    return label_responses(ExactChecker(world), records, responses, RewardScheme())


def train_rm_on(tmp_path, world, model_dir, kind: str, *overrides: str) -> tuple[dict, RunLayout]:
    """`halluray train-rm` on one reward-trainer rank, on `reward_data(world)`."""
    cfg = build_config({}, TINY + [
        f"run.output_dir={tmp_path}", "run.name=rm", f"model.pretrained_path={model_dir}",
        "logging.wandb_mode=disabled", "actors.reward_trainer.num_actors=1", f"reward_model.kind={kind}",
        "reward_model.batch_size=16", "reward_model.lr=3e-3", "reward_model.head_lr=3e-2",
        "reward_model.warmup_steps=0", "reward_model.epochs=3", *overrides])
    layout = RunLayout(cfg)
    write_jsonl(layout.reward_data(), reward_data(world))
    return train_rm.run(cfg), layout


def test_train_rm_text_two_stage_scores_text_and_beats_chance(ray_cluster, tmp_path, world, tiny_model_dir):
    meta, layout = train_rm_on(tmp_path, world, tiny_model_dir, "two-stage-text",
                               "reward_model.decomposer_epochs=60", "reward_model.decomposer_lr=1e-2",
                               "reward_model.decomposer_max_new_tokens=16")

    out = layout.rm_dir()
    assert json.loads((out / "rm.json").read_text()) == meta
    assert meta["kind"] == "two-stage-text" and meta["max_length"] == 64  # the tiny model's context
    # Both stages learned: the decomposer copies facts out of held-out responses (a 2-layer, 32-wide model
    # learns names slowly), the verifier separates them.
    assert meta["decomposer_val_f1"] >= 0.4 and meta["decomposer_val_exact_match"] >= 0.4
    assert meta["val_accuracy"] >= 0.8
    assert not [p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}")]  # no temp dirs left
    rm = load_reward_model(out)
    assert isinstance(rm, TextTwoStageRewardModel)

    # The verifier, on facts it was not trained on (the other half of the world's cities and hobbies).
    held_out = reward_data(world, seed=1)
    items = [{"prompt": r["prompt"], "topic": r["topic"], "text": text, "value": value, "label": label}
             for r in held_out for text, value, label in r["facts"]][:60]
    p = rm.p_true_facts(items)
    assert all(0 <= pi <= 1 for pi in p)
    accuracy = sum((pi > 0.5) == (item["label"] == "true") for pi, item in zip(p, items)) / len(items)
    assert accuracy >= 0.8, accuracy

    prompts = [bio_prompt("Zapur")] * 3
    responses = [ABSTAIN_BIO, "Zapur comes from Perth .", "Zapur enjoys chess ."]
    scores = rm(prompts, responses, ["Zapur"] * 3)
    assert scores[0] == 0.0 and all(isinstance(s, float) for s in scores)
    # The reward is the expected reward of what the decomposer finds, as the verifier judges it.
    facts = rm.decomposer(responses)
    assert facts[0] == []
    expected = [sum(pi * 2 + (1 - pi) * -3 for pi in rm.p_true([prompt] * len(f), f)) if f else 0.0
                for prompt, f in zip(prompts, facts)]
    assert scores == pytest.approx(expected)


def test_train_rm_belief_verifier_trains_its_head_only_and_scores_with_it(ray_cluster, tmp_path, world,
                                                                          tiny_model_dir):
    meta, layout = train_rm_on(tmp_path, world, tiny_model_dir, "two-stage-text", "reward_model.verifier=belief",
                               "reward_model.decomposer_epochs=1", "reward_model.decomposer_max_new_tokens=16")
    assert meta["verifier"] == "belief" and 0 <= meta["val_accuracy"] <= 1
    saved = ClaimBeliefVerifier.from_pretrained(layout.rm_dir() / "verifier")
    base = ClaimBeliefVerifier.from_pretrained(tiny_model_dir)
    # The LM is the base model's, unchanged; the head learned from the labels.
    assert all(torch.equal(a, b) for a, b in zip(saved.lm.state_dict().values(), base.lm.state_dict().values()))
    assert saved.head.weight.abs().sum().item() > 0
    rm = load_reward_model(layout.rm_dir())
    assert isinstance(rm, TextTwoStageRewardModel)
    prompt, claims = bio_prompt("Zapur"), ["Zapur comes from Perth", "Zapur enjoys chess"]
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    with torch.no_grad():
        direct = torch.sigmoid(saved(**claim_tensors(tok, [prompt] * 2, claims, meta["max_length"]))).tolist()
    assert rm.p_true([prompt] * 2, claims) == pytest.approx(direct)


def test_train_rm_template_two_stage_kind_answers_the_same_verifier_api(ray_cluster, tmp_path, world,
                                                                         tiny_model_dir):
    meta, layout = train_rm_on(tmp_path, world, tiny_model_dir, "two-stage")
    rm = load_reward_model(layout.rm_dir())
    assert isinstance(rm, TwoStageRewardModel) and 0 <= meta["val_accuracy"] <= 1
    item = {"prompt": bio_prompt("Zapur"), "topic": "Zapur", "text": "Zapur comes from Perth", "value": "Perth"}
    assert rm.p_true_facts([item]) == pytest.approx(rm.p_true([("Zapur comes from Perth", "Perth")]))


def test_recombined_decomposer_examples_list_exactly_the_facts_among_their_sentences():
    examples = [("Zapur comes from Perth . Zapur attended . Zapur enjoys chess .",
                 ["Zapur comes from Perth", "Zapur enjoys chess"]),
                ("Lio is Kenyan . In 1960 , Oslo .", ["Lio is Kenyan"]),
                ("Lio was born in Paris , in spring .", ["Lio was born in Paris"])]  # a rewritten fact lends nothing
    out = recombined_examples(examples, 50, seed=3)
    facts = {"Zapur comes from Perth .": "Zapur comes from Perth", "Zapur enjoys chess .": "Zapur enjoys chess",
             "Lio is Kenyan .": "Lio is Kenyan", "Zapur attended .": None, "In 1960 , Oslo .": None}
    assert len(out) == 50 and out == recombined_examples(examples, 50, seed=3)
    for response, listed in out:
        sentences = [s + " ." for s in response.split(" . ")]
        sentences[-1] = sentences[-1].removesuffix(" .")
        assert all(s in facts for s in sentences) and 1 <= len(sentences) <= 3
        assert listed == list(dict.fromkeys(facts[s] for s in sentences if facts[s]))
    assert recombined_examples(examples[2:], 5, seed=0) == []


def test_recombined_examples_teach_copying_names_the_data_never_had(tiny_model_dir):
    examples = [("Zapur comes from Perth . Zapur attended . Zapur enjoys chess .",
                 ["Zapur comes from Perth", "Zapur enjoys chess"]),
                ("Lio is Kenyan . In 1960 , Oslo .", ["Lio is Kenyan"])]
    names = capitalised_words(AutoTokenizer.from_pretrained(tiny_model_dir))
    assert names and all(n[:1].isupper() and n.isalpha() for n in names)
    swapped = recombined_examples(examples, 200, seed=3, names=names)
    assert swapped == recombined_examples(examples, 200, seed=3, names=names)
    shapes = {"comes from", "enjoys chess", "is"}  # Zapur comes from Perth, Zapur enjoys chess, Lio is Kenyan
    original = set(" ".join(r for r, _ in examples).split())
    new = set()
    for text, facts in swapped:
        # Each sentence keeps its lower-case words; a listed fact is still one of the sentences, swapped alike.
        sentences = [x.strip() for x in text.split(" .") if x.strip()]
        for fact in facts:
            assert fact in sentences
            shape = " ".join(w for w in fact.split() if not w[:1].isupper())
            assert shape in shapes
        new |= set(text.split()) - original
    assert new and new <= set(names)
    assert recombined_examples(examples, 5, seed=0, names=[]) == recombined_examples(examples, 5, seed=0)
