#!/usr/bin/env python3
"""Writes fuzz/seeds/frame_decode/: one well-formed frame of every kind of protocol
version 2, laid out as PROTOCOL.md describes (what a capture of real traffic decrypts
to), plus legacy text. Written from PROTOCOL.md alone, so it doubles as a second
implementation: core/tests/frame_seeds.rs checks that chat-core parses every one and
emits it back byte for byte. Run from anywhere; commit the result."""
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


def join(nick, room, window, epoch=0, next_seq=0):
    body = bytes([2]) + name(nick) + name(room) + bytes([window]) + struct.pack(">QQ", epoch, next_seq)
    padding = max(0, 80 - (10 + len(body) + 1))
    return frame(0x0E, body + bytes([padding]) + bytes(padding))


FRAMES = {
    "join-v1": frame(0x01, name("ann") + name("lobby")),
    "join": join("ann", "lobby", 16),
    "join-resume": join("ann", "lobby", 16, 7, 42),
    "welcome": frame(0x02, struct.pack(">QQIIBI", 7, 3, 1, 2, 16, 5) + name("ann-2")),
    "chat": frame(0x03, struct.pack(">I", 1) + text("hi")),
    "receipt": frame(0x04, struct.pack(">IQI", 1, 3, 2)),
    "refused": frame(0x10, struct.pack(">IB", 2, 1)),
    "busy": frame(0x0F, struct.pack(">IH", 3, 250)),
    "deliver": frame(0x05, struct.pack(">Q", 3) + name("ann") + text("hi"), 7),
    "ack": frame(0x06, struct.pack(">QQI", 4, 0b101, 2)),
    "ping": frame(0x07, struct.pack(">Q", 9)),
    "pong": frame(0x08, struct.pack(">QI", 9, 2)),
    "leave": frame(0x09),
    "notice": frame(0x0A, bytes([1]) + text("")),
    "notice-version": frame(0x0A, bytes([5]) + text("protocol 2 needed")),
    "missed": frame(0x0B, struct.pack(">QQ", 3, 9)),
    "who": frame(0x0C, struct.pack(">II", 1, 0)),
    "members": frame(0x0D, struct.pack(">IIB", 5, 2, 2) + name("ann") + name("bob")),
    "presence": frame(0x11, struct.pack(">IIB", 3, 10, 2) + bytes([1]) + name("ann") + bytes([3]) + name("bob")),
    "legacy": "hello from python".encode(),
}


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    for old in OUT.iterdir():
        old.unlink()
    for label, data in FRAMES.items():
        (OUT / label).write_bytes(data)
    print(f"wrote {len(FRAMES)} seeds to {OUT}")


if __name__ == "__main__":
    main()
