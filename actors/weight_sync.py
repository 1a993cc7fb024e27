"""Policy -> rollout weight sync: a gloo/NCCL broadcast group of policy rank 0 and every rollout worker
(the measured-faster default), or the Ray object store. With LoRA only the adapters travel."""

from __future__ import annotations

from actors.group import ActorGroup


class WeightSync:
    def __init__(self, policy: ActorGroup, rollout: ActorGroup, method: str, adapters_only: bool):
        self.policy, self.rollout, self.method, self.adapters_only = policy, rollout, method, adapters_only

    def connect(self) -> None:
        """(Re)build the broadcast group; needed again after a rollout worker restarted."""
        if self.method != "broadcast":
            return
        addr, port = self.policy.rendezvous()
        world = 1 + len(self.rollout)
        sender = self.policy.call("init_sync_group", addr, port, 0, world)
        receivers = [a.init_sync_group.remote(addr, port, i + 1, world) for i, a in enumerate(self.rollout.actors)]
        self.policy.gather(sender)
        self.rollout.gather(receivers)

    def __call__(self) -> None:
        """Every rollout worker gets the policy's current weights."""
        if self.method == "broadcast":
            sent = self.policy.call("broadcast_weights", self.adapters_only)
            self.rollout.run("receive_weights", self.adapters_only)
            self.policy.gather(sent)
        else:
            refs = self.policy.call("state_dict_for_sync", self.adapters_only)
            self.rollout.run("load_weights", refs[0])
            self.policy.gather(refs)
