//! A fatal report ends with the newest trace records, as Linux's
//! `ftrace_dump_on_oops`: what the probes saw just before the crash.
//!
//! A `harness = false` kernel: an event records two calls, then the kernel
//! panics; its success is the report, with both records, in order, with
//! their arguments.
#![no_std]
#![no_main]

use probe_kernel::fatal::Fatal;
use probe_kernel::testing::{self, contains};

probe_kernel::entry_point!(main);

const NAME: &str = "trace_dump_report::the_fatal_report_ends_with_the_newest_trace_records";

#[inline(never)]
#[unsafe(no_mangle)]
extern "C" fn oops_target(a: u32) -> u32 {
    core::hint::black_box(a) * 3
}

/// Where `needle` first occurs in `report`.
fn position(report: &[u8], needle: &[u8]) -> Option<usize> {
    report.windows(needle.len()).position(|window| window == needle)
}

fn check(event: &Fatal, report: &[u8]) -> ! {
    let first = position(report, b"oops_probe: (oops_target+0x0/");
    let second = position(report, b"x=0x7");
    let checks = [
        matches!(event, Fatal::Panic(_)),
        contains(report, b"!!! kernel panic: the crash under test"),
        contains(report, b"Dumping ftrace buffer (the newest 2 of 2 records):"),
        contains(report, b"x=0x2a\n"),
        // Oldest first: the call with 42 before the call with 7.
        first.is_some() && second.is_some() && first < second,
    ];
    testing::single_verdict(NAME, checks.iter().all(|c| *c), format_args!("checks {checks:?}"))
}

fn main(_boot: &'static probe_kernel::boot_info::BootInfo) -> ! {
    use probe_kernel::tracefs;
    testing::single_test(NAME);
    tracefs::write("/sys/kernel/tracing/kprobe_events", "p:oops_probe oops_target x=$arg1", false)
        .expect("event refused");
    tracefs::write("/sys/kernel/tracing/events/kprobes/oops_probe/enable", "1", false).expect("enable refused");
    testing::expect_fatal_report(NAME, check, || {
        assert_eq!(oops_target(42), 126);
        assert_eq!(oops_target(7), 21);
        panic!("the crash under test");
    })
}
