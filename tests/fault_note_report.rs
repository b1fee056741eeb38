//! A fault note never outlives its fault (issue 7, bug 10).
//!
//! Why: a fault in a single-stepped copy that an exception hook handled
//! used to leave the note "fault while single-stepping the probed
//! instruction of the kprobe at …" behind, and every later, unrelated panic
//! report blamed that probe. Here the hook handles such a fault, then an
//! unrelated panic is reported: its report must name no probe (a
//! `harness = false` kernel: its success is that report).
#![no_std]
#![no_main]

use core::arch::naked_asm;
use core::sync::atomic::{AtomicU32, Ordering};
use probe_kernel::arch::x86::trap::{HookKind, set_hook};
use probe_kernel::arch::{TrapFrame, TrapOutcome};
use probe_kernel::fatal::Fatal;
use probe_kernel::kprobes::{Kprobe, PtRegs, register_kprobe, unregister_kprobe};
use probe_kernel::testing::{self, contains};

probe_kernel::entry_point!(main);

const NAME: &str = "fault_note_report::a_later_report_blames_no_probe";

/// Reads `[address]`; the hook resumes at `fn_read_resume`.
#[unsafe(naked)]
#[unsafe(no_mangle)]
extern "C" fn fn_read(address: u32) -> u32 {
    naked_asm!("mov ecx, [esp + 4]", "mov eax, [ecx]", ".global fn_read_resume", "fn_read_resume:", "ret",);
}

fn post(_probe: &Kprobe, _regs: &mut PtRegs) {}

/// Single-stepped (it has a post handler) and without a fault handler, so
/// the fault goes past the engine to the hook.
static PROBE: Kprobe = Kprobe::new().symbol("fn_read", 4).post_handler(post);
static HOOKED: AtomicU32 = AtomicU32::new(0);
static HOOKED_EIP: AtomicU32 = AtomicU32::new(0);

fn handle_page_fault(frame: &mut TrapFrame) -> TrapOutcome {
    unsafe extern "C" {
        static fn_read_resume: u8;
    }
    HOOKED.fetch_add(1, Ordering::SeqCst);
    HOOKED_EIP.store(frame.eip, Ordering::SeqCst);
    frame.eax = 0xdead;
    frame.eip = &raw const fn_read_resume as u32;
    TrapOutcome::Handled
}

fn check(event: &Fatal, report: &[u8]) -> ! {
    let is_the_panic = matches!(event, Fatal::Panic(_)) && contains(report, b"kernel panic: an unrelated failure");
    let blames_no_probe = !contains(report, b"kprobe at") && !contains(report, b"single-stepping");
    testing::single_verdict(
        NAME,
        is_the_panic && blames_no_probe,
        format_args!("is_the_panic={is_the_panic} blames_no_probe={blames_no_probe}"),
    )
}

fn main(_boot: &'static probe_kernel::boot_info::BootInfo) -> ! {
    testing::single_test(NAME);
    set_hook(HookKind::Exception, Some(handle_page_fault));
    register_kprobe(&PROBE).expect("probe refused");
    let value = fn_read(0x123);
    unregister_kprobe(&PROBE).unwrap();
    set_hook(HookKind::Exception, None);
    let probe_address = testing::address_of("fn_read") + 4;
    if value != 0xdead
        || HOOKED.load(Ordering::SeqCst) != 1
        || HOOKED_EIP.load(Ordering::SeqCst) as usize != probe_address
    {
        testing::single_verdict(NAME, false, format_args!("the hook did not see the fault at the probe address"));
    }
    testing::expect_fatal_report(NAME, check, || panic!("an unrelated failure"))
}
