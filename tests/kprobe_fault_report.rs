//! An unhandled fault inside a kprobe handler is reported as fatal, naming
//! the probe's function and address (a `harness = false` kernel: its
//! success is that report).
#![no_std]
#![no_main]

use core::sync::atomic::{AtomicU32, Ordering};
use probe_kernel::arch::qemu::{self, ExitCode};
use probe_kernel::fatal::{self, Fatal};
use probe_kernel::kprobes::{Kprobe, PreAction, PtRegs, register_kprobe};
use probe_kernel::{console, println};

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
static VECTOR: AtomicU32 = AtomicU32::new(0);

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn on_fatal(event: &Fatal) -> ! {
    let mut buffer = [0u8; 4096];
    let report = console::capture_end(&mut buffer);
    let ok = match event {
        Fatal::Exception { frame, cr2 } => {
            VECTOR.store(frame.vector, Ordering::SeqCst);
            frame.vector == 14 && *cr2 == 0x40
        }
        _ => false,
    };
    let names_probe = contains(report, b"in a handler of the kprobe at") && contains(report, b"report_target+0x0");
    let names_fault = contains(report, b"#PF (page fault)") && contains(report, b"cr2=0x00000040");
    let shows_handler = contains(report, b"kprobe_fault_report::faulting_pre");
    if ok && names_probe && names_fault && shows_handler {
        println!("{NAME} ... ok");
        println!("1 passed, 0 failed");
        qemu::exit(ExitCode::Success);
    }
    println!(
        "[FAILED] kprobe_fault_report: vector {} ok={ok} names_probe={names_probe} names_fault={names_fault} shows_handler={shows_handler}",
        VECTOR.load(Ordering::SeqCst)
    );
    println!("0 passed, 1 failed");
    qemu::exit(ExitCode::Failed)
}

fn main(_boot: &'static probe_kernel::boot_info::BootInfo) -> ! {
    probe_kernel::testing::single_test(NAME);
    register_kprobe(&PROBE).expect("probe refused");
    fatal::set_hook(Some(on_fatal));
    console::capture_begin();
    report_target(1);
    console::capture_end(&mut [0u8; 1]);
    println!("[FAILED] kprobe_fault_report: the fault was not reported");
    println!("0 passed, 1 failed");
    qemu::exit(ExitCode::Failed)
}
