"""Training of the text two-stage RM (paper §5, App. D) on the reward-trainer ranks: first the decomposer LM
(LM loss on its fact lists), exported and scored on held-out responses, then on the same ranks the verifier
LM (binary cross-entropy on labeled facts), exported and scored on held-out facts. With
`reward_model.shared_decomposer` the decomposer is fitted once on both sources' responses and copied into
each RM."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import torch
from transformers import AutoConfig, AutoTokenizer

from actors.group import ActorGroup
from halluray.config import ExperimentConfig
from halluray.data.sft import sft_tensors
from halluray.errors import InputError
from halluray.io import atomic_dir, atomic_write_json
from halluray.layout import RunLayout
from halluray.logging import RunLogger
from halluray.models.heads import claim_tensors
from halluray.reward_models.models import DECOMPOSER_DIR, VERIFIER_DIR, TextDecomposer
from halluray.reward_models.text import (
    DECOMPOSER_PROMPT,
    FactLines,
    capitalised_words,
    decomposer_examples,
    fact_set_scores,
    recombined_examples,
    text_verifier_examples,
    verifier_input,
)
from halluray.trainers.rm_fit import fit, split_validation, steps_per_epoch


class TextRMTraining:
    def __init__(self, cfg: ExperimentConfig, records: list[dict], model_path: str,
                 decomposer_records: list[dict] | None = None):
        """`decomposer_records`: the responses the decomposer learns from when they are not `records` (the
        shared decomposer's: every source's)."""
        rm = cfg.reward_model
        self.cfg, self.model_path = cfg, model_path
        self.shared = RunLayout(cfg).shared_decomposer if decomposer_records is not None else None
        self.tokenizer = AutoTokenizer.from_pretrained(model_path, local_files_only=True)
        self.tokenizer.truncation_side = "left"  # a verifier input keeps its end: the fact
        self.lines = FactLines.for_tokenizer(self.tokenizer)
        self.max_length = rm.max_length or AutoConfig.from_pretrained(
            model_path, trust_remote_code=cfg.model.trust_remote_code, local_files_only=True).max_position_embeddings
        if rm.decomposer_max_new_tokens >= self.max_length:
            raise InputError(f"reward_model.decomposer_max_new_tokens ({rm.decomposer_max_new_tokens}) leaves no room "
                             f"for the response in {self.max_length} tokens (reward_model.max_length)")
        # A decomposer example cut short would teach facts the input does not state: too long ones are left out.
        decomposer = decomposer_examples(records if decomposer_records is None else decomposer_records)
        fitting = [ex for ex in decomposer if self._decomposer_length(*ex) <= self.max_length]
        self.decomposer_too_long = len(decomposer) - len(fitting)
        self.decomposer_val, self.decomposer_train = split_validation(fitting, cfg.seed)
        # Recombined from training responses only: the held-out fact lists stay as the data gave them.
        extra = recombined_examples(self.decomposer_train, rm.decomposer_recombined, cfg.seed,
                                    capitalised_words(self.tokenizer))
        self.decomposer_train += [ex for ex in extra if self._decomposer_length(*ex) <= self.max_length]
        self.verifier_val, self.verifier_train = split_validation(text_verifier_examples(records), cfg.seed)
        steps_per_epoch(len(self.decomposer_train), rm.batch_size, "decomposer (non-abstained responses)")
        steps_per_epoch(len(self.verifier_train), rm.batch_size, "verifier (labeled facts)")

    def _decomposer_length(self, response: str, facts: list[str]) -> int:
        return self._decomposer_tensors([(response, facts)])["input_ids"].shape[1]

    def _decomposer_tensors(self, examples: list[tuple[str, list[str]]]) -> dict[str, torch.Tensor]:
        return sft_tensors(self.tokenizer, [DECOMPOSER_PROMPT.format(response=r) for r, _ in examples],
                           [self.lines.format(facts) for _, facts in examples])

    def _verifier_tensors(self, examples: list[tuple[tuple[str, str], float]]) -> dict[str, torch.Tensor]:
        """The belief verifier reads prompt + fact with the fact's tokens marked; the text one its own format."""
        pairs, labels = zip(*examples)
        if self.cfg.reward_model.verifier == "belief":
            prompts, facts = zip(*pairs)
            return {**claim_tensors(self.tokenizer, list(prompts), list(facts), self.max_length),
                    "labels": torch.tensor(labels)}
        enc = self.tokenizer([verifier_input(p, f) for p, f in pairs], return_tensors="pt", padding=True,
                             truncation=True, max_length=self.max_length)
        return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"],
                "labels": torch.tensor(labels)}

    def _decomposer_key(self) -> str:
        """What the shared decomposer was fitted from: its examples and its settings."""
        rm = self.cfg.reward_model
        settings = [rm.decomposer_epochs, rm.decomposer_lr or rm.lr, rm.batch_size, rm.decomposer_max_new_tokens,
                    rm.decomposer_copy_only, self.max_length, self.model_path, self.cfg.seed]
        return hashlib.sha256(json.dumps([self.decomposer_train, self.decomposer_val, settings]).encode()).hexdigest()

    def _fit_decomposer(self, group: ActorGroup, logger: RunLogger, out: Path) -> tuple[int, dict]:
        rm = self.cfg.reward_model
        step = fit(group, self.cfg, logger, model_path=self.model_path, head="lm", step="sft_step",
                   train=self.decomposer_train, tensors=self._decomposer_tensors, epochs=rm.decomposer_epochs,
                   lr=rm.decomposer_lr or rm.lr, name="decomposer")
        group.run("export_hf", str(out / DECOMPOSER_DIR))
        # Scored as the RM will use it: the exported model, generating greedily.
        decomposer = TextDecomposer(out / DECOMPOSER_DIR, torch.device("cpu"), self.cfg.model.trust_remote_code,
                                    rm.decomposer_max_new_tokens, self.max_length, copy_only=rm.decomposer_copy_only)
        scores = fact_set_scores(decomposer([r for r, _ in self.decomposer_val]),
                                 [facts for _, facts in self.decomposer_val])
        decomposer_quality = {f"decomposer_val_{k}": v for k, v in scores.items()}
        logger.log(step, **decomposer_quality)
        return step, decomposer_quality

    def _decomposer(self, group: ActorGroup, logger: RunLogger, out: Path) -> tuple[int, dict]:
        """Fit the decomposer into `out`, or with a shared one copy it when it was fitted from the same examples
        and settings (the other RM's train-rm fitted it), else fit it and keep a copy for the other RM."""
        if self.shared is None:
            return self._fit_decomposer(group, logger, out)
        key, meta_file = self._decomposer_key(), self.shared / "decomposer.json"
        meta = json.loads(meta_file.read_text()) if meta_file.is_file() else {}
        if meta.get("key") == key:
            shutil.copytree(self.shared / DECOMPOSER_DIR, out / DECOMPOSER_DIR)
            print(f"train-rm: the shared decomposer in {self.shared} (fitted on both sources' responses)")
            return 0, meta["quality"]
        step, quality = self._fit_decomposer(group, logger, out)
        with atomic_dir(self.shared) as tmp:
            shutil.copytree(out / DECOMPOSER_DIR, tmp / DECOMPOSER_DIR)
            atomic_write_json(tmp / "decomposer.json", {"key": key, "quality": quality})
        return step, quality

    def run(self, group: ActorGroup, logger: RunLogger, out: Path) -> dict:
        rm = self.cfg.reward_model
        step, decomposer_quality = self._decomposer(group, logger, out)
        step = fit(group, self.cfg, logger, model_path=self.model_path,
                   head="belief" if rm.verifier == "belief" else "value", step="verifier_step",
                   train=self.verifier_train, tensors=self._verifier_tensors, epochs=rm.epochs, lr=rm.lr,
                   name="verifier", first_step=step)
        logits = torch.cat(group.run_sharded("predict", self._verifier_tensors(self.verifier_val)))
        group.run("export_hf", str(out / VERIFIER_DIR))
        labels = torch.tensor([y for _, y in self.verifier_val])
        verifier_quality = {"val_accuracy": ((logits > 0).float() == labels).float().mean().item()}
        logger.log(step, **verifier_quality)
        return {"verifier": rm.verifier, "decomposer_copy_only": rm.decomposer_copy_only,
                "decomposer_max_new_tokens": rm.decomposer_max_new_tokens,
                "max_length": self.max_length,
                "decomposer_train_examples": len(self.decomposer_train),
                "decomposer_too_long": self.decomposer_too_long, "train_examples": len(self.verifier_train),
                **decomposer_quality, **verifier_quality}
