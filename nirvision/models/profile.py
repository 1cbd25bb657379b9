"""Parameter and FLOP counts of a network at a given input size (convs, transpose convs, linears)."""
from __future__ import annotations

import torch
from torch import nn


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def count_flops(module: nn.Module, input_shape: tuple[int, ...]) -> int:
    """Multiply-adds x 2 of every Conv2d / ConvTranspose2d / Linear for one forward pass."""
    total = 0

    def conv_hook(mod, inputs, output):
        nonlocal total
        if isinstance(mod, nn.ConvTranspose2d):
            # Each input pixel scatters a k x k x C_out/groups patch.
            n_in = inputs[0].numel()
            total += 2 * n_in * mod.out_channels // mod.groups * mod.kernel_size[0] * mod.kernel_size[1]
        else:
            per_out = mod.in_channels // mod.groups * mod.kernel_size[0] * mod.kernel_size[1]
            total += 2 * output.numel() * per_out

    def linear_hook(mod, inputs, output):
        nonlocal total
        total += 2 * output.numel() * mod.in_features

    handles = []
    was_training = {m: m.training for m in module.modules()}
    module.eval()  # a counting pass must not update BatchNorm running statistics
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            handles.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.Linear):
            handles.append(m.register_forward_hook(linear_hook))
    try:
        p = next(module.parameters(), None)
        x = torch.zeros(input_shape, device=p.device if p is not None else "cpu")
        with torch.no_grad():
            module(x)
    finally:
        for h in handles:
            h.remove()
        for m, mode in was_training.items():
            m.training = mode
    return total
