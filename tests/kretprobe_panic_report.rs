//! A panic inside kretprobe'd functions reports the real callers, never the trampoline.
//!
//! Why: a kretprobe swaps stacked return addresses for its trampoline, and a
//! backtrace that showed the trampoline (here two probes deep) would hide
//! who called whom. A `harness = false` kernel: its success is that report.
#![no_std]
#![no_main]

use probe_kernel::fatal::Fatal;
use probe_kernel::kprobes::{Kretprobe, KretprobeInstance, PtRegs, register_kretprobe};
use probe_kernel::testing::{self, contains, position};

probe_kernel::entry_point!(main);

const NAME: &str = "kretprobe_panic_report::backtrace_shows_real_callers";

#[inline(never)]
#[unsafe(no_mangle)]
extern "C" fn panic_outer(a: u32) -> u32 {
    core::hint::black_box(panic_inner(core::hint::black_box(a))) + 1
}

#[inline(never)]
#[unsafe(no_mangle)]
extern "C" fn panic_inner(a: u32) -> u32 {
    if core::hint::black_box(a) == 7 {
        panic!("deliberate panic inside a kretprobe'd function");
    }
    a
}

#[inline(never)]
#[unsafe(no_mangle)]
extern "C" fn panic_caller() -> u32 {
    core::hint::black_box(panic_outer(7)) + 1
}

fn returned(_instance: &mut KretprobeInstance, _regs: &mut PtRegs) {}

static OUTER: Kretprobe = Kretprobe::new().symbol("panic_outer").handler(returned);
static INNER: Kretprobe = Kretprobe::new().symbol("panic_inner").handler(returned);

fn check(event: &Fatal, report: &[u8]) -> ! {
    let is_panic = matches!(event, Fatal::Panic(_));
    let inner = position(report, b"panic_inner+");
    let outer = position(report, b"panic_outer+");
    let caller = position(report, b"panic_caller+");
    let in_order = matches!((inner, outer, caller), (Some(i), Some(o), Some(c)) if i < o && o < c);
    let no_trampoline = !contains(report, b"kretprobe_trampoline");
    testing::single_verdict(
        NAME,
        is_panic && in_order && no_trampoline,
        format_args!("panic={is_panic} in_order={in_order} no_trampoline={no_trampoline}"),
    )
}

fn main(_boot: &'static probe_kernel::boot_info::BootInfo) -> ! {
    testing::single_test(NAME);
    register_kretprobe(&OUTER).expect("kretprobe refused");
    register_kretprobe(&INNER).expect("kretprobe refused");
    testing::expect_fatal_report(NAME, check, || {
        panic_caller();
    })
}
