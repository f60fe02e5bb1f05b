#!/bin/bash
# hydra's "ssh" stand-in for two-hosts.sh: options, then the host (an address), then the proxy command line; each host
# is its own network and UTS namespace, so MPI sees two machines.
while [[ $1 == -* ]]; do shift; done
host=$1; shift
case $host in 10.77.0.1) ns=lnA;; 10.77.0.2) ns=lnB;; *) echo "unknown host $host" >&2; exit 1;; esac
exec ip netns exec $ns unshare -u bash -c "hostname node-$ns; $*"
