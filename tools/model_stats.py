"""Parameters, GFLOPs and eager CPU time of the MPFNet networks, for each model size.

    python tools/model_stats.py                      # paper and lite, 2 threads
    python tools/model_stats.py --models lite --runs 9 --threads 1
    python tools/model_stats.py --omp-passive        # OMP_WAIT_POLICY=PASSIVE (shared CPUs)

GFLOPs are 2 x multiply-adds of every convolution (``nirvision.models.profile.count_flops``)
for one 256x256 image. The chain (G_N2G then F_G, with its padding) is also counted at
640x480, which it runs padded to a multiple of the network's size step. Times are the median
of ``--runs`` eager fp32 forwards after ``--warmup`` ones, one frame per forward, under
``torch.inference_mode``. On a CPU shared with other work OpenMP threads that spin while
waiting can slow multi-thread runs many times over; ``--omp-passive`` makes them sleep.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

ROLES = ("nir_to_gray", "colorizer", "gray_to_nir", "image_discriminator", "feature_discriminator")
SIZES = {"256x256": (256, 256), "640x480": (480, 640)}


def network_rows(config, count_flops, count_parameters):
    rows = []
    for role in ROLES:
        spec = config.networks[role]
        net = spec.build().eval()
        flops = count_flops(net, (1, spec.config.in_channels, 256, 256))
        rows.append((role, count_parameters(net), flops / 1e9))
    return rows


def time_chain(chain, hw, warmup: int, runs: int) -> list[float]:
    import torch

    x = torch.rand(1, 1, *hw) * 2 - 1
    times = []
    with torch.inference_mode():
        for i in range(warmup + runs):
            t0 = time.perf_counter()
            chain(x)
            if i >= warmup:
                times.append(time.perf_counter() - t0)
    return times


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=["paper", "lite"], help="bundled names or YAML paths")
    p.add_argument("--threads", type=int, default=2, help="torch intra-op threads (default 2)")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--omp-passive", action="store_true", help="set OMP_WAIT_POLICY=PASSIVE before torch loads")
    p.add_argument("--no-time", action="store_true", help="counts only")
    args = p.parse_args(argv)
    if args.omp_passive:
        os.environ["OMP_WAIT_POLICY"] = "PASSIVE"

    import torch

    from nirvision.api import build_chain
    from nirvision.models import load_model_config
    from nirvision.models.chain import padded_size
    from nirvision.models.profile import count_flops, count_parameters

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), "
          f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'default')}, {os.cpu_count()} logical cores")
    print()
    print("| model | network | parameters | GFLOPs @256x256 |")
    print("|---|---|---:|---:|")
    chains = {}
    for name in args.models:
        config = load_model_config(name, require_training=True)
        for role, params, gflops in network_rows(config, count_flops, count_parameters):
            print(f"| {config.name} | {role} | {params:,} | {gflops:.2f} |")
        chain = build_chain(config).eval()
        chains[config.name] = chain
        chain_flops = {k: count_flops(chain, (1, 1, *hw)) / 1e9 for k, hw in SIZES.items()}
        print(f"| {config.name} | **inference chain** (nir_to_gray + colorizer) | {count_parameters(chain):,} | "
              f"{chain_flops['256x256']:.2f} (640x480: {chain_flops['640x480']:.2f}) |")
        sys.stdout.flush()
    if args.no_time:
        return 0
    print()
    print(f"Eager fp32 CPU time of the inference chain per frame, median of {args.runs} after {args.warmup} warm-up "
          f"({args.threads} thread(s)):")
    print()
    print("| model | frame | runs at | median ms | min ms | max ms |")
    print("|---|---|---|---:|---:|---:|")
    for name, chain in chains.items():
        for label, (h, w) in SIZES.items():
            t = time_chain(chain, (h, w), args.warmup, args.runs)
            at = f"{padded_size(w, chain.multiple)}x{padded_size(h, chain.multiple)}"
            print(f"| {name} | {label} | {at} | {statistics.median(t) * 1e3:.0f} | {min(t) * 1e3:.0f} | {max(t) * 1e3:.0f} |")
            sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
