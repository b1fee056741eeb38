# The two commands of the README:
#   make run    build the kernel, wrap it in a GRUB ISO, boot it under QEMU
#   make test   run every test kernel; the last line is "N passed, N failed"
# Both first make sure of the toolchain and host tools (boot/setup.sh).
#
# ARGS go to the runner and the kernel command line, e.g.
#   make run ARGS="bench --icount"      make run ARGS="shell"
#   make run ARGS="--direct"            make test ARGS="kprobes"  (filter)

ARGS ?=

.PHONY: run test bench setup clean

run: setup
	cargo run -- $(ARGS)

test: setup
	boot/test-all.sh $(ARGS)

# Guest instructions per probe hit, deterministic under -icount.
bench: setup
	cargo run --release -- --direct --icount bench

setup:
	@boot/setup.sh

clean:
	cargo clean
