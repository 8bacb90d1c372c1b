#!/usr/bin/env bash
# Builds every board project under firmware-sim/boards/ (each its own workspace, target
# and lock file) in release, runs its clippy, prints its flash and RAM use, and fails
# if a board is over its budget.
#
#   firmware-sim/boards/build-boards.sh                 # every board
#   firmware-sim/boards/build-boards.sh esp32c3         # some
#
# Needs: rustup targets thumbv6m-none-eabi riscv32imc-unknown-none-elf, and the
# llvm-tools component (llvm-size). Builds into ${CARGO_TARGET_DIR:-/tmp/target-fw}-boards.
#
# Flash: what the image loads from flash (code, read-only data, and the initial
# values of RAM data and RAM code). Static RAM: what is reserved in RAM before the
# first instruction runs (data, bss, RAM code; on the ESP32-C3 the 36 KiB heap too,
# not the 64 KiB heap in the bootloader's reclaimed RAM). Stacks are the rest of RAM
# and are not measured here (no hardware in CI).
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
target_dir="${CARGO_TARGET_DIR:-/tmp/target-fw}-boards"
llvm_size="$(rustc --print sysroot)/lib/rustlib/$(rustc -vV | sed -n 's/^host: //p')/bin/llvm-size"
if [[ ! -x "$llvm_size" ]]; then
  echo "build-boards.sh: llvm-size not found: rustup component add llvm-tools" >&2
  exit 2
fi

# board | target | flash budget (KiB) | static RAM budget (KiB) | flash sections | RAM sections
BOARDS=(
  "w5500-evb-pico|thumbv6m-none-eabi|128|32|.boot2 .vector_table .text .rodata .data|.data .bss .uninit"
  "esp32c3|riscv32imc-unknown-none-elf|640|128|.flash.appdesc .text .rodata .rodata.wifi .trap .rwtext .rwtext.wifi .data .data.wifi|.trap .rwtext .rwtext.wifi .data .data.wifi .bss .noinit"
)

wanted=("$@")
status=0
for entry in "${BOARDS[@]}"; do
  IFS='|' read -r board target flash_kib ram_kib flash_sections ram_sections <<<"$entry"
  if ((${#wanted[@]})) && [[ ! " ${wanted[*]} " == *" $board "* ]]; then continue; fi
  echo "== board $board ($target)"
  (cd "$here/$board" && CARGO_TARGET_DIR="$target_dir" cargo build --quiet --release)
  (cd "$here/$board" && CARGO_TARGET_DIR="$target_dir" \
    cargo clippy --quiet --release --all-targets -- -D warnings)
  elf="$target_dir/$target/release/board-$board"
  sizes="$("$llvm_size" -A "$elf")"
  sum() { # section names -> total bytes
    awk -v names=" $1 " 'index(names, " " $1 " ") {total += $2} END {print total + 0}' <<<"$sizes"
  }
  flash=$(sum "$flash_sections")
  ram=$(sum "$ram_sections")
  echo "flash: $flash bytes ($((flash * 100 / (flash_kib * 1024)))% of $flash_kib KiB)"
  echo "static RAM: $ram bytes ($((ram * 100 / (ram_kib * 1024)))% of $ram_kib KiB)"
  if ((flash > flash_kib * 1024)); then echo "OVER the flash budget"; status=1; fi
  if ((ram > ram_kib * 1024)); then echo "OVER the RAM budget"; status=1; fi
done
exit "$status"
