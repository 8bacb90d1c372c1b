#!/usr/bin/env python3
"""Writes fuzz/seeds/frame_decode/: one well-formed frame of every kind, laid out as
PROTOCOL.md describes (what a capture of real traffic decrypts to), plus legacy text.
Run from anywhere; commit the result."""
import pathlib
import struct

OUT = pathlib.Path(__file__).resolve().parent / "seeds" / "frame_decode"
SESSION = 0x0102030405060708


def frame(kind, body=b"", session=SESSION):
    return bytes([0xC1, kind]) + struct.pack(">Q", session) + body


def name(s):
    b = s.encode()
    return bytes([len(b)]) + b


def text(s):
    b = s.encode()
    return struct.pack(">H", len(b)) + b


FRAMES = {
    "join": frame(0x01, name("ann") + name("lobby")),
    "welcome": frame(0x02, struct.pack(">QQIH", 7, 3, 1, 2)),
    "chat": frame(0x03, struct.pack(">I", 1) + text("hi")),
    "receipt": frame(0x04, struct.pack(">IQH", 1, 3, 2)),
    "deliver": frame(0x05, struct.pack(">QB", 3, 0) + name("ann") + text("hi"), 0),
    "notice-joined": frame(0x05, struct.pack(">QB", 4, 1) + name("bob") + text("joined"), 0),
    "ack": frame(0x06, struct.pack(">QI", 4, 0)),
    "ping": frame(0x07, struct.pack(">Q", 9)),
    "pong": frame(0x08, struct.pack(">QH", 9, 2)),
    "leave": frame(0x09),
    "notice": frame(0x0A, bytes([1]) + text("not joined")),
    "missed": frame(0x0B, struct.pack(">QQ", 3, 9)),
    "who": frame(0x0C),
    "members": frame(0x0D, struct.pack(">HB", 2, 2) + name("ann") + name("bob")),
    "legacy": "hello from python".encode(),
}


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    for label, data in FRAMES.items():
        (OUT / label).write_bytes(data)
    print(f"wrote {len(FRAMES)} seeds to {OUT}")


if __name__ == "__main__":
    main()
