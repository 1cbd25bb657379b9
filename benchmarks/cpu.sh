#!/usr/bin/env bash
# The CPU benchmarks of the README: calibration + precision report, then `nirvision bench` for
# lite and paper at 256x256 and 640x480 on real NIR frames, each backend timed in the same run
# as eager fp32 (ONNX Runtime and OpenVINO as one session of all threads and as 2 workers of
# half of them; bf16 where the CPU has it natively), and the engine on a clip made from the
# same frames. Results go to benchmarks/results/.
#   FRAMES: folder of NIR images (default: the VCIP 2020 training NIR images)
#   PAIRED: folder with nir/ and rgb/ for the ground-truth report
#   WEIGHTS: a checkpoint (default: the bundled weights if present, else seeded random init)
#   COUNT / PAPER_COUNT: timed frames per row (default 24 / 4)
#   MODELS: which of "lite paper" to calibrate and bench (default both; the lite-only runs at the end always run)
set -euo pipefail
cd "$(dirname "$0")/.."
FRAMES=${FRAMES:-../shared/data/vcip2020/train/nir}
PAIRED=${PAIRED:-../shared/data/vcip2020/train}
OUT=benchmarks/results
THREADS=${THREADS:-2}
# OpenMP workers that spin stall PyTorch when another job holds a core (eager lite 256x256: 2.7 s
# instead of 59 ms a frame on 2 threads, measured with the training job running); set it empty to keep spinning
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY-PASSIVE}
mkdir -p "$OUT"
# bf16 only where the CPU runs it natively (AMX / AVX-512 BF16): elsewhere eager bf16 takes
# seconds a frame and OpenVINO refuses it
BF16=""
python -c "from nirvision.runtime.backends.hardware import cpu_has_fast_bf16 as f; raise SystemExit(0 if f() else 1)" && BF16=bf16,
WEIGHTS=${WEIGHTS:-}
[ -z "$WEIGHTS" ] && [ -f nirvision/weights/mpfnet-lite.pt ] && WEIGHTS=nirvision/weights/mpfnet-lite.pt
largs=(--model lite); [ -n "$WEIGHTS" ] && largs=(--weights "$WEIGHTS")
for model in ${MODELS:-lite paper}; do
  args=(--model "$model")
  # trained weights exist for lite only; paper is timed with a seeded random init
  if [ "$model" = lite ] && [ -n "$WEIGHTS" ]; then args=(--weights "$WEIGHTS"); fi
  count=${COUNT:-24}; efr=120; [ "$model" = paper ] && count=${PAPER_COUNT:-4} && efr=6
  python -m calibrate --threads "$THREADS" --paired "$PAIRED" "${args[@]}" --sizes 256x256,640x480 --num 12 --eval 6 \
    --precisions bf16,int8 --json "$OUT/calib-$model.json" | tee "$OUT/calib-$model.txt"
  nirvision bench --threads "$THREADS" "${args[@]}" --backends eager,onnxruntime,openvino --precisions "fp32,${BF16}int8" \
    --sizes 256x256,640x480 --frames "$FRAMES" --count "$count" --engine-frames "$efr" --workers 1,2 --json "$OUT/bench-$model.json" | tee "$OUT/bench-$model.txt"
done
# eager bf16 where the CPU has no native bf16 (there it takes seconds a frame): a few frames at 256x256
[ -z "$BF16" ] && nirvision bench --threads "$THREADS" "${largs[@]}" --backends eager --precisions bf16 --sizes 256x256 --frames "$FRAMES" --count 3 --no-engine \
  --json "$OUT/bench-lite-bf16.json" | tee "$OUT/bench-lite-bf16.txt"
# torch.compile compiles for minutes per size on 2 cores: lite only
nirvision bench --threads "$THREADS" "${largs[@]}" --backends eager,compile,onnxruntime,openvino --precisions "fp32${BF16:+,bf16}" --sizes 256x256,640x480 --frames "$FRAMES" \
  --count "${COUNT:-24}" --workers 1,2 --no-engine --json "$OUT/bench-lite-compile.json" | tee "$OUT/bench-lite-compile.txt"
# the engine with a core to spare (as where inference runs on a GPU or on some of many cores):
# inference on one thread, the codecs on the other core
nirvision bench --threads 1 "${largs[@]}" --backends onnxruntime,openvino --precisions "fp32${BF16:+,bf16}" --sizes 256x256,640x480 --frames "$FRAMES" --count "${COUNT:-24}" \
  --engine-frames 120 --workers 1 --json "$OUT/bench-lite-1thread.json" | tee "$OUT/bench-lite-1thread.txt"
