"""An exponential moving average of the generators' weights (``ema`` in a stage's config).

After every optimisation step each floating-point entry of the averaged networks' state
(weights and float buffers) moves towards the live value: ``avg += (1 - d) (live - avg)``, with
``d = min(ema, (1 + n) / (10 + n))`` after n updates, so the first steps do not drag the
average towards the random or previous-stage start for long. Validation, ``best.pt`` and the
stage's output use the averaged weights; training continues on the live ones. Every process
of a data-parallel run holds the same live weights (gradients are all-reduced), so the same
average.
"""
from __future__ import annotations

from contextlib import contextmanager

import torch
from torch import nn


class WeightAverage:
    def __init__(self, nets: dict[str, nn.Module], decay: float):
        if not 0.0 < decay < 1.0:
            raise ValueError(f"ema must lie in (0, 1), got {decay}")
        self.nets, self.decay, self.updates = nets, decay, 0
        self.keys = {role: [k for k, v in net.state_dict().items() if v.is_floating_point()] for role, net in nets.items()}
        self.avg = {role: [net.state_dict()[k].detach().clone() for k in self.keys[role]] for role, net in nets.items()}

    def _live(self, role: str) -> list[torch.Tensor]:
        state = self.nets[role].state_dict()
        return [state[k].detach() for k in self.keys[role]]

    def rate(self) -> float:
        """The decay used by the next update."""
        return min(self.decay, (1 + self.updates) / (10 + self.updates))

    @torch.no_grad()
    def update(self) -> None:
        weight = 1.0 - self.rate()
        for role in self.nets:
            torch._foreach_lerp_(self.avg[role], self._live(role), weight)
        self.updates += 1

    @contextmanager
    def applied(self):
        """The networks hold the averaged weights inside the block, their live weights after."""
        saved = {role: [t.clone() for t in self._live(role)] for role in self.nets}
        with torch.no_grad():
            for role in self.nets:
                torch._foreach_copy_(self._live(role), self.avg[role])
        try:
            yield
        finally:
            with torch.no_grad():
                for role in self.nets:
                    torch._foreach_copy_(self._live(role), saved[role])

    def state_dict(self) -> dict:
        return {"decay": self.decay, "updates": self.updates,
                "avg": {role: dict(zip(self.keys[role], (t.cpu() for t in self.avg[role]))) for role in self.nets}}

    def load_state_dict(self, state: dict, source: str) -> None:
        avg = state.get("avg", {})
        for role in self.nets:
            saved = avg.get(role)
            if saved is None or set(saved) != set(self.keys[role]):
                raise ValueError(f"{source}: its weight average does not hold network '{role}' as this model has it; "
                                 "run the stage again with --fresh")
            for target, key in zip(self.avg[role], self.keys[role]):
                if saved[key].shape != target.shape:
                    raise ValueError(f"{source}: weight average of '{role}.{key}' has shape {tuple(saved[key].shape)}, "
                                     f"this model {tuple(target.shape)}; run the stage again with --fresh")
                target.copy_(saved[key])
        self.updates = int(state.get("updates", 0))
