import os

# Tests never reach W&B's servers and run DeepSpeed on its CPU accelerator.
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("DS_ACCELERATOR", "cpu")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
# Local Ray clusters listen on 127.0.0.1 only, as the CLI sets them up (halluray/cli.py).
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")

import pytest

from halluray.cli import main
from halluray.config import build_config
from halluray.world.build import make_world

pytest_plugins = ["tests.factscore_fixtures"]  # the FActScore-style HTTP server fixture, for every test file

TINY = [
    "world.num_people=24", "world.fact_frequencies=[0,8]", "world.frequency_weights=[1,1]",
    "model.n_layer=1", "model.n_embd=32", "model.n_head=2", "model.n_positions=192",
    "model.pretrain.steps=30", "model.pretrain.batch_size=4", "model.pretrain.log_every=10",
    "unfamiliarity.short_qa_samples=4", "unfamiliarity.max_new_tokens=24", "threads=1",
]
ONE_RANK_EACH = ["actors.policy.num_actors=1", "actors.critic.num_actors=1", "actors.rollout_mode=colocated"]
"""The fewest actors a PPO run can start, for tests that do not check distribution."""


@pytest.fixture
def tiny_cfg(tmp_path):
    """A config small enough for a whole stage to run in seconds."""
    return build_config({}, TINY + [f"run.output_dir={tmp_path}", "run.name=tiny"])


@pytest.fixture(scope="session")
def world():
    return make_world(build_config({}, ["world.num_people=60"]))


@pytest.fixture(scope="session")
def ray_cluster():
    """A real local Ray cluster for the whole session (logical CPUs > cores so several roles can be placed)."""
    ray = pytest.importorskip("ray")
    ray.init(address="local", num_cpus=8, include_dashboard=False, log_to_driver=False,  # not a cluster running here
             runtime_env={"env_vars": {"DS_ACCELERATOR": "cpu", "OMP_NUM_THREADS": "1",
                                       "OMP_WAIT_POLICY": "PASSIVE", "TOKENIZERS_PARALLELISM": "false"}})
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, world):
    """A tiny GPT-2 with the world's tokenizer, saved with save_pretrained (random weights)."""
    from halluray.models.build import build_gpt2, save_model
    from halluray.models.tokenizer import train_word_tokenizer
    from halluray.world.build import vocabulary_texts

    cfg = build_config({}, ["model.n_layer=2", "model.n_embd=32", "model.n_head=2", "model.n_positions=64"])
    tok = train_word_tokenizer(list(vocabulary_texts(world)))
    path = tmp_path_factory.mktemp("tiny") / "model"
    save_model(build_gpt2(cfg.model, tok, seed=0), tok, path)
    return path


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """A tiny world with its base model and unfamiliarity scores, made through the CLI: (output_dir, args)."""
    out = tmp_path_factory.mktemp("tiny-run")
    args = TINY + [f"run.output_dir={out}", "run.name=r", "logging.wandb_mode=disabled"]
    assert main(["world", *args]) == 0
    assert main(["unfamiliarity", *args]) == 0
    return out, args
