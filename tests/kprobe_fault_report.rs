//! An unhandled fault inside a kprobe handler is reported as fatal, naming the probe.
//!
//! Why: a handler bug must be told apart from a bug in the probed code: the
//! report names the probe's function and address and the faulting handler.
//! A `harness = false` kernel: its success is that report.
#![no_std]
#![no_main]

use probe_kernel::fatal::Fatal;
use probe_kernel::kprobes::{Kprobe, PreAction, PtRegs, register_kprobe};
use probe_kernel::testing::{self, contains};

probe_kernel::entry_point!(main);

const NAME: &str = "kprobe_fault_report::unhandled_fault_names_the_probe";

#[inline(never)]
#[unsafe(no_mangle)]
extern "C" fn report_target(a: u32) -> u32 {
    core::hint::black_box(a) + 1
}

fn faulting_pre(_probe: &Kprobe, _regs: &mut PtRegs) -> PreAction {
    // SAFETY: deliberately not safe: page 0 is unmapped and this must fault.
    let value = unsafe { core::ptr::read_volatile(0x40 as *const u32) };
    core::hint::black_box(value);
    PreAction::Continue
}

static PROBE: Kprobe = Kprobe::new().symbol("report_target", 0).pre_handler(faulting_pre);

fn check(event: &Fatal, report: &[u8]) -> ! {
    let (vector, ok) = match event {
        Fatal::Exception { frame, cr2 } => (frame.vector, frame.vector == 14 && *cr2 == 0x40),
        _ => (0, false),
    };
    let names_probe = contains(report, b"in a handler of the kprobe at") && contains(report, b"report_target+0x0");
    let names_fault = contains(report, b"#PF (page fault)") && contains(report, b"cr2=0x00000040");
    let shows_handler = contains(report, b"kprobe_fault_report::faulting_pre");
    testing::single_verdict(
        NAME,
        ok && names_probe && names_fault && shows_handler,
        format_args!(
            "vector {vector} ok={ok} names_probe={names_probe} names_fault={names_fault} shows_handler={shows_handler}"
        ),
    )
}

fn main(_boot: &'static probe_kernel::boot_info::BootInfo) -> ! {
    testing::single_test(NAME);
    register_kprobe(&PROBE).expect("probe refused");
    testing::expect_fatal_report(NAME, check, || {
        report_target(1);
    })
}
