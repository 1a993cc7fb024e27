"""`halluray demo`: the whole paper on the synthetic world, each step reused when its inputs are unchanged
(the steps and the report: campaigns/shared/demo_steps.py)."""

from __future__ import annotations

from halluray.campaigns.shared.campaign import run_campaign
from halluray.campaigns.shared.demo_steps import demo_report, demo_steps
from halluray.config import ExperimentConfig


def run(cfg: ExperimentConfig) -> dict:
    return run_campaign(cfg, demo_steps(cfg), "demo", demo_report)
