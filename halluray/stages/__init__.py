"""Pipeline stages: each reads the config, uses the pure modules, and writes into the run directory."""
