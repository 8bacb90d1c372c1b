#!/usr/bin/env bash
# Builds the firmware image (firmware-sim/image, its own workspace) in release (opt-level
# "z", LTO, panic=abort) and prints its sizes; checks the device libraries (the node,
# the raw-smoltcp and the embassy-net drivers) build for thumbv6m-none-eabi and
# riscv32imac-unknown-none-elf; with QEMU, measures the stack. The boards:
# boards/build-boards.sh.
#
#   firmware-sim/build-firmware.sh            # build, sizes, portability checks
#   firmware-sim/build-firmware.sh --qemu     # also run under QEMU: stack high-water mark
#
# Needs: rustup targets thumbv7em-none-eabihf thumbv6m-none-eabi thumbv7m-none-eabi
# riscv32imac-unknown-none-elf; binutils-arm-none-eabi (arm-none-eabi-size, -nm);
# qemu-system-arm for --qemu. Budget: flash <= 48 KiB, RAM (statics + stack) <= 16 KiB
# (48 KiB: protocol version 2 took the image past 40 KiB; see BENCHMARKS.md, "Firmware").
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
target_dir="${CARGO_TARGET_DIR:-/tmp/target-fw}"
image_target_dir="${target_dir}-image"
qemu=0
[[ "${1:-}" == "--qemu" ]] && qemu=1

FLASH_BUDGET=$((48 * 1024))
RAM_BUDGET=$((16 * 1024))

size_of() { # elf -> "flash ram" (flash: vectors+text+rodata+data; ram: data+bss+uninit)
  arm-none-eabi-size -A "$1" | awk '
    $1==".vector_table"||$1==".text"||$1==".rodata" {f+=$2}
    $1==".data" {f+=$2; r+=$2}
    $1==".bss"||$1==".uninit" {r+=$2}
    END {print f, r}'
}

status=0
for target in thumbv7em-none-eabihf thumbv6m-none-eabi; do
  echo "== firmware image, $target"
  (cd "$here/image" && CARGO_TARGET_DIR="$image_target_dir" \
    cargo build --quiet --release --target "$target")
  elf="$image_target_dir/$target/release/firmware-image"
  arm-none-eabi-size -A "$elf" | grep -Ev '^\.(debug|comment|ARM)|^$'
  read -r flash ram < <(size_of "$elf")
  echo "flash: $flash bytes ($((flash * 100 / FLASH_BUDGET))% of $FLASH_BUDGET); static RAM: $ram bytes"
  if ((flash > FLASH_BUDGET)); then echo "OVER the flash budget"; status=1; fi
  echo "largest symbols:"
  arm-none-eabi-nm --size-sort -S -C --radix=d "$elf" | tail -8 | awk '{ $1=""; print }'

  if ((qemu)); then
    (cd "$here/image" && CARGO_TARGET_DIR="$image_target_dir" \
      cargo build --quiet --release --target "$target" --features qemu)
    if [[ "$target" == thumbv7em-none-eabihf ]]; then machine=(-cpu cortex-m4 -machine mps2-an386)
    else machine=(-machine mps2-an385); fi # a Cortex-M3 runs thumbv6m code
    out="$(timeout 60 qemu-system-arm "${machine[@]}" -nographic \
      -semihosting-config enable=on,target=native -kernel "$elf")"
    echo "$out"
    stack="$(sed -n 's/^stack: \([0-9]*\) bytes.*/\1/p' <<<"$out")"
    echo "RAM with stack: $((ram + stack)) bytes of $RAM_BUDGET"
    if ((ram + stack > RAM_BUDGET)); then echo "OVER the RAM budget"; status=1; fi
    # Leave the plain image in place for the sizes above.
    (cd "$here/image" && CARGO_TARGET_DIR="$image_target_dir" \
      cargo build --quiet --release --target "$target")
  fi
done

# The real-board image (LAN9118 driver, Ethernet + ARP): no small-part budget (it is
# linked for the MPS2's 4 MiB memories); run it against a server with ./run-qemu.sh.
echo "== board image (mps2-an385, --features board-an385), thumbv7m-none-eabi"
(cd "$here/image" && CARGO_TARGET_DIR="$image_target_dir" \
  cargo build --quiet --release --target thumbv7m-none-eabi --features board-an385)
read -r flash ram < <(size_of "$image_target_dir/thumbv7m-none-eabi/release/firmware-image")
echo "flash: $flash bytes; static RAM: $ram bytes"

# The device libraries alone, as a board links them: the node (no network stack), the
# raw-smoltcp driver, the embassy-net driver (its own smoltcp).
for target in thumbv6m-none-eabi riscv32imac-unknown-none-elf; do
  for build in "firmware-sim --no-default-features" \
    "firmware-sim --no-default-features --features smoltcp,ethernet" \
    "firmware-embassy --no-default-features"; do
    echo "== device library, $target: $build"
    # shellcheck disable=SC2086 # the package and its flags, split on purpose
    (cd "$root" && CARGO_TARGET_DIR="$target_dir" \
      cargo build --quiet --release --target "$target" -p $build)
  done
done
echo ok
exit "$status"
