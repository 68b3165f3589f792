#!/usr/bin/env bash
# Test hosts on one machine: each a network namespace with its own network stack, joined to
# the others by a bridge, with an address in 198.18.0.0/24 (RFC 2544's range for testing).
# Needs root (ip netns).
#
#   scripts/test-hosts.sh up N     create N hosts (removing leftovers first); prints "NAME ADDRESS" per host
#   scripts/test-hosts.sh env      the exports that make mpirun start ranks inside the hosts and talk TCP between them
#   scripts/test-hosts.sh list     the hosts that are up, as "NAME ADDRESS"
#   scripts/test-hosts.sh down     remove every host and the bridge
#   scripts/test-hosts.sh rsh ADDRESS COMMAND...   run COMMAND inside the host with ADDRESS (OpenMPI's launch agent)
#   scripts/test-hosts.sh detour ADDRESS     take the host's link off the bridge and join the bridge by a new veth instead;
#                                            prints "LINK RELAY": frames between the two must be carried by a relay
#                                            (fleet chaos's delayed link) or the host is cut off
#   scripts/test-hosts.sh undetour ADDRESS   put the host's link back on the bridge
#
# Traffic stays on the bridge: the namespaces have no other interface and no route out, and the
# bridge's own address (198.18.0.254, where mpirun listens) has no route beyond its subnet.
set -euo pipefail

prefix=fleet-h
bridge=fleetbr0
subnet=198.18.0
here=$(cd "$(dirname "$0")" && pwd)/$(basename "$0")

hosts() { ip netns list 2>/dev/null | awk '{print $1}' | grep "^${prefix}[0-9]*$" | sort -V || true; }

down() {
    for ns in $(hosts); do ip netns delete "$ns"; done
    if ip link show "$bridge" >/dev/null 2>&1; then ip link delete "$bridge"; fi
    # A veth whose namespace went first is gone with it; one left in the root namespace (a
    # detour's pair among them) is not.
    for link in $(ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1 | grep "^${prefix}[vdb][0-9]*$" || true); do
        ip link delete "$link" 2>/dev/null || true
    done
}

list() {
    for ns in $(hosts); do
        echo "$ns $(ip -n "$ns" -4 -o addr show dev eth0 | awk '{print $4}' | cut -d/ -f1)"
    done
}

up() {
    local count=$1
    [[ "$count" =~ ^[0-9]+$ ]] && (( count >= 1 && count <= 250 )) || { echo "test-hosts: up takes a host count from 1 to 250 (got '$count')" >&2; exit 2; }
    down
    ip link add "$bridge" type bridge
    ip addr add "$subnet.254/24" dev "$bridge"
    ip link set "$bridge" up
    for i in $(seq 1 "$count"); do
        local ns=$prefix$i
        ip netns add "$ns"
        ip link add "${prefix}v$i" type veth peer name eth0 netns "$ns"
        ip link set "${prefix}v$i" master "$bridge" up
        ip -n "$ns" addr add "$subnet.$i/24" dev eth0
        ip -n "$ns" link set eth0 up
        ip -n "$ns" link set lo up
    done
    list
}

environment() {
    cat <<EOF
export OMPI_MCA_plm_rsh_agent="$here rsh"
export OMPI_MCA_plm_rsh_no_tree_spawn=1
export OMPI_MCA_oob_tcp_if_include=$subnet.0/24
export OMPI_MCA_btl=self,vader,tcp
export OMPI_MCA_btl_tcp_if_include=$subnet.0/24
export FLEET_TEST_HOSTS="$(list | awk '{print $2}' | paste -sd, -)"
export FLEET_TEST_HOSTS_SCRIPT="$here"
EOF
}

# The namespace of the host named or addressed by $1, or nothing.
host_of() {
    for ns in $(hosts); do
        if [[ "$ns" == "$1" ]] || ip -n "$ns" -4 -o addr show dev eth0 | grep -q " $1/"; then echo "$ns"; return; fi
    done
}

# A relay sits between ${prefix}v$i (the host's link, off the bridge) and ${prefix}d$i, whose
# peer ${prefix}b$i is on the bridge. Neither end takes part in the root namespace's own IP.
detour() {
    local ns i
    ns=$(host_of "$1"); [[ -n "$ns" ]] || { echo "test-hosts: no test host has address '$1'" >&2; exit 2; }
    i=${ns#"$prefix"}
    undetour "$1" >/dev/null
    ip link set "${prefix}v$i" nomaster
    ip link add "${prefix}d$i" type veth peer name "${prefix}b$i"
    for link in "${prefix}v$i" "${prefix}d$i"; do
        sysctl -qw "net.ipv6.conf.$link.disable_ipv6=1" "net.ipv4.conf.$link.arp_ignore=8" 2>/dev/null || true
        ip link set "$link" promisc on up
    done
    sysctl -qw "net.ipv6.conf.${prefix}b$i.disable_ipv6=1" 2>/dev/null || true
    ip link set "${prefix}b$i" master "$bridge" up
    echo "${prefix}v$i ${prefix}d$i"
}

undetour() {
    local ns i
    ns=$(host_of "$1"); [[ -n "$ns" ]] || { echo "test-hosts: no test host has address '$1'" >&2; exit 2; }
    i=${ns#"$prefix"}
    if ip link show "${prefix}d$i" >/dev/null 2>&1; then ip link delete "${prefix}d$i"; fi
    ip link set "${prefix}v$i" promisc off
    ip link set "${prefix}v$i" master "$bridge" up
}

rsh() {
    local target=$1
    shift
    for ns in $(hosts); do
        if [[ "$ns" == "$target" ]] || ip -n "$ns" -4 -o addr show dev eth0 | grep -q " $target/"; then
            # Its own hostname too (a UTS namespace), as a separate machine has: OpenMPI names
            # its shared-memory files after the host, and two "hosts" called alike collide.
            exec ip netns exec "$ns" unshare --uts /bin/sh -c "hostname $ns && $*"
        fi
    done
    echo "test-hosts: no test host has address '$target' (scripts/test-hosts.sh list shows them)" >&2
    exit 255
}

case "${1:-}" in
    up) up "${2:-}" ;;
    down) down ;;
    env) environment ;;
    list) list ;;
    rsh) shift; rsh "$@" ;;
    detour) detour "${2:-}" ;;
    undetour) undetour "${2:-}" ;;
    *) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
