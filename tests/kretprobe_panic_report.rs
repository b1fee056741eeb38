//! A panic inside a function with an active kretprobe (nested two deep)
//! reports a backtrace with the real callers, never the trampoline
//! (a `harness = false` kernel: its success is that report).
#![no_std]
#![no_main]

use probe_kernel::arch::qemu::{self, ExitCode};
use probe_kernel::fatal::{self, Fatal};
use probe_kernel::kprobes::{Kretprobe, KretprobeInstance, PtRegs, register_kretprobe};
use probe_kernel::{console, println};

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

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn position(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn on_fatal(event: &Fatal) -> ! {
    let mut buffer = [0u8; 4096];
    let report = console::capture_end(&mut buffer);
    let is_panic = matches!(event, Fatal::Panic(_));
    let inner = position(report, b"panic_inner+");
    let outer = position(report, b"panic_outer+");
    let caller = position(report, b"panic_caller+");
    let in_order = matches!((inner, outer, caller), (Some(i), Some(o), Some(c)) if i < o && o < c);
    let no_trampoline = !contains(report, b"kretprobe_trampoline");
    if is_panic && in_order && no_trampoline {
        println!("{NAME} ... ok");
        println!("1 passed, 0 failed");
        qemu::exit(ExitCode::Success);
    }
    println!("[FAILED] kretprobe_panic_report: panic={is_panic} in_order={in_order} no_trampoline={no_trampoline}");
    println!("0 passed, 1 failed");
    qemu::exit(ExitCode::Failed)
}

fn main(_boot: &'static probe_kernel::boot_info::BootInfo) -> ! {
    probe_kernel::testing::single_test(NAME);
    register_kretprobe(&OUTER).expect("kretprobe refused");
    register_kretprobe(&INNER).expect("kretprobe refused");
    fatal::set_hook(Some(on_fatal));
    console::capture_begin();
    panic_caller();
    console::capture_end(&mut [0u8; 1]);
    println!("[FAILED] kretprobe_panic_report: no panic");
    println!("0 passed, 1 failed");
    qemu::exit(ExitCode::Failed)
}
