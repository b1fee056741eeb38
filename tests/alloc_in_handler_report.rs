//! A probe handler that allocates is stopped with a message saying why.
//!
//! Why: handlers run in trap context, where the interrupted code may hold
//! the heap's lock; the rule "handlers must not allocate" is enforced by the
//! allocator itself, which panics in probe context (in release builds too:
//! the check is not a debug assertion). A `harness = false` kernel: its
//! success is that panic report, naming the rule and the probe.
#![no_std]
#![no_main]

extern crate alloc;

use probe_kernel::fatal::Fatal;
use probe_kernel::kprobes::{Kprobe, PreAction, PtRegs, register_kprobe};
use probe_kernel::testing::{self, contains};

probe_kernel::entry_point!(main);

const NAME: &str = "alloc_in_handler_report::a_handler_that_allocates_is_stopped";

#[inline(never)]
#[unsafe(no_mangle)]
extern "C" fn alloc_target(a: u32) -> u32 {
    core::hint::black_box(a) * 3
}

fn allocating_pre(_probe: &Kprobe, _regs: &mut PtRegs) -> PreAction {
    let boxed = alloc::boxed::Box::new(7u32);
    core::hint::black_box(&boxed);
    PreAction::Continue
}

static PROBE: Kprobe = Kprobe::new().symbol("alloc_target", 0).pre_handler(allocating_pre);

fn check(event: &Fatal, report: &[u8]) -> ! {
    let checks = [
        matches!(event, Fatal::Panic(_)),
        contains(report, b"heap allocation in probe context: probe handlers and the trap path must not allocate"),
        contains(report, b"while running a handler of the kprobe at"),
        contains(report, b"alloc_target+0x0"),
        contains(report, b"alloc_in_handler_report::allocating_pre"),
    ];
    testing::single_verdict(NAME, checks.iter().all(|c| *c), format_args!("checks {checks:?}"))
}

fn main(_boot: &'static probe_kernel::boot_info::BootInfo) -> ! {
    testing::single_test(NAME);
    register_kprobe(&PROBE).expect("probe refused");
    testing::expect_fatal_report(NAME, check, || {
        alloc_target(1);
    })
}
