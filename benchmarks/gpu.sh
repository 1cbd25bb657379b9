#!/usr/bin/env bash
# The GPU benchmarks, for a machine with a CUDA GPU (none was lent to this project so far, so no
# results of it exist yet): FPS at 1920x1080 of the CUDA path for fp32 and fp16, with and without
# double buffering (--double-buffer both: same run), torch.compile on CUDA, ONNX Runtime's GPU
# providers and TensorRT where installed (rows say why where not), and the whole engine.
#   FRAMES: folder of NIR images (default: the VCIP 2020 training NIR images, resized)
#   WEIGHTS: a lite checkpoint (default: the bundled weights); paper runs with a seeded random init
#   COUNT: timed frames per row (default 50)
set -euo pipefail
cd "$(dirname "$0")/.."
FRAMES=${FRAMES:-../shared/data/vcip2020/train/nir}
OUT=${OUT:-benchmarks/results/gpu}
COUNT=${COUNT:-50}
WEIGHTS=${WEIGHTS:-nirvision/weights/mpfnet-lite.pt}
mkdir -p "$OUT"
python -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'benchmarks/gpu.sh: no CUDA GPU here (torch ' + torch.__version__ + ')')"
nirvision info
for model in lite paper; do
  args=(--model "$model"); [ "$model" = lite ] && args=(--weights "$WEIGHTS")
  nirvision bench --device cuda "${args[@]}" --backends eager,compile,onnxruntime,tensorrt --precisions fp32,fp16 \
    --sizes 1920x1080,640x480 --frames "$FRAMES" --count "$COUNT" --engine-frames 200 --double-buffer both \
    --json "$OUT/bench-gpu-$model.json" --plot "$OUT/bench-gpu-$model.png" | tee "$OUT/bench-gpu-$model.txt"
done
