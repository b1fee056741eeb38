#!/usr/bin/env bash
# Runs cargo for the workspace's host crates (kernel/ksyms-tool, the
# post-link tool, and kernel/ksyms-table's host tests), e.g.
#   boot/host-cargo.sh build -p ksyms-tool
#   boot/host-cargo.sh test -p ksyms-table
#
# Why not plain cargo: .cargo/config.toml makes every build in this
# directory tree a kernel build, with `build.target = i686-probe.json` and
# `[unstable] build-std = ["core", "compiler_builtins", "alloc"]`. An
# explicit `--target` overrides the first, but nothing overrides the second:
# cargo joins config arrays (`--config 'unstable.build-std=[]'` changes
# nothing, a string or boolean is refused), and build-std then rebuilds core
# and alloc for the host too, which clash with the sysroot's std (E0152).
# Cargo reads config files from the current directory upwards, not from the
# manifest, so this runs cargo from `/` with --manifest-path: the same
# workspace, lock file and profiles, with only $CARGO_HOME's config. The
# pinned toolchain is named explicitly, since rustup also looks for
# rust-toolchain.toml from the current directory.
#
# Artifacts go to <target dir>/host (<target dir> is $CARGO_TARGET_DIR, else
# target/), apart from the kernel's: the runner builds the tool while an
# outer `cargo test` holds the kernel's build lock.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
[ $# -ge 1 ] || { echo "usage: $0 CARGO-COMMAND [ARGS...]" >&2; exit 2; }
base=${CARGO_TARGET_DIR:-$root/target}
case "$base" in /*) ;; *) base="$PWD/$base" ;; esac
toolchain=$(sed -n 's/^channel *= *"\(.*\)"/\1/p' "$root/rust-toolchain.toml")
command=$1; shift
cd /
unset CARGO_BUILD_TARGET
RUSTUP_TOOLCHAIN=$toolchain CARGO_TARGET_DIR="$base/host" exec cargo "$command" --manifest-path "$root/Cargo.toml" "$@"
