//! Test kernel: `$duration` against a function whose cost is known.
//!
//! Under `-icount shift=0` one guest instruction is one nanosecond, so a
//! return event's `$duration` (the time since the matching entry) is an
//! instruction count. `spin(n)` runs exactly `2n` more instructions than
//! `spin(0)` (a `dec`/`jnz` pair per round), and everything else between
//! the entry's timestamp and the return's (the probe's own work) is the
//! same for both calls; so the two durations differ by `2n` ns, up to the
//! clock's calibration against the PIT at boot (under 0.1%).
// run.sh: --icount --smp=1
#![no_std]
#![no_main]
#![feature(custom_test_frameworks)]
#![test_runner(probe_kernel::testing::run_tests)]
#![reexport_test_harness_main = "test_main"]

extern crate alloc;

use alloc::vec::Vec;
use probe_kernel::arch::cpu::without_interrupts;
use probe_kernel::tracefs;

probe_kernel::test_kernel_main!();

/// `n` rounds of two instructions.
#[unsafe(naked)]
#[unsafe(no_mangle)]
pub extern "C" fn spin(n: u32) {
    core::arch::naked_asm!("mov ecx, [esp + 4]", "test ecx, ecx", "jz 2f", "1:", "dec ecx", "jnz 1b", "2:", "ret");
}

/// The `d=` values of the trace's `lat` records, oldest first.
fn durations() -> Vec<u64> {
    let trace = tracefs::read("/sys/kernel/tracing/trace").expect("trace");
    trace
        .lines()
        .filter(|line| line.contains(" lat: "))
        .map(|line| line.rsplit_once(" d=").expect("d=").1.parse().expect("a number"))
        .collect()
}

#[test_case]
fn a_duration_is_the_instructions_the_function_ran() {
    let write = |path: &str, data: &str| tracefs::write(path, data, false).expect(path);
    write("/sys/kernel/tracing/kprobe_events", "r:lat spin d=$duration");
    write("/sys/kernel/tracing/events/kprobes/lat/enable", "1");
    write("/sys/kernel/tracing/trace", "");
    const ROUNDS: u32 = 100_000;
    // No timer interrupt lands inside either call (it would add its own
    // instructions to one of them).
    without_interrupts(|| {
        spin(core::hint::black_box(0));
        spin(core::hint::black_box(ROUNDS));
    });
    let durations = durations();
    assert_eq!(durations.len(), 2, "{durations:?}");
    let extra = durations[1] - durations[0];
    let expected = 2 * u64::from(ROUNDS);
    assert!(extra.abs_diff(expected) * 1000 <= expected, "{extra} ns for {expected} instructions ({durations:?})");
    // And a short call is short: the probe's own work is well under the
    // long call's loop.
    assert!(durations[0] < expected / 10, "{durations:?}");
    write("/sys/kernel/tracing/events/kprobes/lat/enable", "0");
    write("/sys/kernel/tracing/kprobe_events", "");
}
