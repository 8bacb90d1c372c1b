#!/usr/bin/env python3
"""Fernet oracle for the end-to-end tests: Python's `cryptography` as the reference.

Reads a JSON list of operations on stdin and writes a JSON list of results on stdout,
one per operation, in order. Bytes travel as lower-case hex. Operations:

  {"op": "generate_key"}
      -> {"key": KEY}
  {"op": "encrypt", "key": KEY, "msg": HEX, "at": SECONDS}
      -> {"token": TOKEN}                       (Fernet.encrypt_at_time)
  {"op": "decrypt", "keys": [KEY...], "token": TOKEN, "ttl": SECONDS|null, "now": SECONDS|null}
      -> {"ok": true, "msg": HEX} | {"ok": false, "error": "InvalidToken"}
                                                (MultiFernet.decrypt[_at_time])
  {"op": "rotate", "keys": [KEY...], "token": TOKEN}
      -> {"ok": true, "token": TOKEN} | {"ok": false, "error": ...}   (MultiFernet.rotate)
  {"op": "timestamp", "keys": [KEY...], "token": TOKEN}
      -> {"ok": true, "timestamp": SECONDS} | {"ok": false, "error": ...}
                                                (extract_timestamp, which checks the MAC)

Keys and tokens are text. A failed operation answers {"ok": false, "error": NAME}; only
a malformed request makes the script itself fail.
"""

import json
import sys

from cryptography.fernet import Fernet, InvalidToken, MultiFernet


def multi(keys):
    return MultiFernet([Fernet(k) for k in keys])


def run(op):
    kind = op["op"]
    if kind == "generate_key":
        return {"key": Fernet.generate_key().decode()}
    if kind == "encrypt":
        token = Fernet(op["key"]).encrypt_at_time(bytes.fromhex(op["msg"]), op["at"])
        return {"token": token.decode()}
    if kind == "decrypt":
        f, token, ttl = multi(op["keys"]), op["token"].encode(), op.get("ttl")
        if op.get("now") is not None:
            msg = f.decrypt_at_time(token, ttl, op["now"])
        else:
            msg = f.decrypt(token, ttl)
        return {"ok": True, "msg": msg.hex()}
    if kind == "rotate":
        return {"ok": True, "token": multi(op["keys"]).rotate(op["token"].encode()).decode()}
    if kind == "timestamp":
        for key in op["keys"]:
            try:
                return {"ok": True, "timestamp": Fernet(key).extract_timestamp(op["token"].encode())}
            except InvalidToken:
                pass
        raise InvalidToken
    raise ValueError(f"unknown op {kind!r}")


def answer(op):
    try:
        return run(op)
    except (InvalidToken, ValueError, TypeError) as err:
        if isinstance(err, ValueError) and str(err).startswith("unknown op"):
            raise
        return {"ok": False, "error": type(err).__name__}


def main():
    ops = json.load(sys.stdin)
    json.dump([answer(op) for op in ops], sys.stdout)


if __name__ == "__main__":
    main()
