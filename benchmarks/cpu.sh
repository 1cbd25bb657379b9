#!/usr/bin/env bash
# The CPU benchmarks of the README: calibration + precision report, then `nirvision bench` for
# lite and paper at 256x256 and 640x480 on real NIR frames, each backend timed in the same run
# as eager fp32 (ONNX Runtime and OpenVINO as one session of all threads and as 2 workers of
# half of them; bf16 where the CPU has it natively), and the engine on a clip made from the
# same frames. Results go to benchmarks/results/.
#   FRAMES: folder of NIR images (default: the VCIP 2020 training NIR images)
#   PAIRED: folder with nir/ and rgb/ for the ground-truth report
#   WEIGHTS: a checkpoint (default: the bundled weights if present, else seeded random init)
#   COUNT / PAPER_COUNT: timed frames per row (default 24 / 4); PAPER_ENGINE_FRAMES: the paper engine's clip (24)
#   MODELS: which of "lite paper" to calibrate and bench (default both)
#   EXTRAS: 0 to skip the lite-only runs at the end (eager bf16 without native bf16, torch.compile, one thread)
#   CALIB: 0 to skip the calibration and precision reports (their int8 models must be in the cache)
#   OUT: where the results go (default benchmarks/results; one folder per CPU there)
set -euo pipefail
cd "$(dirname "$0")/.."
FRAMES=${FRAMES:-../shared/data/vcip2020/train/nir}
PAIRED=${PAIRED:-../shared/data/vcip2020/train}
OUT=${OUT:-benchmarks/results}
THREADS=${THREADS:-2}
# PyTorch's OpenMP threads spin while waiting (libgomp's default), which is eager at its best on
# an idle machine (session 5, Xeon: lite 640x480 on 2 threads 36 ms a frame spinning, 68 ms with
# OMP_WAIT_POLICY=PASSIVE; paper 256x256 383 against 483 ms). When another job holds a core,
# spinning threads stall instead (eager lite 256x256: 2.7 s instead of 59 ms a frame, measured
# with the training job running): run with OMP_WAIT_POLICY=PASSIVE there. ONNX Runtime and
# OpenVINO keep their own thread pools (ONNX Runtime's told not to spin).
if [ -n "${OMP_WAIT_POLICY:-}" ]; then export OMP_WAIT_POLICY; else unset OMP_WAIT_POLICY; fi
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
  count=${COUNT:-24}; efr=120; [ "$model" = paper ] && count=${PAPER_COUNT:-4} && efr=${PAPER_ENGINE_FRAMES:-24}
  cargs=("${args[@]}"); [ "$model" = paper ] && cargs+=(--random-init)  # calibrate takes the bundled (lite) weights by default
  [ "${CALIB:-1}" = 1 ] && python -m calibrate --threads "$THREADS" --paired "$PAIRED" "${cargs[@]}" --sizes 256x256,640x480 --num 12 --eval 6 \
    --precisions bf16,int8 --json "$OUT/calib-$model.json" | tee "$OUT/calib-$model.txt"
  nirvision bench --threads "$THREADS" "${args[@]}" --backends eager,onnxruntime,openvino --precisions "fp32,${BF16}int8" \
    --sizes 256x256,640x480 --frames "$FRAMES" --count "$count" --engine-frames "$efr" --workers 1,2 --json "$OUT/bench-$model.json" --plot "$OUT/bench-$model.png" | tee "$OUT/bench-$model.txt"
done
[ "${EXTRAS:-1}" = 1 ] || exit 0
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
# paper's engine over a longer clip where it runs in bf16 (fills and drains of a 24-frame run weigh a few %)
[ -n "$BF16" ] && nirvision bench --threads "$THREADS" --model paper --backends openvino --precisions bf16 --sizes 256x256 --frames "$FRAMES" \
  --count 4 --engine-frames 120 --workers 2 --json "$OUT/bench-paper-engine120.json" | tee "$OUT/bench-paper-engine120.txt"
exit 0
