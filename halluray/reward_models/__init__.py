"""Reward-model data (conservative vs standard), reward models and their training examples."""
