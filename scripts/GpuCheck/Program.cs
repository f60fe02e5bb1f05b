// Checks Lightning.Core on the machine's GPU (and what can be checked without one), one line per check:
//   check <name>: ok (<detail>) | check <name>: FAIL (<detail>) | check <name>: skipped: no CUDA
// then "checks: N ok, N failed, N skipped (no CUDA)"; exit code 0 when none failed.
// Run by scripts/gpu-run.sh from the kit (LIBTORCH_DIR names PyTorch's torch/lib) or by scripts/gpu-check.sh.
//   GpuCheck                 the checks, each in its own process
//   GpuCheck check <name>    one check, in this process
//   GpuCheck bench [...]     the GPU benchmark against PyTorch Lightning (bench/Lightning.Benchmarks/GpuBenchmark.cs)
//   GpuCheck ddp-rank <cpu|cuda>   one rank of the "ddp" check, started by the check itself under mpiexec
using Lightning.Benchmarks;
using Lightning.GpuCheck;

LibTorchLoader.Load(Environment.GetEnvironmentVariable(LibTorchLoader.Variable));
return args switch
{
    ["bench", .. var rest] => Bench(rest),
    ["check", var name] => Checks.RunOne(name),
    ["ddp-rank", var device] => Checks.DdpRank(device),
    [] => Checks.RunAll(),
    _ => Usage(),
};

static int Bench(string[] options)
{
    GpuBenchmark.Run(options);
    return Environment.ExitCode;
}

static int Usage()
{
    Console.Error.WriteLine("usage: GpuCheck | GpuCheck check <name> | GpuCheck bench [--device cuda|cpu] [--pairs N] [--python python3] [--script lightning_gpu.py] | GpuCheck ddp-rank cpu|cuda");
    return 2;
}
