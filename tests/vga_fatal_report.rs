//! A fatal report reaches the VGA screen, not only COM1.
//!
//! Why: a person at a machine without a serial cable reads a crash on the
//! screen; the report's path (other CPUs stopped, the output lock taken
//! even from a CPU that will never let it go) must draw there too. A
//! `harness = false` kernel: its success is a panic report whose lines are
//! found in video memory, read back from 0xB8000 in the fatal hook.
#![no_std]
#![no_main]

extern crate alloc;

use probe_kernel::arch::x86::vga::{self, ROWS};
use probe_kernel::fatal::Fatal;
use probe_kernel::testing::{self, contains};

probe_kernel::entry_point!(main);

const NAME: &str = "vga_fatal_report::a_panic_report_is_on_the_screen";

/// Whether some screen row starts with `text`.
fn on_screen(text: &[u8]) -> bool {
    (0..ROWS).any(|row| vga::row_text(row).starts_with(text))
}

fn check(event: &Fatal, report: &[u8]) -> ! {
    let checks = [
        matches!(event, Fatal::Panic(_)),
        contains(report, b"!!! kernel panic: shown on the screen\n"),
        on_screen(b"!!! kernel panic: shown on the screen "),
        on_screen(b"  at tests/vga_fatal_report.rs:"),
        // The backtrace names the function that panicked.
        (0..ROWS).any(|row| contains(&vga::row_text(row), b"vga_fatal_report::crash")),
        // The screen's own contents from before the report scrolled up, intact.
        on_screen(b"before the crash "),
    ];
    testing::single_verdict(NAME, checks.iter().all(|c| *c), format_args!("checks {checks:?}"))
}

#[inline(never)]
fn crash() {
    panic!("shown on the screen");
}

fn main(_boot: &'static probe_kernel::boot_info::BootInfo) -> ! {
    testing::single_test(NAME);
    if !vga::is_present() {
        testing::single_verdict(NAME, false, format_args!("no VGA screen found at boot"));
    }
    vga::clear();
    probe_kernel::println!("before the crash");
    testing::expect_fatal_report(NAME, check, crash)
}
