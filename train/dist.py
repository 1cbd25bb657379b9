"""Data-parallel context: one process per rank under ``torchrun`` (gloo on CPU, NCCL on CUDA).

Gradients are averaged across ranks after every backward (all-reduce), which is what
DistributedDataParallel computes; doing it explicitly keeps the GAN stages' several forward
passes per step simple. Single-process runs use the same code with world = 1.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

log = logging.getLogger(__name__)


@dataclass
class Context:
    rank: int = 0
    world: int = 1
    device: torch.device = torch.device("cpu")
    bf16: bool = False

    @property
    def main(self) -> bool:
        return self.rank == 0

    def sync_grads(self, params) -> None:
        if self.world == 1:
            return
        grads = [p.grad for p in params if p.grad is not None]
        if not grads:
            return
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat)
        flat /= self.world
        offset = 0
        for g in grads:
            g.copy_(flat[offset: offset + g.numel()].view_as(g))
            offset += g.numel()

    def sync_buffers(self, nets) -> None:
        """Broadcast rank 0's buffers (BatchNorm statistics) so every rank holds one model."""
        if self.world == 1:
            return
        for net in nets:
            for b in net.buffers():
                dist.broadcast(b, 0)

    def check_consistent(self, nets) -> None:
        """Raise if the ranks' parameters differ (gradients were not averaged identically)."""
        if self.world == 1:
            return
        total = torch.stack([p.detach().double().sum() for net in nets for p in net.parameters()]).sum().reshape(1)
        lo, hi = total.clone(), total.clone()
        dist.all_reduce(lo, op=dist.ReduceOp.MIN)
        dist.all_reduce(hi, op=dist.ReduceOp.MAX)
        if float(hi - lo) > 1e-6 * max(1.0, abs(float(total))):
            raise RuntimeError(f"rank {self.rank}: parameters differ across ranks (checksums {float(lo)} .. {float(hi)})")

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()

    def gather_objects(self, obj) -> list:
        """Every rank's ``obj`` (picklable), in rank order, on every rank."""
        if self.world == 1:
            return [obj]
        out: list = [None] * self.world
        dist.all_gather_object(out, obj)
        return out

    def all_mean(self, values: dict[str, float]) -> dict[str, float]:
        if self.world == 1 or not values:
            return values
        keys = sorted(values)
        t = torch.tensor([values[k] for k in keys], dtype=torch.float64)
        dist.all_reduce(t)
        return {k: float(v) / self.world for k, v in zip(keys, t)}


def init_context(bf16: bool = False) -> Context:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1:
        rank = int(os.environ["RANK"])
        local = int(os.environ.get("LOCAL_RANK", "0"))
        use_cuda = torch.cuda.is_available()
        if use_cuda:
            torch.cuda.set_device(local)
        dist.init_process_group("nccl" if use_cuda else "gloo")
        device = torch.device("cuda", local) if use_cuda else torch.device("cpu")
        log.info("rank %d of %d on %s", rank, world, device)
        return Context(rank, world, device, bf16)
    return Context(0, 1, torch.device("cuda" if torch.cuda.is_available() else "cpu"), bf16)


def close_context(ctx: Context) -> None:
    if ctx.world > 1 and dist.is_initialized():
        dist.destroy_process_group()
