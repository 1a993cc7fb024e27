"""The synthetic knowledge world: people with exact facts, a graded-frequency corpus, a fact checker."""

from halluray.world.checker import CheckResult, ExactChecker
from halluray.world.entities import Person, World, generate_world
from halluray.world.source import IndependentSource

__all__ = ["CheckResult", "ExactChecker", "IndependentSource", "Person", "World", "generate_world"]
