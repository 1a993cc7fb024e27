"""Ray actors: each role wraps a model (training roles: a DeepSpeed engine) behind a small remote API."""
