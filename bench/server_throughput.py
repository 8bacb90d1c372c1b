#!/usr/bin/env python3
"""Server throughput: `host-chat server` against its baselines, in the same run.

For 1, 4 and 16 clients, REPEAT times (the figures are the medians), runs `host-chat
bench` against:
  * host-chat server, framed clients, as fast as they go (peak), then at half that rate;
  * the plain relay (`host-chat bench-relay --plain`, no cryptography, same event loop);
  * host-chat server and bench/python_relay.py with the same legacy-text load (bursts of
    LEGACY_MESSAGES lines: the server remembers 256 legacy tokens per TTL + 60 s against
    replays, so that is the most a legacy load can send it in one go);
  * bench/python_relay.py alone with a longer legacy load (PYTHON_MESSAGES lines), for a
    sustained figure to set against host-chat's framed one;
  * optionally (BASELINE=path/to/old/host-chat) an older server with the same framed load.

    cargo build --release -p host-chat
    python3 bench/server_throughput.py [path/to/host-chat] > results.md

Prints a Markdown table on stdout, every run's JSON on stderr.
"""

import json
import os
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
BIN = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "..", "target", "release", "host-chat")
BASELINE = os.environ.get("BASELINE")
REPEAT = int(os.environ.get("REPEAT", "3"))
CLIENTS = [int(c) for c in os.environ.get("CLIENTS", "1 4 16").split()]
MESSAGES = int(os.environ.get("MESSAGES", "20000"))
LEGACY_MESSAGES = 200
PYTHON_MESSAGES = int(os.environ.get("PYTHON_MESSAGES", "5000"))


def bench(*args, env=None):
    cmd = [BIN, "bench", "--json", *map(str, args)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed: {out.stderr}")
    result = json.loads(out.stdout)
    print(json.dumps({"args": list(map(str, args)), **result}), file=sys.stderr, flush=True)
    return result


def baseline(clients, messages):
    """The same framed load against an older binary's server."""
    key = subprocess.run([BIN, "keygen"], capture_output=True, text=True, check=True).stdout.strip()
    env = {**os.environ, "HOST_CHAT_KEY": key}
    server = subprocess.Popen(
        [BASELINE, "server", "--bind", "127.0.0.1:0", "--print-port"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env,
    )
    try:
        port = server.stdout.readline().strip()
        return bench(f"127.0.0.1:{port}", "-c", clients, "-n", messages, env=env)
    finally:
        server.kill()
        server.wait()


def main():
    runs = {}

    def keep(name, clients, result):
        runs.setdefault((name, clients), []).append(result)

    for rep in range(REPEAT):
        for c in CLIENTS:
            peak = bench("--spawn-server", "-c", c, "-n", MESSAGES)
            keep("framed", c, peak)
            best = peak["accepted_per_s"]
            if c * 16 > 64:
                # At most 64 lines in flight per room (the history holds 128).
                pipelined = bench("--spawn-server", "-c", c, "-n", MESSAGES, "--pipeline", max(1, 64 // c))
                keep("framed_pipelined", c, pipelined)
                best = max(best, pipelined["accepted_per_s"])
            half = best / 2
            n = max(2000, min(MESSAGES, int(half * 2)))
            keep("framed_half", c, bench("--spawn-server", "-c", c, "-n", n, "--rate", f"{half:.0f}"))
            keep("plain", c, bench("--mode", "plain", "--spawn-server", "-c", c, "-n", MESSAGES))
            keep("legacy_host", c, bench("--mode", "legacy", "--spawn-server", "-c", c, "-n", LEGACY_MESSAGES))
            keep("legacy_python", c, bench("--mode", "legacy", "--spawn-server", "python",
                                           "--python-relay", os.path.join(HERE, "python_relay.py"),
                                           "-c", c, "-n", LEGACY_MESSAGES))
            keep("legacy_python_long", c, bench("--mode", "legacy", "--spawn-server", "python",
                                                "--python-relay", os.path.join(HERE, "python_relay.py"),
                                                "-c", c, "-n", PYTHON_MESSAGES))
            if BASELINE:
                keep("framed_before", c, baseline(c, max(2000, MESSAGES // 4)))

    def med(name, c, key, sub=None):
        values = [r[key][sub] if sub else r[key] for r in runs.get((name, c), [])]
        values = [v for v in values if v is not None]
        return statistics.median(values) if values else None

    def f(v, digits=0):
        return "-" if v is None else f"{v:,.{digits}f}"

    def ratio(a, b):
        return "-" if not a or not b else f"{a / b:.2f}×"

    print(f"Medians of {REPEAT} runs; {MESSAGES} messages of 64 bytes (legacy: {LEGACY_MESSAGES}).\n")
    print("| clients | host-chat msg/s | deliveries/s | p50 / p99 / p99.9 ms at peak "
          "| p99 ms at half peak | retrans. | pipelined msg/s (P = 64/N) | plain relay msg/s | host ÷ plain "
          "| legacy host msg/s | legacy python msg/s | host ÷ python (legacy) "
          "| python msg/s, sustained | host framed ÷ python sustained |"
          + (" before msg/s | after ÷ before |" if BASELINE else ""))
    print("|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|" + ("---:|---:|" if BASELINE else ""))
    for c in CLIENTS:
        host = med("framed", c, "accepted_per_s")
        best = max(host or 0, med("framed_pipelined", c, "accepted_per_s") or 0)
        plain = med("plain", c, "accepted_per_s")
        lh = med("legacy_host", c, "accepted_per_s")
        lp = med("legacy_python", c, "accepted_per_s")
        row = [
            str(c), f(host), f(med("framed", c, "delivered_per_s")),
            " / ".join(f(med("framed", c, "delivery_latency", p), 2) for p in ("p50_ms", "p99_ms", "p999_ms")),
            f(med("framed_half", c, "delivery_latency", "p99_ms"), 2),
            f(med("framed", c, "retransmissions")),
            f(med("framed_pipelined", c, "accepted_per_s")),
            f(plain), ratio(best, plain), f(lh), f(lp), ratio(lh, lp),
            f(med("legacy_python_long", c, "accepted_per_s")),
            ratio(best, med("legacy_python_long", c, "accepted_per_s")),
        ]
        if BASELINE:
            before = med("framed_before", c, "accepted_per_s")
            row += [f(before), ratio(host, before)]
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
