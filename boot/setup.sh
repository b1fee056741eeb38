#!/usr/bin/env bash
# Makes sure this machine can build and boot the kernel: the pinned nightly
# toolchain with rust-src, rustfmt and clippy (rustup does not install them
# by itself here), and the host tools qemu-system-i386, grub-mkrescue and
# xorriso.
# As root it installs what is missing (apt-get); otherwise it stops and
# prints the exact command to run.
set -eu
cd "$(dirname "$0")/.."

if ! command -v rustup >/dev/null 2>&1; then
    echo "setup: rustup is not installed; install it from https://rustup.rs, then run this again" >&2
    exit 1
fi
toolchain=$(sed -n 's/^channel *= *"\(.*\)"/\1/p' rust-toolchain.toml)
if ! rustup run "$toolchain" rustc --print sysroot >/dev/null 2>&1 ||
   [ ! -d "$(rustup run "$toolchain" rustc --print sysroot)/lib/rustlib/src/rust/library/core" ] ||
   ! rustup run "$toolchain" cargo fmt --version >/dev/null 2>&1 ||
   ! rustup run "$toolchain" cargo clippy --version >/dev/null 2>&1; then
    echo "setup: installing Rust $toolchain with rust-src, rustfmt and clippy (from rust-toolchain.toml)" >&2
    rustup toolchain install
fi

missing=()
command -v qemu-system-i386 >/dev/null 2>&1 || missing+=(qemu-system-x86)
command -v grub-mkrescue >/dev/null 2>&1 || missing+=(grub-common)
[ -d /usr/lib/grub/i386-pc ] || missing+=(grub-pc-bin)
command -v xorriso >/dev/null 2>&1 || missing+=(xorriso)
command -v mformat >/dev/null 2>&1 || missing+=(mtools)
command -v strip >/dev/null 2>&1 || missing+=(binutils)
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "setup: installing ${missing[*]}" >&2
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq >/dev/null
        apt-get install -y -qq "${missing[@]}" >/dev/null
    else
        echo "setup: missing host tools; run:" >&2
        echo "  sudo apt-get update && sudo apt-get install -y ${missing[*]}" >&2
        exit 1
    fi
fi
