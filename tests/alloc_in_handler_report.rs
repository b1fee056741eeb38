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

use probe_kernel::arch::qemu::{self, ExitCode};
use probe_kernel::fatal::{self, Fatal};
use probe_kernel::kprobes::{Kprobe, PreAction, PtRegs, register_kprobe};
use probe_kernel::{console, println};

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

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn on_fatal(event: &Fatal) -> ! {
    let mut buffer = [0u8; 4096];
    let report = console::capture_end(&mut buffer);
    let checks = [
        matches!(event, Fatal::Panic(_)),
        contains(report, b"heap allocation in probe context: probe handlers and the trap path must not allocate"),
        contains(report, b"while running a handler of the kprobe at"),
        contains(report, b"alloc_target+0x0"),
        contains(report, b"alloc_in_handler_report::allocating_pre"),
    ];
    if checks.iter().all(|c| *c) {
        println!("{NAME} ... ok");
        println!("1 passed, 0 failed");
        qemu::exit(ExitCode::Success);
    }
    println!("[FAILED] alloc_in_handler_report: checks {checks:?}");
    println!("0 passed, 1 failed");
    qemu::exit(ExitCode::Failed)
}

fn main(_boot: &'static probe_kernel::boot_info::BootInfo) -> ! {
    probe_kernel::testing::single_test(NAME);
    register_kprobe(&PROBE).expect("probe refused");
    fatal::set_hook(Some(on_fatal));
    console::capture_begin();
    alloc_target(1);
    console::capture_end(&mut [0u8; 1]);
    println!("[FAILED] alloc_in_handler_report: the allocation went through");
    println!("0 passed, 1 failed");
    qemu::exit(ExitCode::Failed)
}
