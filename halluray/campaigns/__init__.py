"""Campaigns: commands that chain pipeline stages and experiments as cached steps (demo, --seeds, sweep, demo-real)."""
