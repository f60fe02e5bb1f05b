#!/usr/bin/env bash
# On the GPU machine (no .NET needed): unpacks the kit that scripts/gpu-kit.sh built, binds it to PyTorch's own libtorch
# (torch/lib, found with python3) and runs the checks, then the GPU benchmark against PyTorch Lightning. One line per
# check, a summary line, and the benchmark's closing "gpu: ..." line. Every step has its own time limit; together at
# most 9 minutes 30 seconds.
#   bash scripts/gpu-run.sh KIT.tar.xz
# Environment: LIBTORCH_DIR=<folder with libtorch*.so> instead of asking python3 (testing without PyTorch);
# PYTHON=<interpreter> (default python3); GPU_RUN_BENCH=0 skips the benchmark; GPU_RUN_BENCH_ARGS adds options to it
# (e.g. "--pairs=3 --samples=20000"). Exit code: 0 when every check passed and the benchmark (if run) finished.
set -uo pipefail
kit=${1:?usage: bash scripts/gpu-run.sh KIT.tar.xz}
python=${PYTHON:-python3}
start=$SECONDS
dest=$(mktemp -d "${TMPDIR:-/tmp}/gpu-kit.XXXXXX")
trap 'rm -rf "$dest"' EXIT

# step LIMIT NAME COMMAND...: runs COMMAND under LIMIT seconds (then TERM, KILL 10 s later) and says when it timed out.
step() {
  local limit=$1 name=$2
  shift 2
  timeout -k 10 "$limit" "$@"
  local code=$?
  if [ "$code" -eq 124 ] || [ "$code" -eq 137 ]; then echo "$name: FAIL (timed out after $limit s)"; fi
  return "$code"
}

gpu=$(timeout 20 nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null | head -1)
echo "machine: $(uname -m), $(nproc) CPUs, GPU: ${gpu:-none (nvidia-smi found no GPU)}"
# tar -J needs the xz program; where it is missing, Python's own lzma unpacks.
if command -v xz >/dev/null; then
  unpack=(tar -xJf "$kit" -C "$dest")
else
  unpack=("$python" -c 'import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2])' "$kit" "$dest")
fi
if ! step 60 unpack "${unpack[@]}"; then
  echo "unpack: FAIL ($kit could not be unpacked)"
  exit 1
fi
app="$dest/gpu-kit/app/GpuCheck"

if [ -n "${LIBTORCH_DIR:-}" ]; then
  lib=$LIBTORCH_DIR
  echo "libtorch: $lib (LIBTORCH_DIR)"
else
  lib=$(timeout 60 "$python" -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')
  if [ -z "$lib" ]; then
    echo "libtorch: FAIL ($python cannot import torch; set LIBTORCH_DIR to a folder with libtorch*.so)"
    exit 1
  fi
  echo "libtorch: $lib ($(timeout 60 "$python" -c 'import torch; print("pytorch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available())'))"
fi
export LIBTORCH_DIR=$lib
export LD_LIBRARY_PATH="$dest/gpu-kit/mpi/lib:$lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
# The ddp check starts its ranks with the first mpiexec on PATH: the kit's, on this machine only (fork, never ssh or
# a batch system's launcher that hydra would otherwise pick up from the environment).
export PATH="$dest/gpu-kit/mpi/bin:$PATH" HYDRA_LAUNCHER=fork

step 180 checks "$app"
checks=$?

bench=skipped
if [ "${GPU_RUN_BENCH:-1}" = 0 ]; then
  echo "bench: skipped (GPU_RUN_BENCH=0)"
elif ! why=$(timeout 60 "$python" -c 'import lightning.pytorch' 2>&1 && echo ok || timeout 60 "$python" -c 'import pytorch_lightning' 2>&1); then
  echo "bench: skipped: PyTorch Lightning is not importable by $python ($(tail -1 <<<"$why")); install pytorch-lightning 2.6.6"
else
  # shellcheck disable=SC2086 # GPU_RUN_BENCH_ARGS is a list of options
  step 300 bench "$app" bench --python="$python" ${GPU_RUN_BENCH_ARGS:-}
  bench=$?
fi

echo "gpu-run: checks exit $checks, bench exit $bench, $((SECONDS - start)) s"
[ "$checks" -eq 0 ] && { [ "$bench" = skipped ] || [ "$bench" -eq 0 ]; }
