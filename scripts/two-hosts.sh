#!/usr/bin/env bash
# Runs "mpiexec -n 2 <command...>" across two simulated machines: two network namespaces joined by a veth pair, each
# with its own hostname, the ranks held to TCP (no shared memory), hydra entering the second host through
# nsexec.sh instead of ssh. Needs root (ip netns). Used by DdpTests for NumNodes = 2.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cleanup() { ip netns del lnA 2>/dev/null || true; ip netns del lnB 2>/dev/null || true; }
cleanup
trap cleanup EXIT
ip netns add lnA && ip netns add lnB
ip link add vethA type veth peer name vethB
ip link set vethA netns lnA && ip link set vethB netns lnB
ip -n lnA addr add 10.77.0.1/24 dev vethA && ip -n lnB addr add 10.77.0.2/24 dev vethB
for n in lnA lnB; do ip -n $n link set lo up; done
ip -n lnA link set vethA up && ip -n lnB link set vethB up
command=$(printf '%q ' "$@")
ip netns exec lnA unshare -u bash -c "hostname node-lnA; mpiexec -iface vethA -hosts 10.77.0.1,10.77.0.2 -n 2 \
  -launcher ssh -launcher-exec '$here/nsexec.sh' -genv HOME '$HOME' -genv MPIR_CVAR_NOLOCAL 1 -genv UCX_TLS tcp,self \
  $command"
