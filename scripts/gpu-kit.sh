#!/usr/bin/env bash
# Builds the GPU kit for a machine with an NVIDIA GPU and PyTorch but no .NET (README, "CUDA"): scripts/GpuCheck
# published self-contained for linux-x64 against the TorchSharp package without libtorch (TorchSharpBackend=none; the
# machine's torch/lib stands in), with libLibTorchSharp.so's GLIBCXX_3.4.32 need marked weak, MPICH's runtime (libmpich,
# the libraries it needs beyond glibc, and the hydra launcher) for "ddp", and the Python side of the GPU benchmark.
# ONNX Runtime comes as its CPU build: the CUDA provider (Microsoft.ML.OnnxRuntime.Gpu) alone is far over the limit.
# Packs it all into one .tar.xz of at most 60 MiB.
#   scripts/gpu-kit.sh [KIT.tar.xz]      (default: artifacts/gpu-kit.tar.xz; build outputs kept in artifacts/gpu-kit)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
kit=$(realpath -m "${1:-$root/artifacts/gpu-kit.tar.xz}")
limit=$((60 * 1024 * 1024))
work="$root/artifacts/gpu-kit"
stage="$work/stage/gpu-kit"

for tool in dotnet xz ldd ldconfig; do
  command -v "$tool" >/dev/null || { echo "gpu-kit: $tool is needed and was not found" >&2; exit 1; }
done
mpich=$(ldconfig -p | awk '/libmpich\.so\.12 .*x86-64/ && !found {print $NF; found = 1}')
hydra=$(command -v mpiexec.hydra || true)
proxy=$(command -v hydra_pmi_proxy || true)
if [ -z "$mpich" ] || [ -z "$hydra" ] || [ -z "$proxy" ]; then
  echo "gpu-kit: MPICH (libmpich.so.12, mpiexec.hydra, hydra_pmi_proxy) is needed: apt-get install -y mpich" >&2
  exit 1
fi

rm -rf "$work/stage"
mkdir -p "$stage/app" "$stage/mpi/bin" "$stage/mpi/lib" "$(dirname "$kit")"
# Its own artifacts folder: the repository's bin/obj keep the TorchSharp-cpu build the tests use.
dotnet publish "$root/scripts/GpuCheck" -c Release -r linux-x64 --self-contained --nologo -v quiet \
  -p:TorchSharpBackend=none -p:WeakenGlibcxxAlways=true --artifacts-path "$work/build" -o "$stage/app"
# Debugging aids and ONNX Runtime's Windows binary are not needed to run.
rm -f "$stage"/app/*.pdb "$stage"/app/*.xml "$stage/app/onnxruntime.dll" "$stage/app/createdump" \
  "$stage/app/libmscordaccore.so" "$stage/app/libmscordbi.so"
cp "$root/bench/reference/lightning_gpu.py" "$stage/app/"

# Whole outputs captured before matching: with pipefail, grep -q ending a pipe early would fail the writer.
libtorch=$(find "$stage" -name 'libtorch*.so*')
if [ -n "$libtorch" ]; then
  echo "gpu-kit: libtorch was published into the kit; it must come from the GPU machine: $libtorch" >&2
  exit 1
fi
if command -v readelf >/dev/null && [[ $(readelf -V "$stage/app/libLibTorchSharp.so") != *"GLIBCXX_3.4.32  Flags: WEAK"* ]]; then
  echo "gpu-kit: libLibTorchSharp.so's GLIBCXX_3.4.32 need is not marked weak" >&2
  exit 1
fi

# MPICH and what it links beyond glibc (the GPU machine may have none of it); hydra finds its proxy beside itself.
cp -L "$hydra" "$stage/mpi/bin/mpiexec.hydra"
cp -L "$proxy" "$stage/mpi/bin/hydra_pmi_proxy"
ln -s mpiexec.hydra "$stage/mpi/bin/mpiexec"
cp -L "$mpich" "$stage/mpi/lib/libmpich.so.12"
ldd "$mpich" "$hydra" "$proxy" | awk '/=> \// {print $1, $3}' | sort -u | while read -r name path; do
  case "$name" in
    libc.so.*|libm.so.*|libdl.so.*|libpthread.so.*|librt.so.*|libresolv.so.*|libutil.so.*|ld-linux*|libgcc_s.so.*|libstdc++.so.*) ;;
    *) cp -L "$path" "$stage/mpi/lib/$name" ;;
  esac
done

tar -C "$work/stage" -cf - gpu-kit | xz -T0 -1 > "$kit.part"
mv "$kit.part" "$kit"
size=$(stat -c %s "$kit")
if [ "$size" -gt "$limit" ]; then
  echo "gpu-kit: $kit is $size bytes, over the limit of $limit (60 MiB)" >&2
  exit 1
fi
echo "gpu-kit: $kit ($size bytes, $(du -sb "$stage" | cut -f1) unpacked)"
