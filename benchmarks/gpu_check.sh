#!/usr/bin/env bash
# The GPU path, checked: on a machine with an NVIDIA GPU, run the quick preset and the throughput
# benchmarks on one backend, sampling the GPU's utilisation with nvidia-smi while each trains, and print
# samples/s for VAE and SAE training, the GPU's busy share, and whether feeding the images keeps it busy.
#
#   KERAS_BACKEND=jax bash benchmarks/gpu_check.sh [OUT_DIR]      (default backend: tensorflow)
#
# About 5-10 minutes on one GPU. Everything it prints is also left in OUT_DIR (default: a new temporary
# directory): each step's output, and nvidia-smi's samples (utilisation %, memory MiB, every 200 ms).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v nvidia-smi >/dev/null || { echo "gpu_check: nvidia-smi not found: this check needs an NVIDIA GPU" >&2; exit 2; }
out=${1:-$(mktemp -d -t gpu-check-XXXX)}
mkdir -p "$out"
export KERAS_BACKEND=${KERAS_BACKEND:-tensorflow} TF_CPP_MIN_LOG_LEVEL=${TF_CPP_MIN_LOG_LEVEL:-3}
echo "gpu_check: backend $KERAS_BACKEND, output in $out"
nvidia-smi --query-gpu=index,name,memory.total,driver_version --format=csv,noheader | sed 's/^/  gpu /'
python - <<'PY'
import keras
from collapse_tui.engine.distribution import local_devices
print(f"  keras {keras.__version__} sees: {', '.join(local_devices())}")
PY

# Runs "$@" with nvidia-smi sampling beside it; prints the command's wall time and the GPU's utilisation
# over the samples taken while it ran (median, mean, and the share of samples with the GPU above 50%).
sampled() {
  local name=$1; shift
  nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader,nounits -lms 200 > "$out/$name.smi" &
  local smi=$! start=$SECONDS
  "$@" > "$out/$name.log" 2>&1 || { kill $smi; echo "gpu_check: $name failed, see $out/$name.log" >&2; tail -20 "$out/$name.log" >&2; exit 1; }
  kill $smi; wait $smi 2>/dev/null || true
  python - "$out/$name.smi" "$name" $((SECONDS - start)) <<'PY'
import statistics, sys
rows = [line.split(",") for line in open(sys.argv[1]) if line.strip()]
util = [float(r[0]) for r in rows if r[0].strip().replace(".", "").isdigit()]
mem = [float(r[1]) for r in rows if len(r) > 1 and r[1].strip().replace(".", "").isdigit()]
if util:
    busy = sum(u > 50 for u in util) / len(util)
    print(f"{sys.argv[2]}: {sys.argv[3]} s; GPU utilisation median {statistics.median(util):.0f}%, "
          f"mean {statistics.mean(util):.0f}%, above 50% in {busy:.0%} of {len(util)} samples; "
          f"memory up to {max(mem):,.0f} MiB")
else:
    print(f"{sys.argv[2]}: {sys.argv[3]} s; nvidia-smi gave no samples")
PY
}

echo "== the quick preset (collapse-tui --batch configs/quick.yaml)"
sampled quick collapse-tui --batch configs/quick.yaml --runs-dir "$out/runs"
grep -E "run\(s\) in" "$out/quick.log" | sed 's/^/  /'
echo "== VAE and SAE training, engine against plain fit (benchmarks/train_throughput.py)"
sampled train_throughput python benchmarks/train_throughput.py --repeats 5 --images 8192
grep -E "^(vae|sae) " "$out/train_throughput.log" | sed 's/^/  /'
echo "== a 16-SAE sweep, sequential against one bank (benchmarks/sweep_throughput.py)"
torch_loop=--no-torch
python -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null && torch_loop=
sampled sweep_throughput python benchmarks/sweep_throughput.py --repeats 3 $torch_loop
grep -E "updates/s|bank|sequential|torch" "$out/sweep_throughput.log" | sed 's/^/  /'
echo "== feeding the images (benchmarks/input_pipeline.py)"
sampled input_pipeline python benchmarks/input_pipeline.py --images 16384 --batch-size 256 --repeats 5
grep -E "steps/s|input pipeline" "$out/input_pipeline.log" | sed 's/^/  /'
echo "gpu_check: done; logs and nvidia-smi samples in $out"
