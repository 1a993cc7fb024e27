"""Tokenizer, model building/loading and generation helpers."""
