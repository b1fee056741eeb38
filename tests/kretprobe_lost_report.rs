//! The kretprobe trampoline's own fatal report is readable (issue 7, bug 1).
//!
//! Why: when the trampoline found no instance for a return, the report was
//! garbled ("exception ? (unknown), vector 4294967295, eip=0"). Here a
//! function rewrites its own return slot to the trampoline behind the
//! engine's back, so the return matches no instance: the report must say
//! what happened, which task, the task's instances and the trampoline's EIP
//! (a `harness = false` kernel: its success is that report).
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
    let mut eip = [0u8; 12];
    let eip = format_eip(trampoline, &mut eip);
    let checks = [
        matches!(event, Fatal::Exception { frame, .. } if frame.eip as usize == trampoline),
        contains(report, b"entered by a return that no active instance accounts for"),
        contains(report, b"task 0 (boot)"),
        contains(report, b"the task has 0 active kretprobe instances"),
        contains(report, eip),
        !contains(report, b"unknown), vector"),
    ];
    testing::single_verdict(NAME, checks.iter().all(|c| *c), format_args!("checks {checks:?}"))
}

/// `eip=XXXXXXXX` as the register dump prints it.
fn format_eip(address: usize, out: &mut [u8; 12]) -> &[u8] {
    out[..4].copy_from_slice(b"eip=");
    for (i, byte) in out[4..].iter_mut().enumerate() {
        *byte = b"0123456789abcdef"[(address >> (28 - 4 * i)) & 0xf];
    }
    &out[..]
}

fn main(_boot: &'static probe_kernel::boot_info::BootInfo) -> ! {
    testing::single_test(NAME);
    testing::expect_fatal_report(NAME, check, || return_into_trampoline())
}
