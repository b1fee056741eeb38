//! The kretprobe trampoline's own fatal report is readable (issue 7, bug 1).
//!
//! Why: when the trampoline found no instance for a return, the report was
//! garbled ("exception ? (unknown), vector 4294967295, eip=0"). Here a
//! function rewrites its own return slot to the trampoline behind the
//! engine's back, so the return matches no instance: the report must say
//! what happened, which task, the task's instances and where the trampoline
//! is (a `harness = false` kernel: its success is that report).
#![no_std]
#![no_main]

use core::arch::naked_asm;
use probe_kernel::fatal::Fatal;
use probe_kernel::testing::{self, contains};

probe_kernel::entry_point!(main);

const NAME: &str = "kretprobe_lost_report::the_report_says_what_task_and_instances";

/// Returns into the kretprobe trampoline with no instance behind it.
#[unsafe(naked)]
#[unsafe(no_mangle)]
extern "C" fn return_into_trampoline() {
    naked_asm!(
        "mov dword ptr [esp], offset {trampoline}",
        "ret",
        trampoline = sym probe_kernel::arch::x86::kprobes::trampoline::kretprobe_trampoline,
    );
}

fn check(event: &Fatal, report: &[u8]) -> ! {
    let trampoline = probe_kernel::arch::x86::kprobes::trampoline::address();
    let mut at = [0u8; 34];
    let at = format_at(trampoline, &mut at);
    let checks = [
        matches!(event, Fatal::Panic(_)),
        contains(report, at),
        contains(report, b"entered by a return that no active instance accounts for"),
        contains(report, b"task 0 returned from the call whose return slot was 0x"),
        contains(report, b"its real return address is unknown"),
        contains(report, b"the task has 0 active kretprobe instances"),
        !contains(report, b"unknown), vector"),
    ];
    testing::single_verdict(NAME, checks.iter().all(|c| *c), format_args!("checks {checks:?}"))
}

/// `kretprobe trampoline at 0xXXXXXXXX`, as the report names it.
fn format_at(address: usize, out: &mut [u8; 34]) -> &[u8] {
    out[..24].copy_from_slice(b"kretprobe trampoline at ");
    out[24..26].copy_from_slice(b"0x");
    for (i, byte) in out[26..].iter_mut().enumerate() {
        *byte = b"0123456789abcdef"[(address >> (28 - 4 * i)) & 0xf];
    }
    &out[..]
}

fn main(_boot: &'static probe_kernel::boot_info::BootInfo) -> ! {
    testing::single_test(NAME);
    testing::expect_fatal_report(NAME, check, || return_into_trampoline())
}
