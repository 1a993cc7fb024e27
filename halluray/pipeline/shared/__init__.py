"""What the stages share: run-directory setup, the one caching rule, unfamiliarity helpers, held-out samples."""
