"""Every loop over actor groups: the PPO driver and run, its validation, reward-model training, sampling."""
