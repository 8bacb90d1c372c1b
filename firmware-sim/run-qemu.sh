#!/usr/bin/env bash
# Builds the firmware image for QEMU's mps2-an385 board (Cortex-M3, LAN9118 Ethernet)
# and runs it: the emulated board joins a `host-chat server` running on this host,
# through QEMU's user-mode network (the board is 10.0.2.15; 10.0.2.2 is the host's
# 127.0.0.1), sends a greeting and two readings, prints what it gets, and exits when
# someone in the room sends the line "/exit" (type `//exit` in `host-chat client`).
#
#   # a server and a member, in two terminals:
#   HOST_CHAT_KEY=$(host-chat keygen) host-chat server --bind 127.0.0.1:12345
#   HOST_CHAT_KEY=...same key... host-chat client --nick ann 127.0.0.1:12345
#   # the board:
#   HOST_CHAT_KEY=...same key... firmware-sim/run-qemu.sh --port 12345
#
# Options:
#   --port PORT        the server's UDP port on the host (required)
#   --key-file PATH    the key (first non-comment line); default: $HOST_CHAT_KEY
#   --secs N           give up after N seconds of device time (default 120)
#   --nick NAME        default "board"; --room NAME: default "lobby"
#   --build-only       build, print the image's path, do not run
#   -- ARGS...         more arguments for qemu-system-arm
#
# The port, the key and a 256-bit seed reach the firmware on QEMU's semihosting command
# line (-append), so one image serves any server. QEMU's boards have no TRNG: the seed,
# 32 bytes from this host's CSPRNG (/dev/urandom), seeds the firmware's ChaCha20 CSPRNG.
# That puts the key and the seed in this host's process list: fine for an emulator on a
# developer's machine, not for anything else (a real board reads its key from a flash
# config block and its entropy from its hardware RNG: see firmware-sim/boards/). The firmware's output
# (JSON events, "board got: NICK: TEXT" lines) is QEMU's stdout; its exit status is the
# firmware's (0 after "/exit").
#
# Needs: rustup target add thumbv7m-none-eabi; qemu-system-arm (Debian/Ubuntu:
# apt-get install qemu-system-arm). Builds into ${CARGO_TARGET_DIR:-/tmp/target-fw}-image.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
target=thumbv7m-none-eabi
target_dir="${CARGO_TARGET_DIR:-/tmp/target-fw}-image"
port="" key_file="" secs=120 nick=board room=lobby build_only=0
extra=()
while (($#)); do
  case "$1" in
    --port) port="$2"; shift 2 ;;
    --key-file) key_file="$2"; shift 2 ;;
    --secs) secs="$2"; shift 2 ;;
    --nick) nick="$2"; shift 2 ;;
    --room) room="$2"; shift 2 ;;
    --build-only) build_only=1; shift ;;
    --) shift; extra=("$@"); break ;;
    -h|--help) sed -n '2,30p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "run-qemu.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done

(cd "$here/image" && CARGO_TARGET_DIR="$target_dir" \
  cargo build --quiet --release --target "$target" --features board-an385)
elf="$target_dir/$target/release/firmware-image"
if ((build_only)); then echo "$elf"; exit 0; fi

if [[ -z "$port" ]]; then
  echo "run-qemu.sh: --port PORT is needed: the UDP port of a host-chat server on this host," >&2
  echo "  e.g. HOST_CHAT_KEY=\$(host-chat keygen) host-chat server --bind 127.0.0.1:12345" >&2
  exit 2
fi
if [[ -n "$key_file" ]]; then
  key="$(grep -v '^[[:space:]]*\(#\|$\)' "$key_file" | head -n1 | tr -d '[:space:]')"
else
  key="$(printf '%s' "${HOST_CHAT_KEY:-}" | tr ',' ' ' | awk '{print $1}')"
fi
if [[ -z "$key" ]]; then
  echo "run-qemu.sh: no key: pass --key-file PATH or set HOST_CHAT_KEY (the server's key)" >&2
  exit 2
fi
command -v qemu-system-arm >/dev/null || {
  echo "run-qemu.sh: qemu-system-arm not found (Debian/Ubuntu: apt-get install qemu-system-arm)" >&2
  exit 2
}
# The firmware's CSPRNG seed: 32 bytes from the host's, as 64 hex digits.
seed="$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')"
echo "run-qemu.sh: board 10.0.2.15 -> server 10.0.2.2:$port (this host's 127.0.0.1:$port)" >&2
exec qemu-system-arm -machine mps2-an385 -nographic -nic user,model=lan9118 \
  -semihosting-config enable=on,target=native -kernel "$elf" \
  -append "port=$port key=$key seed=$seed secs=$secs nick=$nick room=$room" "${extra[@]}"
