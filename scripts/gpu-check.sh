#!/usr/bin/env bash
# Checks Lightning.Core's CUDA paths on a machine with an NVIDIA GPU, the .NET 10 SDK and access to NuGet:
# builds against TorchSharp's CUDA build of libtorch and runs scripts/GpuCheck. Exit code 0 when no check failed
# (without a GPU the CUDA checks say "skipped: no CUDA"). Without .NET there: scripts/gpu-kit.sh and gpu-run.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
backend="${TORCHSHARP_BACKEND:-cuda-linux}"
dotnet run -c Release --project scripts/GpuCheck -p:TorchSharpBackend="$backend"
