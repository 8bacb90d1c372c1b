#!/usr/bin/env bash
# host-chat against its peers, in one go (BENCHMARKS.md, "Relay at scale"):
#
#   bench/peers.sh                 # table: highest sustained rate, host-chat and mosquitto,
#                                  #   rooms of 4, 64, 250, 1000, with the ratio
#   bench/peers.sh scale           # host-chat server and the plain relay at the same load,
#                                  #   10 to 10,000 members: CPU per delivery, RSS
#   bench/peers.sh all             # both
#   bench/peers.sh table --sizes 4,64 --seconds 3     # options of `peers table` / `peers scale`
#   bench/peers.sh scale --server-arg=--max-members --server-arg=10000
#
# Builds host-chat and the harness (bench/peers, its own cargo project: rumqttc, tokio)
# in release mode, checks for mosquitto (installs it with apt-get when run as root, else
# says how), and runs everything on 127.0.0.1 with private servers and brokers that it
# stops by PID. Tables on stdout, every probe's JSON on stderr.
set -euo pipefail
cd "$(dirname "$0")/.."

what=${1:-table}
case $what in
    table | scale | goals) shift $(($# > 0 ? 1 : 0)) ;;
    all)
        shift
        (($# == 0)) || { echo "bench/peers.sh all takes no options" >&2; exit 2; }
        ;;
    -*) what=table ;;
    *) echo "usage: bench/peers.sh [table|scale|goals|all] [options]" >&2; exit 2 ;;
esac

if [[ $what == table || $what == all ]] && ! command -v mosquitto >/dev/null; then
    if [[ $(id -u) -eq 0 ]]; then
        echo "peers.sh: installing mosquitto (apt-get install mosquitto mosquitto-clients)" >&2
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mosquitto mosquitto-clients
    else
        echo "peers.sh: mosquitto is needed: sudo apt-get install mosquitto mosquitto-clients" >&2
        exit 1
    fi
fi

cargo build --release -p host-chat >&2
cargo build --release --manifest-path bench/peers/Cargo.toml >&2
peers=bench/peers/target/release/peers
host_chat=target/release/host-chat

echo "# $(date -u '+%Y-%m-%d %H:%M UTC'), load average before: $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) cores"
if [[ $what == table || $what == all ]]; then
    "$peers" table --host-chat "$host_chat" "$@"
fi
if [[ $what == scale || $what == all ]]; then
    "$peers" scale --host-chat "$host_chat" "$@"
fi
if [[ $what == goals || $what == all ]]; then
    # Issue 10's goals; extra options (e.g. --server-arg=--max-members
    # --server-arg=2000) go to every run. A run that fails says why and the rest go on.
    goal() {
        echo
        echo "\$ host-chat bench $*"
        "$host_chat" bench "$@" 2>&1 || true
    }
    goal --spawn-server -c 1000 -n 500 --rate 50 "$@"             # 1,000-member room at 50 lines/s
    goal --spawn-server -c 250 -n 2000 --rate 200 "$@"            # 250-member room at 200 lines/s
    goal --spawn-server -c 64 -n 4000 --window 1 "$@"             # closed loop, overloaded 64-member room
    goal --spawn-server -c 64 -n 4000 "$@"                        # the same, 16 lines in flight per client
    goal --mode plain --spawn-server -c 64 -n 4000 --window 1     # the plain relay, same load
fi
echo "# load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
