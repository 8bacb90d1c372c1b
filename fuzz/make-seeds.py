#!/usr/bin/env python3
"""Writes fuzz/seeds/token_decode/ from the Fernet spec vectors core tests with
(core/tests/vectors/*.json). Run from anywhere; commit the result.

Each vector gives a seed with just its token text and, when it has a TTL, a second seed
`token \\n ttl(u64 LE) offset(i64 LE)` in token_decode's input format, which replays the
spec's case exactly: `now` is the token's timestamp plus the offset for a token that
opens, and the offset itself for one that does not.
"""
import base64
import datetime
import hashlib
import json
import pathlib
import struct

ROOT = pathlib.Path(__file__).resolve().parent.parent
VECTORS = ROOT / "core" / "tests" / "vectors"
OUT = ROOT / "fuzz" / "seeds" / "token_decode"


def unix(text):
    return int(datetime.datetime.fromisoformat(text).timestamp())


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    for old in OUT.glob("spec-*"):
        old.unlink()
    written = set()
    for name in ("generate", "verify", "invalid"):
        for case in json.loads((VECTORS / f"{name}.json").read_text()):
            token = case["token"].encode()
            seeds = [token]
            if "ttl_sec" in case:
                now = unix(case["now"])
                anchor = 0
                if name == "verify":
                    raw = base64.urlsafe_b64decode(token)
                    anchor = struct.unpack(">Q", raw[1:9])[0]
                seeds.append(token + b"\n" + struct.pack("<Qq", case["ttl_sec"], now - anchor))
            for seed in seeds:
                digest = hashlib.sha1(seed).hexdigest()[:12]
                if digest not in written:  # generate and verify share a token
                    (OUT / f"spec-{name}-{digest}").write_bytes(seed)
                    written.add(digest)
    print(f"{len(written)} seeds in {OUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
