//! `jprobe_return` called outside a jprobe handler stops the run with a
//! report that says so.
//!
//! Why: `jprobe_return` used to end in an `int3` that only a jprobe hit in
//! progress could claim; it now builds its frame without a trap and hands
//! it to the engine, which must refuse a call with nothing saved to go back
//! to, by name, rather than resume at a garbage EIP (a `harness = false`
//! kernel: its success is that report).
#![no_std]
#![no_main]

use probe_kernel::fatal::Fatal;
use probe_kernel::kprobes::jprobe_return;
use probe_kernel::testing::{self, contains};

probe_kernel::entry_point!(main);

const NAME: &str = "jprobe_return_misuse_report::the_report_names_jprobe_return";

fn check(event: &Fatal, report: &[u8]) -> ! {
    let checks = [
        matches!(event, Fatal::Panic(_)),
        contains(report, b"jprobe_return called with no jprobe hit in progress on this CPU"),
    ];
    testing::single_verdict(NAME, checks.iter().all(|c| *c), format_args!("checks {checks:?}"))
}

fn main(_boot: &'static probe_kernel::boot_info::BootInfo) -> ! {
    testing::single_test(NAME);
    testing::expect_fatal_report(NAME, check, || {
        // Interrupts off, as a jprobe handler runs.
        probe_kernel::arch::cpu::disable_interrupts();
        jprobe_return()
    })
}
