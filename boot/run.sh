#!/usr/bin/env bash
# QEMU runner for every kernel image (cargo's `runner` for the i686-probe target).
#
#   boot/run.sh [runner flags] KERNEL.elf [kernel words...]
#
# Cargo calls it with the ELF first; words after `--` in `cargo run -- ...`
# or `cargo test -- ...` follow. Runner flags may stand anywhere:
#   --icount      add -icount shift=0,sleep=off (one TSC tick per instruction)
#   --gdb         start QEMU's gdb stub on :1234 and wait for a debugger
#   --iso         boot through GRUB from an ISO (default for `cargo run`)
#   --direct      boot the ELF with -kernel (Multiboot1; default for tests)
#   --timeout=S   give up after S seconds (default 120; 3600 for `shell`, 900 for `bench`)
#   --input=FILE  feed FILE to the serial port (QEMU's stdin) instead of the
#                 terminal; a test kernel NAME with a tests/NAME.input file
#                 gets that file
#   --smp=N       give the machine N CPUs (QEMU's -smp N; default $PROBE_SMP,
#                 else 1); N may carry QEMU's topology too, e.g. --smp=4,sockets=4
#   --keys=FILE   type FILE's keys on the guest's PS/2 keyboard, through
#                 QEMU's monitor (boot/sendkeys.sh says how FILE reads); a
#                 test kernel NAME with a tests/NAME.keys file gets that file
# Other words go on the kernel command line. For test kernels a bare word is
# a test filter (`cargo test -- NAME` becomes `test=NAME`), except the
# kernel's own switches (`noapic`).
#
# A test kernel's source (tests/NAME.rs or tests/NAME/main.rs) may add words
# of its own with lines `// run.sh: WORDS`, e.g. `// run.sh: --smp=4 acpi=off`;
# they come before the words given here, so a flag given here wins.
#
# Exit status: 0 the kernel passed, 1 it reported failure, 2 it hung
# (timeout), 3 triple fault or reset, 4 QEMU failed.
set -u
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")

# The kernel image is the first argument that is not a flag.
elf=""
for arg in "$@"; do case "$arg" in -*) ;; *) elf=$arg; break ;; esac; done
[ -n "$elf" ] || { echo "usage: $0 [--icount] [--gdb] [--iso|--direct] [--smp=N] KERNEL [words...]" >&2; exit 4; }

# The main kernel is target/<target>/<profile>/probe-kernel; every other
# image cargo hands us is a test kernel (`name-hash`).
name=$(basename "$elf")
is_test=0
[ "$name" != probe-kernel ] && { is_test=1; name=${name%-*}; }
[ "$is_test" = 1 ] && [ "$name" = probe_kernel ] && name="probe_kernel[unit-tests]"

# A test kernel's own words: its source's `// run.sh: WORDS` lines.
source_words=()
if [ "$is_test" = 1 ]; then
    for source in "$root/tests/$name.rs" "$root/tests/$name/main.rs"; do
        [ -f "$source" ] || continue
        read -ra source_words <<< "$(sed -n 's|^// run\.sh: *||p' "$source" | tr '\n' ' ')"
    done
fi

words=() ; icount=0 ; gdb=0 ; boot="" ; timeout_s="" ; input="" ; keys="" ; smp=${PROBE_SMP:-1} ; elf_seen=0
# A later pass of test-all.sh's CPU-count matrix skips a kernel that fixes
# its own CPU count: it ran on exactly that machine in the first pass.
if [ -n "${PROBE_SKIP_OWN_SMP:-}" ] && [[ " ${source_words[*]-} " == *" --smp="* ]]; then
    echo "run.sh: $name: boots its own --smp; already run in this matrix's first pass"
    exit 0
fi

for arg in ${source_words[@]+"${source_words[@]}"} "$@"; do
    case "$arg" in
        --icount) icount=1 ;;
        --gdb) gdb=1 ;;
        --iso) boot=iso ;;
        --direct) boot=direct ;;
        --timeout=*) timeout_s=${arg#--timeout=} ;;
        --input=*) input=${arg#--input=} ;;
        --keys=*) keys=${arg#--keys=} ;;
        --smp=*) smp=${arg#--smp=} ;;
        --nocapture|--quiet|-q|--test-threads=*|--color=*) ;; # libtest flags: meaningless here
        *) if [ "$elf_seen" = 0 ] && [ "$arg" = "$elf" ]; then elf_seen=1; else words+=("$arg"); fi ;;
    esac
done
[[ "$smp" =~ ^[1-9][0-9]*(,[a-z-]+=[0-9]+)*$ ]] ||
    { echo "run.sh: --smp wants a CPU count (optionally ,sockets=S and the like), not '$smp'" >&2; exit 4; }
# Serial input: bytes already waiting when the kernel boots.
[ -z "$input" ] && [ "$is_test" = 1 ] && [ -f "$root/tests/$name.input" ] && input="$root/tests/$name.input"
[ -z "$input" ] || [ -r "$input" ] || { echo "run.sh: cannot read input file $input" >&2; exit 4; }
# Keyboard input: keys typed while the kernel runs.
[ -z "$keys" ] && [ "$is_test" = 1 ] && [ -f "$root/tests/$name.keys" ] && keys="$root/tests/$name.keys"
[ -z "$keys" ] || [ -r "$keys" ] || { echo "run.sh: cannot read keys file $keys" >&2; exit 4; }

# Kernel switches without a `=`, which are never test filters.
kernel_switches=" noapic "
cmdline=()
for w in ${words[@]+"${words[@]}"}; do
    if [ "$is_test" = 1 ] && [[ "$w" != *=* ]] && [[ "$kernel_switches" != *" $w "* ]]; then
        cmdline+=("test=$w")
    else
        cmdline+=("$w")
    fi
done
cmdline_text="${cmdline[*]-}"
# Tests boot fast with -kernel, except boot_grub* kernels, which test the ISO path.
if [ -z "$boot" ]; then
    case "$is_test:$name" in 1:boot_grub*) boot=iso ;; 1:*) boot=direct ;; *) boot=iso ;; esac
fi
if [ -z "$timeout_s" ]; then
    timeout_s=120
    [[ " $cmdline_text " == *" shell "* ]] && timeout_s=3600
    # The bench's churn is 100,000 registrations, each with cross-CPU sync
    # rounds: about 150 s at -smp 4 under -icount, where the vCPUs take turns.
    [[ " $cmdline_text " == *" bench "* ]] && timeout_s=900
fi

# Fill the kernel's symbol table (.ksyms) from the ELF's own symbols, and its
# parameter table (.kparams) from the ELF's DWARF, with
# the post-link tool (kernel/ksyms-tool), a host binary kept in
# <target dir>/host and rebuilt only when its sources are newer than it.
case "$elf" in */i686-probe/*) target_dir=${elf%%/i686-probe/*} ;; *) target_dir=${CARGO_TARGET_DIR:-$root/target} ;; esac
ksyms_tool="$target_dir/host/debug/ksyms-tool"
if [ ! -x "$ksyms_tool" ] || [ -n "$(find "$root/kernel/ksyms-tool" "$root/kernel/ksyms-table" "$root/Cargo.lock" \
        "$root/rust-toolchain.toml" -newer "$ksyms_tool" -print -quit 2>/dev/null)" ]; then
    CARGO_TARGET_DIR="$target_dir" "$here/host-cargo.sh" build --quiet -p ksyms-tool ||
        { echo "run.sh: could not build the post-link tool (kernel/ksyms-tool)" >&2; exit 4; }
    touch "$ksyms_tool" # current now, even if cargo found nothing to rebuild
fi
# Under a lock: runs side by side (the passes of test-all.sh) may boot the
# same image, and none may load it while another writes its table (once
# written, the tool finds it current and writes nothing).
flock "$elf.lock" "$ksyms_tool" "$elf" || { echo "run.sh: could not embed symbols into $elf" >&2; exit 4; }

qemu_args=(-m 128M -smp "$smp" -display none -serial stdio -monitor none -no-reboot
           -device isa-debug-exit,iobase=0xf4,iosize=0x04)
# -icount runs one vCPU at a time (round robin, deterministic); otherwise
# several CPUs run in parallel threads.
if [ "$icount" = 1 ]; then
    qemu_args+=(-icount shift=0,sleep=off)
elif [ "${smp%%,*}" -gt 1 ]; then
    qemu_args+=(-accel tcg,thread=multi)
fi
[ "$gdb" = 1 ] && { qemu_args+=(-s -S); echo "run.sh: gdb stub on localhost:1234; in gdb: target remote :1234 (symbols: $elf)" >&2; }

if [ "$boot" = iso ]; then
    # Staged privately and renamed into place, so runs in parallel never
    # boot each other's half-written ISO.
    target_dir=$(dirname "$elf")
    iso="$target_dir/probe-kernel.iso"
    iso_root=$(mktemp -d)
    mkdir -p "$iso_root/boot/grub"
    strip --strip-debug -o "$iso_root/boot/kernel.elf" "$elf"
    # The menu waits (3 s) for a person only: not for a test kernel or piped
    # input (a byte of it would stop the countdown and wait for a choice).
    # PROBE_GRUB_TIMEOUT=S says otherwise.
    grub_timeout=3
    { [ "$is_test" = 1 ] || [ -n "$input" ] || [ ! -t 0 ]; } && grub_timeout=0
    grub_timeout=${PROBE_GRUB_TIMEOUT:-$grub_timeout}
    title=${cmdline_text:-demo}
    sed -e "s|@CMDLINE@|$cmdline_text|" -e "s|@TIMEOUT@|$grub_timeout|" -e "s|@TITLE@|${title//\'/}|" \
        "$here/grub.cfg" > "$iso_root/boot/grub/grub.cfg"
    mkrescue_log=$(mktemp)
    if ! grub-mkrescue -o "$iso.$$" "$iso_root" >"$mkrescue_log" 2>&1; then
        cat "$mkrescue_log" >&2; echo "run.sh: grub-mkrescue failed" >&2; rm -rf "$iso_root" "$mkrescue_log"; exit 4
    fi
    rm -rf "$iso_root" "$mkrescue_log"
    mv -f "$iso.$$" "$iso"
    echo "run.sh: ISO at $iso (boot it on any PC or VM)" >&2
    qemu_args+=(-cdrom "$iso" -boot d)
else
    qemu_args+=(-kernel "$elf" -append "$cmdline_text")
fi

log=$(mktemp)
# A keys file: QEMU's human monitor on a pair of FIFOs (NAME.in, NAME.out),
# boot/sendkeys.sh typing into it, and its answers read and dropped.
helpers=()
if [ -n "$keys" ]; then
    monitor_dir=$(mktemp -d)
    mkfifo "$monitor_dir/monitor.in" "$monitor_dir/monitor.out"
    qemu_args+=(-chardev "pipe,id=keys,path=$monitor_dir/monitor" -mon chardev=keys,mode=readline)
    cat "$monitor_dir/monitor.out" > /dev/null &
    helpers+=($!)
    "$here/sendkeys.sh" "$keys" "$log" "$monitor_dir/monitor.in" &
    helpers+=($!)
fi
started=$SECONDS
if [ -n "$input" ]; then
    timeout --foreground "$timeout_s" qemu-system-i386 "${qemu_args[@]}" < "$input" | tee "$log"
else
    timeout --foreground "$timeout_s" qemu-system-i386 "${qemu_args[@]}" | tee "$log"
fi
status=${PIPESTATUS[0]}
for pid in ${helpers[@]+"${helpers[@]}"}; do kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; done
[ -n "$keys" ] && rm -rf "$monitor_dir"
case "$status" in
    33) verdict=passed; rc=0 ;;
    35) verdict=failed; rc=1 ;;
    124) verdict="HUNG: no verdict after ${timeout_s}s"; rc=2 ;;
    0) verdict="TRIPLE FAULT or reset (QEMU exited 0 under -no-reboot)"; rc=3 ;;
    *) verdict="QEMU ERROR (exit status $status)"; rc=4 ;;
esac
if [ "$rc" -ge 2 ]; then
    # Name the test that was running: the last "name ... " line without its "ok".
    running=$(tr -d '\r' < "$log" | grep -aoE '^[^ ]+ \.\.\. ' | tail -n 1)
    last_line=$(tr -d '\r' < "$log" | grep -aE '^[^ ]+ \.\.\. ' | tail -n 1)
    [ -n "$running" ] && [[ "$last_line" != *" ok" ]] && verdict="$verdict, in test ${running% ... }"
    echo "run.sh: $name: $verdict" >&2
fi

# Test kernels: record this kernel's counts for the aggregate (boot/test-all.sh).
if [ "$is_test" = 1 ]; then
    summary=$(tr -d '\r' < "$log" | grep -E '^[0-9]+ passed, [0-9]+ failed$' | tail -n 1)
    if [ -n "$summary" ]; then
        passed=${summary%% passed*}; failed=${summary#*, }; failed=${failed%% failed*}
    else
        passed=$(tr -d '\r' < "$log" | grep -c ' \.\.\. ok$'); failed=0
    fi
    # A kernel that did not pass counts at least one failure.
    [ "$rc" != 0 ] && [ "$failed" = 0 ] && failed=1
    # How many tests the kernel selected: its first "running N [of M] tests"
    # line (harness and harness-free kernels alike print one). A kernel that
    # died before saying so ran at least the tests it reported.
    running=$(tr -d '\r' < "$log" | grep -aoE '^running [0-9]+ (of [0-9]+ )?tests?' | head -n 1)
    if [ -n "$running" ]; then
        selected=${running#running }; selected=${selected%% *}
    else
        selected=$((passed + failed))
    fi
    [ -n "${PROBE_TEST_RESULTS:-}" ] && echo "$name $passed $failed $selected $verdict" >> "$PROBE_TEST_RESULTS"
    # A failed kernel's story, for the recap at the end of a whole run
    # (boot/test-all.sh): from the line of the test that failed (the last
    # "name ... " line), what the kernel said, cut to 24 lines.
    if [ "$rc" != 0 ] && [ -n "${PROBE_TEST_FAILURES:-}" ]; then
        {
            echo "--- $name at -smp $smp: $verdict"
            tr -d '\r' < "$log" | awk '/^[^ ]+ \.\.\. /{n=NR} {line[NR]=$0} END{for(i=(n?n:1);i<=NR;i++) print line[i]}' | head -n 24
        } >> "$PROBE_TEST_FAILURES"
    fi
    echo "run.sh: $name: $passed passed, $failed failed, $selected selected ($verdict) in $((SECONDS - started)) s" >&2
fi
rm -f "$log"
exit "$rc"
