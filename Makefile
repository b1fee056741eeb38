# The two commands of the README:
#   make run    build the kernel, wrap it in a GRUB ISO, boot it under QEMU
#   make test   run every test kernel; the last line is "N passed, N failed"
# Both first make sure of the toolchain and host tools (boot/setup.sh).
#
# ARGS go to the runner and the kernel command line, e.g.
#   make run ARGS="bench --icount"      make run ARGS="shell"
#   make run ARGS="--direct"            make test ARGS="kprobes"  (filter)

ARGS ?=

# Builds are not incremental, here and in CI alike (see Cargo.toml's
# profile.dev): the environment's CARGO_INCREMENTAL would override the profile.
export CARGO_INCREMENTAL := 0

.PHONY: run test bench setup clean

# Four CPUs unless PROBE_SMP says otherwise: the demo spreads its tasks over them.
run: setup
	PROBE_SMP=$${PROBE_SMP:-4} cargo run -- $(ARGS)

test: setup
	boot/test-all.sh $(ARGS)

# Guest instructions per probe hit, deterministic under -icount, on one
# CPU and on four (cases of the second run end in _smp4).
bench: setup
	cargo run --release -- --direct --icount --smp=1 bench
	cargo run --release -- --direct --icount --smp=4 bench

setup:
	@boot/setup.sh

clean:
	cargo clean
