"""The pipeline stages a user runs one by one (`halluray world`, `unfamiliarity`, `sft`, ...): none imports another."""
