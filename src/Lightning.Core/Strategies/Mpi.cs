using System.Diagnostics;
using System.Runtime.InteropServices;

namespace Lightning.Strategies;

/// <summary>
/// MPI through MPI.NET for start-up, ranks and shutdown, and through MPICH's own nonblocking collectives for the data
/// path: MPI.NET 1.4 has no nonblocking collectives, and only those can give up after a timeout instead of hanging
/// when a peer died. MPI.NET binds to <c>msmpi.dll</c>; a resolver maps it to MPICH, whose handle values it shares.
/// </summary>
internal static class Mpi
{
    public const string Package = "mpich";
    private const string Library = "libmpich.so.12";
    private static readonly object s_gate = new();
    private static MPI.Environment? s_environment;
    private static int s_rank;
    private static volatile string? s_failure;

    /// <summary>How long a rank whose collective timed out listens for the others before naming the missing ones.</summary>
    private static readonly TimeSpan ProbeWindow = TimeSpan.FromSeconds(3);
    private const int ProbeTag = 0x4C4E;

    /// <summary>True when this process was started by MPICH's <c>mpiexec</c> (Hydra sets the PMI variables).</summary>
    public static bool LaunchedByMpiexec =>
        Environment.GetEnvironmentVariable("PMI_RANK") is not null || Environment.GetEnvironmentVariable("PMI_SIZE") is not null;

    /// <summary>The rank among the processes of this node, from Hydra's environment.</summary>
    public static int LocalRank =>
        int.TryParse(Environment.GetEnvironmentVariable("MPI_LOCALRANKID"), out var local) ? local : 0;

    /// <summary>Initializes MPI once per process (finalized at exit); fails naming the package when MPICH is missing.</summary>
    public static (int Rank, int Size) Initialize()
    {
        lock (s_gate)
        {
            if (s_environment is null)
            {
                if (!NativeLibrary.TryLoad(Library, out _)) throw Missing($"the MPI library {Library} was not found");
                NativeLibrary.SetDllImportResolver(typeof(MPI.Environment).Assembly, (name, _, _) =>
                    name.StartsWith("msmpi", StringComparison.OrdinalIgnoreCase) ? NativeLibrary.Load(Library) : IntPtr.Zero);
                var args = Array.Empty<string>();
                s_environment = new MPI.Environment(ref args, MPI.Threading.Serialized);
                // Errors come back as codes, so a dead peer becomes an exception here rather than an abort inside MPI.
                Check(MPI_Comm_set_errhandler(MPI.Unsafe.MPI_COMM_WORLD, MpiErrorsReturn), "MPI_Comm_set_errhandler");
                // After a failed collective MPI_Finalize would wait for the peer that never came: abort the job instead.
                AppDomain.CurrentDomain.ProcessExit += (_, _) =>
                {
                    if (s_failure is not null) MPI_Abort(MPI.Unsafe.MPI_COMM_WORLD, 1);
                    else s_environment?.Dispose();
                };
            }
            s_rank = MPI.Communicator.world.Rank;
            return (s_rank, MPI.Communicator.world.Size);
        }
    }

    public static InvalidOperationException Missing(string what) => new(
        $"Strategy = \"ddp\" runs on MPI, but {what}. Install MPICH (Debian/Ubuntu: apt-get install -y {Package}).");

    public static int Float => MPI.Unsafe.MPI_FLOAT;
    public static int Double => MPI.Unsafe.MPI_DOUBLE;
    public static int Byte => MPI.Unsafe.MPI_BYTE;
    public static int Long => MPI.Unsafe.MPI_LONG_LONG;

    public static int Op(ReduceFx reduce) => reduce switch
    {
        ReduceFx.Sum or ReduceFx.Mean => MPI.Unsafe.MPI_SUM,
        ReduceFx.Min => MPI.Unsafe.MPI_MIN,
        _ => MPI.Unsafe.MPI_MAX,
    };

    /// <summary>Reduces <paramref name="send"/> into <paramref name="receive"/> on every rank; the same pointer twice reduces in place.</summary>
    public static unsafe void AllReduce(void* send, void* receive, int count, int datatype, int op, TimeSpan timeout)
    {
        ThrowIfFailed();
        var source = send == receive ? s_inPlace : (IntPtr)send;
        Check(MPI_Iallreduce(source, (IntPtr)receive, count, datatype, op, MPI.Unsafe.MPI_COMM_WORLD, out var request), "MPI_Iallreduce");
        Wait(ref request, "AllReduce", timeout);
    }

    public static unsafe void Broadcast(void* buffer, int count, int datatype, int root, TimeSpan timeout)
    {
        ThrowIfFailed();
        Check(MPI_Ibcast((IntPtr)buffer, count, datatype, root, MPI.Unsafe.MPI_COMM_WORLD, out var request), "MPI_Ibcast");
        Wait(ref request, "Broadcast", timeout);
    }

    public static unsafe void AllGather(void* send, int count, int datatype, void* receive, TimeSpan timeout)
    {
        ThrowIfFailed();
        Check(MPI_Iallgather((IntPtr)send, count, datatype, (IntPtr)receive, count, datatype, MPI.Unsafe.MPI_COMM_WORLD, out var request), "MPI_Iallgather");
        Wait(ref request, "AllGather", timeout);
    }

    /// <summary>Sums the send buffer (the ranks' blocks one after another) across ranks; rank r receives block r, of <paramref name="counts"/>[r] elements.</summary>
    public static unsafe void ReduceScatter(void* send, void* receive, int[] counts, int datatype, int op, TimeSpan timeout)
    {
        ThrowIfFailed();
        fixed (int* countPointer = counts)
        {
            Check(MPI_Ireduce_scatter((IntPtr)send, (IntPtr)receive, (IntPtr)countPointer, datatype, op, MPI.Unsafe.MPI_COMM_WORLD, out var request), "MPI_Ireduce_scatter");
            Wait(ref request, "ReduceScatter", timeout);
        }
    }

    /// <summary>Every rank's block (<paramref name="counts"/>[r] elements) placed at <paramref name="displacements"/>[r] of every rank's receive buffer.</summary>
    public static unsafe void AllGatherV(void* send, void* receive, int[] counts, int[] displacements, int datatype, int rank, TimeSpan timeout)
    {
        ThrowIfFailed();
        fixed (int* countPointer = counts)
        fixed (int* displacementPointer = displacements)
        {
            Check(MPI_Iallgatherv((IntPtr)send, counts[rank], datatype, (IntPtr)receive, (IntPtr)countPointer, (IntPtr)displacementPointer, datatype,
                MPI.Unsafe.MPI_COMM_WORLD, out var request), "MPI_Iallgatherv");
            Wait(ref request, "AllGather", timeout);
        }
    }

    public static void Barrier(TimeSpan timeout)
    {
        ThrowIfFailed();
        Check(MPI_Ibarrier(MPI.Unsafe.MPI_COMM_WORLD, out var request), "MPI_Ibarrier");
        Wait(ref request, "Barrier", timeout);
    }

    /// <summary>
    /// Polls the request until it completes. A peer that never arrives (crashed, exited, hung) ends in a TimeoutException
    /// that names it; from then on MPI is unusable here (the request still points into this rank's buffers, so no
    /// further MPI call may progress it), and the process aborts the job at exit instead of finalizing.
    /// </summary>
    private static void Wait(ref int request, string collective, TimeSpan timeout)
    {
        var clock = Stopwatch.StartNew();
        var spin = new SpinWait();
        while (true)
        {
            Check(MPI_Test(ref request, out var done, s_statusIgnore), collective);
            if (done != 0) return;
            if (clock.Elapsed > timeout)
            {
                var missing = MissingRanks();
                var who = missing.Count switch
                {
                    0 => "another rank failed or stopped",
                    1 => $"rank {missing[0]} did not arrive (it exited, crashed or hangs)",
                    _ => $"ranks {string.Join(", ", missing)} did not arrive (they exited, crashed or hang)",
                };
                var message = $"DDP {collective} did not complete within {timeout} (TrainerOptions.DistributedTimeout) on rank " +
                              $"{s_rank}: {who}. This rank stops instead of waiting forever, and the job is aborted (MPI_Abort) when it exits.";
                s_failure = message;
                throw new TimeoutException(message);
            }
            // Yield instead of sleeping: small collectives finish in microseconds, and a 1 ms sleep would dominate them.
            spin.SpinOnce(sleep1Threshold: -1);
        }
    }

    /// <summary>
    /// Which ranks are missing: every rank that timed out sends its rank to every other and listens for theirs for a
    /// short while. The live ranks time out at about the same moment and hear each other; a rank that is gone or stuck
    /// elsewhere never answers. Point-to-point messages on their own tag leave the stalled collective alone.
    /// </summary>
    private static unsafe List<int> MissingRanks()
    {
        var size = MPI.Communicator.world.Size;
        var heard = new int[size];
        var requests = new int[2 * size];
        var mine = s_rank;
        var answered = new bool[size];
        fixed (int* buffer = heard)
        {
            int pending = 0;
            for (int peer = 0; peer < size; peer++)
            {
                if (peer == s_rank) continue;
                if (MPI_Irecv((IntPtr)(buffer + peer), 1, MPI.Unsafe.MPI_INT, peer, ProbeTag, MPI.Unsafe.MPI_COMM_WORLD, out requests[2 * peer]) != 0) continue;
                if (MPI_Isend((IntPtr)(&mine), 1, MPI.Unsafe.MPI_INT, peer, ProbeTag, MPI.Unsafe.MPI_COMM_WORLD, out requests[2 * peer + 1]) != 0) continue;
                pending++;
            }
            var clock = Stopwatch.StartNew();
            while (pending > 0 && clock.Elapsed < ProbeWindow)
            {
                for (int peer = 0; peer < size; peer++)
                {
                    if (peer == s_rank || answered[peer] || requests[2 * peer] == 0) continue;
                    if (MPI_Test(ref requests[2 * peer], out var done, s_statusIgnore) == 0 && done != 0)
                    {
                        answered[peer] = true;
                        pending--;
                    }
                }
                Thread.Sleep(1);
            }
        }
        return Enumerable.Range(0, size).Where(peer => peer != s_rank && !answered[peer]).ToList();
    }

    private static void ThrowIfFailed()
    {
        if (s_failure is { } failure)
            throw new InvalidOperationException($"MPI cannot be used after an earlier failure: {failure}");
    }

    private static void Check(int code, string call)
    {
        if (code != 0) throw new InvalidOperationException($"{call} failed with MPI error {code}: a peer process likely exited.");
    }

    // MPICH's values (mpi.h): MPI_IN_PLACE is (void*)-1, MPI_STATUS_IGNORE is (MPI_Status*)1, MPI_ERRORS_RETURN 0x54000001.
    private static readonly IntPtr s_inPlace = -1;
    private static readonly IntPtr s_statusIgnore = 1;
    private const int MpiErrorsReturn = 0x54000001;

    [DllImport(Library)] private static extern int MPI_Iallreduce(IntPtr send, IntPtr receive, int count, int datatype, int op, int comm, out int request);
    [DllImport(Library)] private static extern int MPI_Ibcast(IntPtr buffer, int count, int datatype, int root, int comm, out int request);
    [DllImport(Library)] private static extern int MPI_Iallgather(IntPtr send, int sendCount, int sendType, IntPtr receive, int receiveCount, int receiveType, int comm, out int request);
    [DllImport(Library)] private static extern int MPI_Ireduce_scatter(IntPtr send, IntPtr receive, IntPtr receiveCounts, int datatype, int op, int comm, out int request);
    [DllImport(Library)] private static extern int MPI_Iallgatherv(IntPtr send, int sendCount, int sendType, IntPtr receive, IntPtr receiveCounts, IntPtr displacements, int receiveType, int comm, out int request);
    [DllImport(Library)] private static extern int MPI_Ibarrier(int comm, out int request);
    [DllImport(Library)] private static extern int MPI_Test(ref int request, out int flag, IntPtr status);
    [DllImport(Library)] private static extern int MPI_Comm_set_errhandler(int comm, int errhandler);
    [DllImport(Library)] private static extern int MPI_Isend(IntPtr buffer, int count, int datatype, int destination, int tag, int comm, out int request);
    [DllImport(Library)] private static extern int MPI_Irecv(IntPtr buffer, int count, int datatype, int source, int tag, int comm, out int request);
    [DllImport(Library)] private static extern int MPI_Abort(int comm, int errorCode);
}
