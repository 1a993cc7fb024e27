"""What the experiments share: held-out items and scores, answers, bucket reports, SFT arms, RL on short answers."""
