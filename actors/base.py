"""Base Ray actors: one rank of a role's torch.distributed group, and a DeepSpeed-trained model.

MASTER_ADDR/MASTER_PORT/RANK/WORLD_SIZE/LOCAL_RANK are set in the actor's environment before DeepSpeed is
imported and adopts the group that `join_group` initialised (gloo on CPU, NCCL on GPU; docs/runtime.md#ray-actors).
That is why `deepspeed` is imported inside the methods here, not at the top.
"""

from __future__ import annotations

import gc
import importlib
import os
import random
import shutil
import socket
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import psutil
import ray
import torch
import torch.distributed as dist
from transformers import AutoTokenizer

from actors.engine import deepspeed_config, make_optimizer, param_and_optimizer_bytes
from halluray import checkpoints
from halluray.config import DeepSpeedConfig, LoRAConfig, OptimizerConfig
from halluray.models.build import save_model
from halluray.models.forward import masked_nll
from halluray.models.lora import is_adapter_param
from halluray.models.optim import warmup_cosine_schedule
from halluray.ppo.batches import minibatches

WIRE_DTYPE = torch.float32
"""The dtype of every tensor a weight broadcast sends. Sender and receiver may hold one parameter in different
dtypes (peft keeps LoRA adapters in fp32 under a bf16 base model, DeepSpeed's bf16 engine casts them to bf16),
and a broadcast of mismatched dtypes hands the receiver garbage bytes, not an error."""


class NonFiniteError(RuntimeError):
    """A loss that is NaN or infinite: the update is stopped before the optimizer steps."""


class UnsafeCheckpoint(RuntimeError):
    """A checkpoint part whose pickle names a global that engine checkpoints do not hold: never unpickled."""


class WorkerRestarted(RuntimeError):
    """A stateless worker that Ray restarted (or that was released for reuse) got a call before it was
    initialised again."""


def node_listener() -> socket.socket:
    """A socket bound to a free port on this node's Ray address, for a group's TCPStore to listen on.

    Given only a port, TCPStore listens on every interface, and it has no authentication. Held from
    `address()` until the store takes it, the port also cannot be taken by another process meanwhile.
    """
    ip = ray.util.get_node_ip_address()
    sock = socket.socket(socket.AF_INET6 if ":" in ip else socket.AF_INET, socket.SOCK_STREAM)
    sock.bind((ip, 0))
    return sock


def bind_collectives_to_node() -> None:
    """Gloo and NCCL listen on the interface that holds this node's Ray address (127.0.0.1 on a local cluster),
    not on the one they would pick themselves; a GLOO_/NCCL_SOCKET_IFNAME set by the user is kept."""
    ip = ray.util.get_node_ip_address()
    iface = next((name for name, addrs in psutil.net_if_addrs().items()
                  if any(a.address.split("%")[0] == ip for a in addrs)), None)
    if iface is not None:
        os.environ.setdefault("GLOO_SOCKET_IFNAME", iface)
        os.environ.setdefault("NCCL_SOCKET_IFNAME", f"={iface}")  # "=": this name exactly, not a prefix


def rendezvous_store(host: str, port: int, world_size: int, is_master: bool, listener: socket.socket | None,
                     timeout: timedelta) -> dist.TCPStore:
    """A group's TCPStore; the master serves on `listener` (from `address()`), which the store then owns."""
    fd = listener.detach() if listener is not None else None
    return dist.TCPStore(host, port, world_size, is_master=is_master, timeout=timeout, master_listen_fd=fd)


@dataclass
class EngineSpec:
    """What a training rank builds: model, optional LoRA, DeepSpeed and optimizer settings."""
    model_path: str
    ds: DeepSpeedConfig
    optim: OptimizerConfig
    total_steps: int
    micro_batch_size: int
    lora: LoRAConfig | None = None
    trust_remote_code: bool = False
    seed: int = 0
    head: str = "value"
    """Critic-side models: `value` (a value head), `verifier` (the two-stage RM's fact verifier), `belief` (the
    text RM's belief verifier: a head over a frozen LM) or `lm` (a causal LM: the text RM's decomposer)."""


class RankActor:
    """A Ray actor that knows its role and rank; training roles join a process group through it."""

    def __init__(self, role: str, rank: int, world_size: int, threads: int = 1, collective_timeout_s: float = 300.0):
        self.role, self.rank, self.world_size = role, rank, world_size
        self.timeout = timedelta(seconds=collective_timeout_s)
        self.on_gpu = torch.cuda.is_available()
        if not self.on_gpu:
            os.environ.setdefault("DS_ACCELERATOR", "cpu")
        torch.set_num_threads(threads)
        self.device = torch.device("cuda", 0) if self.on_gpu else torch.device("cpu")
        self._constructed = set(vars(self)) | {"_constructed"}

    def address(self) -> tuple[str, int]:
        """This node's IP and a port bound there: the rendezvous point when this actor is rank 0. The socket is
        kept for the next `join_group` or `init_sync_group` (a call before that replaces it)."""
        self._take_listener(None)
        self._listener = node_listener()
        return self._listener.getsockname()[:2]

    def _take_listener(self, port: int | None) -> socket.socket | None:
        """The socket `address()` bound, if it is for `port`; otherwise it is closed."""
        sock, self._listener = getattr(self, "_listener", None), None
        if sock is not None and sock.getsockname()[1] != port:
            sock.close()
            sock = None
        return sock

    def join_group(self, master_addr: str, master_port: int) -> None:
        os.environ.update(MASTER_ADDR=master_addr, MASTER_PORT=str(master_port), RANK=str(self.rank),
                          WORLD_SIZE=str(self.world_size), LOCAL_RANK="0")
        listener = self._take_listener(master_port if self.rank == 0 else None)
        if dist.is_initialized():  # a reused actor keeps its group (release)
            if listener is not None:
                listener.close()
            return
        import deepspeed

        bind_collectives_to_node()
        # Our own store, not env://, which would listen on every interface. DeepSpeed adopts an initialised group.
        store = rendezvous_store(master_addr, master_port, self.world_size, self.rank == 0, listener, self.timeout)
        backend = "nccl" if self.on_gpu else "gloo"
        # device_id as DeepSpeed passes it on CUDA with several ranks (deepspeed/comm/torch.py).
        device_id = self.device if self.on_gpu and self.world_size > 1 else None
        dist.init_process_group(backend, store=store, rank=self.rank, world_size=self.world_size,
                                timeout=self.timeout, device_id=device_id)
        deepspeed.init_distributed(dist_backend=backend, timeout=self.timeout, verbose=False)

    def shutdown(self) -> None:
        """Release what the actor holds before it is killed (training roles destroy their engine)."""

    def release(self) -> None:
        """Back to what __init__ left, to be parked for the next group of this role (actors/warm_pool.py): the
        model, engine and sync group go; the role's torch.distributed group stays for the same ranks."""
        self._take_listener(None)
        for name in set(vars(self)) - self._constructed:
            delattr(self, name)
        gc.collect()

    def _require(self, attribute: str) -> None:
        """A restarted process runs __init__ again but not the init call that loaded its model; a released one
        (`release`) has dropped it."""
        if not hasattr(self, attribute):
            raise WorkerRestarted(f"{self.role} rank {self.rank} is not initialised (restarted, or released)")

    def _to_device(self, batch: dict) -> dict:
        return {k: v.to(self.device) if torch.is_tensor(v) else v for k, v in batch.items()}


class TrainableActor(RankActor):
    """A rank holding a DeepSpeed engine. Subclasses pick the model (`_build_model`) and the losses."""

    def _build_model(self, spec: EngineSpec) -> torch.nn.Module:
        """The role's model (abstract: PolicyActor, CriticActor and RewardTrainerActor each build theirs)."""
        raise NotImplementedError

    def init_engine(self, master_addr: str, master_port: int, spec: EngineSpec) -> dict:
        import deepspeed

        self.join_group(master_addr, master_port)
        self.spec = spec
        torch.manual_seed(spec.seed)
        model = self._build_model(spec)
        if spec.ds.gradient_checkpointing:
            model.gradient_checkpointing_enable()
        ds_cfg = deepspeed_config(spec.ds, spec.micro_batch_size, self.world_size, self.on_gpu)
        optimizer = make_optimizer(model, spec.optim, offload=spec.ds.offload_optimizer)
        scheduler = warmup_cosine_schedule(optimizer, spec.optim, spec.total_steps)
        self.engine, *_ = deepspeed.initialize(model=model, optimizer=optimizer, lr_scheduler=scheduler,
                                               config=ds_cfg)
        self.zero_stage = spec.ds.zero_stage
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        return {"role": self.role, "rank": self.rank, "trainable_params": trainable}

    # -- training -----------------------------------------------------------------------------------

    def _train(self, batch: dict, loss_fn) -> dict:
        """One optimizer step over this rank's shard, split into gradient-accumulation micro-batches.
        A non-finite loss on any rank stops every rank before its backward pass (so before the optimizer)."""
        self.engine.train()
        batch = self._to_device(batch)
        n = self.spec.ds.gradient_accumulation_steps
        size = next(v for v in batch.values() if torch.is_tensor(v)).shape[0]
        stats: dict[str, float] = {}
        for chunk in range(n):
            sl = slice(chunk * size // n, (chunk + 1) * size // n)
            micro = {k: v[sl] if torch.is_tensor(v) else v for k, v in batch.items()}
            loss, micro_stats = loss_fn(micro)
            self._stop_if_not_finite(loss)
            self.engine.backward(loss)
            self.engine.step()
            for k, v in {"loss": loss.item(), **micro_stats}.items():
                stats[k] = stats.get(k, 0.0) + float(v) / n
        stats["lr"] = self.engine.get_lr()[0]
        stats["grad_norm"] = float(self.engine.get_global_grad_norm() or 0.0)
        return stats

    def sft_step(self, batch: dict) -> dict:
        """Supervised step of a causal-LM engine (the policy, the text RM's decomposer): mean NLL over
        `loss_mask` tokens."""
        return self._train(batch, lambda b: (masked_nll(self.engine, b["input_ids"], b["attention_mask"],
                                                        b["loss_mask"]), {}))

    def _stop_if_not_finite(self, loss: torch.Tensor) -> None:
        """All ranks agree (one tiny all-reduce) so that none is left waiting in a gradient all-reduce."""
        bad = torch.zeros(self.world_size, device=self.device)
        bad[self.rank] = float(not torch.isfinite(loss.detach()).all())
        if self.world_size > 1:
            dist.all_reduce(bad)
        if bad.any():
            ranks = [r for r in range(self.world_size) if bad[r]]
            mine = f" ({loss.item()})" if self.rank in ranks else ""
            raise NonFiniteError(f"non-finite loss{mine} on {self.role} rank(s) {ranks}; "
                                 f"stopped before the optimizer step")

    def _train_epochs(self, batch: dict, minibatch_size: int, epochs: int, seed: int, step_fn) -> list[dict]:
        """PPO-style epochs over this rank's shard: one optimizer step per local minibatch.

        Every rank shuffles with the same seed and has the same shard size, so all ranks take the same
        number of steps (their gradient all-reduces pair up). One call per PPO iteration, not per
        minibatch: the driver does not sit in the loop.
        """
        size = batch["input_ids"].shape[0]
        generator = torch.Generator().manual_seed(seed)
        stats = []
        for epoch in range(epochs):
            for i, idx in enumerate(minibatches(size, minibatch_size, generator)):
                try:
                    stats.append(step_fn({k: v[idx] if torch.is_tensor(v) else v for k, v in batch.items()}))
                except NonFiniteError as e:
                    raise NonFiniteError(f"{e} (epoch {epoch + 1}, minibatch {i + 1})") from None
        return stats

    # -- weights ------------------------------------------------------------------------------------

    def _full_weights(self):
        """Every parameter whole on this rank while the context lasts (a collective under ZeRO-3)."""
        import deepspeed

        if self.zero_stage != 3:
            return nullcontext()
        return deepspeed.zero.GatheredParameters(list(self.engine.module.parameters()))

    def _gathered(self, adapters_only: bool):
        """(name, full parameter) in module order. Collective under ZeRO-3: every rank must iterate."""
        import deepspeed

        for name, p in self.engine.module.named_parameters():
            if adapters_only and not is_adapter_param(name):
                continue
            ctx = deepspeed.zero.GatheredParameters([p]) if self.zero_stage == 3 else nullcontext()
            with ctx:
                yield name, p.data

    def state_dict_for_sync(self, adapters_only: bool = False) -> dict | None:
        """The full (or adapter-only) weights on rank 0, None elsewhere. Collective."""
        out = {}
        for name, tensor in self._gathered(adapters_only):
            if self.rank == 0:
                out[name] = tensor.detach().to("cpu", copy=True)
        return out if self.rank == 0 else None

    def init_sync_group(self, master_addr: str, master_port: int, rank: int, world_size: int) -> None:
        """Rank 0 of this role joins a separate group with the rollout workers for weight broadcast."""
        listener = self._take_listener(master_port if self.rank == 0 else None)
        if self.rank == 0:
            self.sync_group = new_sync_group(master_addr, master_port, rank, world_size, self.on_gpu, self.timeout,
                                             listener)

    def broadcast_weights(self, adapters_only: bool = False) -> int:
        """Send every parameter from rank 0 to the sync group. Collective over this role (ZeRO-3 gather)."""
        sent = 0
        for _, tensor in self._gathered(adapters_only):
            if self.rank == 0:
                self.sync_group.broadcast(tensor.detach().to(WIRE_DTYPE).contiguous(), 0).wait()
                sent += tensor.numel()
        return sent

    def export_hf(self, path: str, merge_lora: bool = True) -> str | None:
        """A `from_pretrained`-loadable copy of the trained model (safetensors), written by rank 0. Collective.

        With LoRA: merged into the base weights, or (merge_lora=False) saved as a peft adapter.
        """
        weights = self.state_dict_for_sync()
        if self.rank != 0:
            return None
        model = self._build_model(self.spec)
        missing, unexpected = model.load_state_dict(weights, strict=False)
        if unexpected or any(name in weights for name in missing):
            raise RuntimeError(f"{self.role}: export does not match the model ({unexpected[:3]})")
        if self.spec.lora and self.spec.lora.enabled and merge_lora:
            model = model.merge_and_unload()
        tokenizer = AutoTokenizer.from_pretrained(self.spec.model_path, local_files_only=True)
        save_model(model, tokenizer, path)
        return path

    # -- checkpoints --------------------------------------------------------------------------------

    def save_checkpoint(self, path: str, client_state: dict | None = None) -> dict[str, dict]:
        """DeepSpeed checkpoint (model, optimizer, scheduler) and every rank's RNG state, written to a temp
        dir that is renamed when complete (dropout draws from the RNG: an exact resume needs it). Returns what
        this rank wrote: each file fsynced, by its path under `path`, with size and sha256 (`checkpoints.report`)."""
        final = Path(path)
        tmp = final.with_name(f".{final.name}.tmp")
        if self.rank == 0:
            shutil.rmtree(tmp, ignore_errors=True)
        dist.barrier()
        written = [tmp / f"rng_rank{self.rank}.pt"]
        with recorded_saves(self.engine, written):
            self.engine.save_checkpoint(str(tmp), tag="engine", client_state={"halluray": client_state or {}})
        torch.save(rng_state(self.on_gpu), written[0])
        report = checkpoints.report(tmp, written)
        dist.barrier()
        if self.rank == 0:
            for directory in {p.parent for p in tmp.rglob("*")} | {tmp}:
                checkpoints.fsync(directory)
            shutil.rmtree(final, ignore_errors=True)
            os.replace(tmp, final)
            checkpoints.fsync(final.parent)
        dist.barrier()
        return report

    def load_checkpoint(self, path: str) -> dict:
        """Load a checkpoint written by `save_checkpoint`. Every part is unpickled weights-only: a part naming a
        global outside `checkpoints.ENGINE_GLOBALS` is refused (UnsafeCheckpoint) before DeepSpeed reads any,
        on every rank alike (each checks the whole directory), so no rank waits in a collective for another."""
        root = Path(path)
        if not (root / "engine").is_dir():
            raise FileNotFoundError(f"no {self.role} checkpoint at {path}")
        if refused := checkpoints.unsafe_globals(root):
            file, name = refused[0]
            raise UnsafeCheckpoint(f"{file.relative_to(root.parent)} needs {name}, which is not an allowed global "
                                   f"of an engine checkpoint (checkpoints.ENGINE_GLOBALS); not unpickled")
        with weights_only_loads(self.engine):
            _, client_state = self.engine.load_checkpoint(path, tag="engine")
        set_rng_state(torch.load(root / f"rng_rank{self.rank}.pt", weights_only=True))
        return (client_state or {}).get("halluray", {})

    def memory_bytes(self) -> dict:
        return param_and_optimizer_bytes(self.engine)

    def shutdown(self) -> None:
        """Required before exit under ZeRO-3 with several ranks, which otherwise aborts
        (docs/runtime.md#deepspeed-on-cpu)."""
        self._destroy_engine()
        if dist.is_initialized():
            dist.destroy_process_group()

    def release(self) -> None:
        self._destroy_engine()
        super().release()

    def _destroy_engine(self) -> None:
        if hasattr(self, "engine"):  # absent when init_engine never ran (or the rank was released)
            self.engine.destroy()


@contextmanager
def node_priority():
    """Run the block at the niceness of the raylet that started this worker (the driver's, on a local
    cluster), not at the 15 steps lower priority Ray gives its workers.

    Alone on a node the worker niceness costs nothing, but beside processes that are busy at normal priority
    (another job, a test suite) a worker gets a few percent of a core: 256 tokens at 135M took 139 s instead
    of 5.5 s beside two busy loops on 2 cores, while the bare torch process, at normal priority, kept its fair
    share (docs/performance.md). While a batch is generated every other role waits for it. Niceness is per
    thread on Linux: every thread of the process is changed, and put back afterwards (threads that OpenMP
    starts inside the block inherit the raised priority). Where raising the priority is not permitted (an
    unprivileged user without RLIMIT_NICE), the block runs as it is.
    """
    tasks = "/proc/self/task"
    old = os.getpriority(os.PRIO_PROCESS, 0)
    target = os.getpriority(os.PRIO_PROCESS, os.getppid())
    if target >= old or not os.path.isdir(tasks):
        yield
        return
    try:
        _renice_threads(tasks, target)
    except PermissionError:
        pass  # generate at the worker's priority
    try:
        yield
    finally:
        _renice_threads(tasks, old)


def _renice_threads(tasks: str, niceness: int) -> None:
    for tid in os.listdir(tasks):
        try:
            os.setpriority(os.PRIO_PROCESS, int(tid), niceness)
        except ProcessLookupError:  # the thread ended meanwhile
            pass


@contextmanager
def recorded_saves(engine, written: list[Path]):
    """Within the block, the path of every file DeepSpeed's checkpoint engine saves is appended to `written`."""
    engine_io, real = engine.checkpoint_engine, engine.checkpoint_engine.save

    def save(state_dict, path):
        real(state_dict, path)
        written.append(Path(path))

    engine_io.save = save
    try:
        yield
    finally:
        del engine_io.save


@contextmanager
def weights_only_loads(engine):
    """Within the block DeepSpeed's checkpoint engine (through which DeepSpeed reads every part of a checkpoint)
    unpickles weights-only, allowing only `checkpoints.ENGINE_GLOBALS`, instead of `weights_only=False`."""
    allowed = [getattr(importlib.import_module(module), name)
               for module, _, name in (g.rpartition(".") for g in sorted(checkpoints.ENGINE_GLOBALS))]
    engine_io = engine.checkpoint_engine

    def load(path, map_location=None):
        with torch.serialization.safe_globals(allowed):
            return torch.load(path, map_location=map_location, weights_only=True)

    engine_io.load = load
    try:
        yield
    finally:
        del engine_io.load


def rng_state(on_gpu: bool) -> dict:
    """This process's random state: torch (CPU and GPU) and Python's; plain tensors and ints, so it loads
    with weights_only=True."""
    version, state, gauss = random.getstate()
    return {"torch": torch.get_rng_state(), "cuda": torch.cuda.get_rng_state_all() if on_gpu else [],
            "python": [version, list(state), gauss]}


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"]:
        torch.cuda.set_rng_state_all(state["cuda"])
    version, python_state, gauss = state["python"]
    random.setstate((version, tuple(python_state), gauss))


def new_sync_group(master_addr: str, master_port: int, rank: int, world_size: int, on_gpu: bool,
                   timeout: timedelta, listener: socket.socket | None = None):
    """A process group separate from the role's own (policy rank 0 + rollout workers), with the same
    timeout as the role's: a broadcast to a dead worker fails instead of waiting for ever. Its store and
    sockets listen on the node's address, as the role's group (`join_group`)."""
    bind_collectives_to_node()
    store = rendezvous_store(master_addr, master_port, world_size, rank == 0, listener, timeout)
    if on_gpu:
        options = dist.ProcessGroupNCCL.Options()
        options._timeout = timeout
        return dist.ProcessGroupNCCL(store, rank, world_size, options)
    return dist.ProcessGroupGloo(store, rank, world_size, timeout)
