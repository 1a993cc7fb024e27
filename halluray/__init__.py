"""halluray: Ray-distributed RLHF for factuality finetuning (Kang et al.)."""

__version__ = "0.1.0"
