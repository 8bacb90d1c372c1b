#!/usr/bin/env bash
# host-chat over NATS JetStream (`server --cluster`) against a single server, in one run:
# the broker's cost as ratios (BENCHMARKS.md "Rooms across servers").
#
#   bash bench/cluster.sh            # 3 runs of each case, medians
#   RUNS=1 bash bench/cluster.sh     # quicker
#
# Starts its own nats-server -js on a free port of 127.0.0.1 with a store in a temporary
# directory (stopped by PID at the end), builds host-chat in release, and for each load
# runs `host-chat bench --spawn-server` three ways, each with a fresh key (so fresh
# streams): one server alone; one server with --cluster; three servers with --cluster,
# the clients spread over them. nats-server's own CPU is reported beside the servers'.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
command -v nats-server >/dev/null || { echo "needs nats-server (apt-get install nats-server)" >&2; exit 2; }
cargo build --release -q -p host-chat
BIN=target/release/host-chat
STORE=$(mktemp -d)
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
nats-server -js -a 127.0.0.1 -p "$PORT" -sd "$STORE" >"$STORE/nats.log" 2>&1 &
NATS=$!
trap 'kill $NATS 2>/dev/null; wait $NATS 2>/dev/null; rm -rf "$STORE"' EXIT
for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break
    sleep 0.05
done
URL="nats://127.0.0.1:$PORT"
nats_cpu() { awk '{print ($14 + $15) / 100}' "/proc/$NATS/stat"; }

# name | bench arguments (the load)
LOADS=(
    "closed loop, 12 clients, 1 room|-c 12 -n 12000"
    "1000 lines/s, 12 clients, 1 room|-c 12 -n 10000 --rate 1000"
    "2000 lines/s, 120 clients, 12 rooms|-c 120 --rooms 12 -n 20000 --rate 2000"
)
# name | extra bench arguments (the servers)
CASES=(
    "single server|"
    "1 server + JetStream|--server-arg=--cluster --server-arg=$URL"
    "3 servers + JetStream|--servers 3 --server-arg=--cluster --server-arg=$URL"
)

printf '%-36s %-22s %10s %12s %9s %9s %12s %10s\n' load servers "lines/s" "deliveries/s" "p50 ms" "p99 ms" "µs CPU/dlv" "nats CPU s"
for load in "${LOADS[@]}"; do
    lname=${load%%|*}; largs=${load#*|}
    base=""
    for case in "${CASES[@]}"; do
        cname=${case%%|*}; cargs=${case#*|}
        results=()
        for _ in $(seq "$RUNS"); do
            before=$(nats_cpu)
            # shellcheck disable=SC2086
            json=$("$BIN" bench --spawn-server $largs $cargs --json 2>/dev/null || true)
            after=$(nats_cpu)
            results+=("$(python3 -c 'import json,sys
j=json.loads(sys.argv[1]); l=j["delivery_latency"]
print(j["accepted_per_s"], j["delivered_per_s"], l["p50_ms"], l["p99_ms"], j.get("server_cpu_per_delivery_us") or 0, float(sys.argv[2])-float(sys.argv[3]), j["lost"]+j["duplicates"]+j["unanswered"])' "$json" "$after" "$before")")
        done
        line=$(printf '%s\n' "${results[@]}" | python3 -c 'import sys,statistics
rows=[list(map(float,l.split())) for l in sys.stdin if l.strip()]
med=[statistics.median(c) for c in zip(*rows)]
print(" ".join(str(x) for x in med))')
        read -r lps dps p50 p99 cpu ncpu bad <<<"$line"
        printf '%-36s %-22s %10.0f %12.0f %9.2f %9.2f %12.2f %10.2f' "$lname" "$cname" "$lps" "$dps" "$p50" "$p99" "$cpu" "$ncpu"
        if [[ -z $base ]]; then
            base="$lps $dps $p50 $p99"
            echo
        else
            read -r blps bdps bp50 bp99 <<<"$base"
            python3 -c 'import sys; a=list(map(float,sys.argv[1:5])); b=list(map(float,sys.argv[5:9]))
print("   ×%.2f lines/s, ×%.2f deliveries/s, p50 ×%.1f, p99 ×%.1f" % (a[0]/b[0], a[1]/b[1], a[2]/b[2], a[3]/b[3]))' "$lps" "$dps" "$p50" "$p99" "$blps" "$bdps" "$bp50" "$bp99"
        fi
        [[ ${bad%.*} == 0 ]] || echo "  !! $bad lines lost, unanswered or twice" >&2
    done
done
