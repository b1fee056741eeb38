//! Smoke test while building the engine.
#![no_std]
#![no_main]
#![feature(custom_test_frameworks)]
#![test_runner(probe_kernel::testing::run_tests)]
#![reexport_test_harness_main = "test_main"]

use core::sync::atomic::{AtomicU32, Ordering};
use probe_kernel::kprobes::*;

probe_kernel::entry_point!(main);
fn main(_boot: &'static probe_kernel::boot_info::BootInfo) -> ! {
    test_main();
    probe_kernel::testing::finish()
}

#[inline(never)]
#[unsafe(no_mangle)]
extern "C" fn target(a: u32) -> u32 {
    core::hint::black_box(a) * 3 + 1
}

static PRE: AtomicU32 = AtomicU32::new(0);
static POST: AtomicU32 = AtomicU32::new(0);
static RET: AtomicU32 = AtomicU32::new(0);

fn pre(_p: &Kprobe, regs: &mut PtRegs) -> PreAction {
    PRE.fetch_add(1, Ordering::SeqCst);
    assert_eq!(regs.eip as usize, target as *const () as usize);
    PreAction::Continue
}
fn post(_p: &Kprobe, _regs: &mut PtRegs) {
    POST.fetch_add(1, Ordering::SeqCst);
}
fn ret(ri: &mut KretprobeInstance, regs: &mut PtRegs) {
    RET.store(regs_return_value(regs), Ordering::SeqCst);
    let _ = ri;
}

static P: Kprobe = Kprobe::new().symbol("target", 0).pre_handler(pre).post_handler(post);
static B: Kprobe = Kprobe::new().symbol("target", 0).pre_handler(pre);
static RP: Kretprobe = Kretprobe::new().symbol("target").handler(ret);

#[test_case]
fn one_probe() {
    PRE.store(0, Ordering::SeqCst);
    register_kprobe(&P).unwrap();
    assert_eq!(target(4), 13);
    assert_eq!(PRE.load(Ordering::SeqCst), 1);
    assert_eq!(POST.load(Ordering::SeqCst), 1);
    unregister_kprobe(&P).unwrap();
    assert_eq!(target(4), 13);
    assert_eq!(PRE.load(Ordering::SeqCst), 1);
}

#[test_case]
fn boosted_probe() {
    PRE.store(0, Ordering::SeqCst);
    register_kprobe(&B).unwrap();
    assert!(B.flags().contains(KprobeFlags::BOOSTED));
    assert_eq!(target(5), 16);
    assert_eq!(PRE.load(Ordering::SeqCst), 1);
    unregister_kprobe(&B).unwrap();
}

#[test_case]
fn return_probe() {
    register_kretprobe(&RP).unwrap();
    assert_eq!(target(6), 19);
    assert_eq!(RET.load(Ordering::SeqCst), 19);
    unregister_kretprobe(&RP).unwrap();
}
