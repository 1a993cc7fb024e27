"""Unfamiliarity scoring, fact checking interfaces and rewards."""
