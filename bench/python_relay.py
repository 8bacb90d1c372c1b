#!/usr/bin/env python3
"""A minimal Fernet-over-UDP relay in Python: the baseline `host-chat bench` compares
`host-chat server` with (see BENCHMARKS.md, "Server throughput").

It does what `host-chat server` does for legacy senders (PROTOCOL.md, "Legacy senders"),
and nothing more: single-threaded, one datagram at a time; each datagram is a Fernet token
whose plaintext is UTF-8 text; the sender's address becomes member `legacy-N`; the sender
gets the token `server: received as #SEQ for N members`, every other known address the
token `legacy-N: TEXT` (encrypted once for all of them). Tokens that do not verify, are
older than --ttl, or are not UTF-8 are dropped. No replay memory, no timeouts.

    HOST_CHAT_KEY=$(host-chat keygen) python3 bench/python_relay.py --bind 127.0.0.1:12347
    host-chat bench --mode legacy 127.0.0.1:12347     # with the same HOST_CHAT_KEY

Needs `cryptography` (pip install cryptography).
"""

import argparse
import os
import socket
import sys

from cryptography.fernet import Fernet, InvalidToken


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bind", default="127.0.0.1:12347", help="IP:PORT to listen on")
    parser.add_argument("--print-port", action="store_true", help="print the bound port first")
    parser.add_argument("--ttl", type=int, default=60, help="largest token age, seconds")
    args = parser.parse_args()

    keys = os.environ.get("HOST_CHAT_KEY", "").replace(",", " ").split()
    if not keys:
        print("python_relay: set HOST_CHAT_KEY to the chat's key", file=sys.stderr)
        return 2
    fernet = Fernet(keys[0])
    host, _, port = args.bind.rpartition(":")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    sock.bind((host.strip("[]"), int(port)))
    if args.print_port:
        print(sock.getsockname()[1], flush=True)
    print(f"python relay on {sock.getsockname()}", file=sys.stderr, flush=True)

    members = {}  # address -> nick, in order of arrival
    seq = 0
    while True:
        data, addr = sock.recvfrom(65536)
        try:
            text = fernet.decrypt(data, ttl=args.ttl).decode("utf-8")
        except (InvalidToken, UnicodeDecodeError):
            continue
        nick = members.get(addr)
        if nick is None:
            nick = members[addr] = f"legacy-{len(members) + 1}"
        seq += 1
        receipt = f"server: received as #{seq} for {len(members)} members"
        sock.sendto(fernet.encrypt(receipt.encode()), addr)
        line = fernet.encrypt(f"{nick}: {text}".encode())
        for other in members:
            if other != addr:
                sock.sendto(line, other)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(0)
