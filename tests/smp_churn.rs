//! CPU 0 registering, unregistering, enabling and disabling a kprobe and a
//! kretprobe in a tight loop while CPUs 1-3 run the probed code: every
//! result right, counts consistent, every slot and pool back at the end.
//!
//! What it caught: under QEMU's multi-threaded TCG a CPU kept running a
//! stale translation of a probed function (or of a reused slot) after the
//! patch and the sync round; the host's sync now rewrites what was patched
//! once every CPU has acknowledged (`patch::retouch_after_sync`), and a
//! breakpoint that traps on its way out and in again is run again
//! (`handler::not_a_site`).
// run.sh: --smp=4
#![no_std]
#![no_main]
#![feature(custom_test_frameworks)]
#![test_runner(probe_kernel::testing::run_tests)]
#![reexport_test_harness_main = "test_main"]

extern crate alloc;

use alloc::vec::Vec;
use core::hint::black_box;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use probe_kernel::kprobes::*;
use probe_kernel::task;

probe_kernel::test_kernel_main!();

const CPUS: usize = 4;

#[inline(never)]
#[unsafe(no_mangle)]
extern "C" fn sp_kprobed(x: u32) -> u32 {
    black_box(x) ^ 0x5a5a_5a5a
}

#[inline(never)]
#[unsafe(no_mangle)]
extern "C" fn sp_kretprobed(x: u32) -> u32 {
    black_box(x).wrapping_mul(7).wrapping_add(1)
}

#[used]
static PINNED: [extern "C" fn(u32) -> u32; 2] = [sp_kprobed, sp_kretprobed];

static R_WRONG: AtomicUsize = AtomicUsize::new(0);

fn remember_argument(ri: &mut KretprobeInstance, regs: &mut PtRegs) -> EntryAction {
    ri.store(regs_get_kernel_argument(regs, 0, CallingConvention::C).unwrap_or(u32::MAX));
    EntryAction::Report
}

static STOP: AtomicBool = AtomicBool::new(false);
static CHURN_K_HITS: AtomicUsize = AtomicUsize::new(0);
static CHURN_ENTRIES: AtomicUsize = AtomicUsize::new(0);
static CHURN_RETURNS: AtomicUsize = AtomicUsize::new(0);
static CHURN_CALLS: AtomicUsize = AtomicUsize::new(0);

fn churn_hit(_: &Kprobe, _: &mut PtRegs) -> PreAction {
    CHURN_K_HITS.fetch_add(1, SeqCst);
    PreAction::Continue
}

fn churn_entry(ri: &mut KretprobeInstance, regs: &mut PtRegs) -> EntryAction {
    CHURN_ENTRIES.fetch_add(1, SeqCst);
    remember_argument(ri, regs)
}

fn churn_return(ri: &mut KretprobeInstance, regs: &mut PtRegs) {
    CHURN_RETURNS.fetch_add(1, SeqCst);
    let x: u32 = ri.load();
    if regs_return_value(regs) != x.wrapping_mul(7).wrapping_add(1) {
        R_WRONG.fetch_add(1, SeqCst);
    }
}

static CHURN_KPROBE: Kprobe = Kprobe::new().symbol("sp_kprobed", 0).pre_handler(churn_hit);
static CHURN_KRETPROBE: Kretprobe =
    Kretprobe::new().symbol("sp_kretprobed").entry_handler(churn_entry).handler(churn_return).data_size(4).maxactive(8);

/// Calls both probed functions until told to stop; returns wrong results.
fn call_until_stopped(c: usize) -> usize {
    let mut wrong = 0;
    let mut i = 0u32;
    while !STOP.load(SeqCst) {
        let x = (c as u32) << 24 | i;
        wrong += usize::from(sp_kprobed(x) != x ^ 0x5a5a_5a5a);
        wrong += usize::from(sp_kretprobed(x) != x.wrapping_mul(7).wrapping_add(1));
        CHURN_CALLS.fetch_add(1, SeqCst);
        i = i.wrapping_add(1);
    }
    wrong
}

#[test_case]
fn cpu0_churns_registration_while_three_cpus_run_the_probed_code() {
    const CYCLES: usize = 2_000;
    for counter in [&CHURN_K_HITS, &CHURN_ENTRIES, &CHURN_RETURNS, &CHURN_CALLS, &R_WRONG] {
        counter.store(0, SeqCst);
    }
    STOP.store(false, SeqCst);
    let (slots, sites, arena) = (slots::in_use_count(), site_count(), kretprobe_arena_used());
    let ids: Vec<usize> =
        (1..CPUS).map(|c| task::spawn_on(c, "caller", call_until_stopped, c).expect("spawn")).collect();
    for cycle in 0..CYCLES {
        register_kprobe(&CHURN_KPROBE).expect("register kprobe");
        register_kretprobe(&CHURN_KRETPROBE).expect("register kretprobe");
        if cycle % 2 == 0 {
            disable_kprobe(&CHURN_KPROBE).expect("disable kprobe");
            disable_kretprobe(&CHURN_KRETPROBE).expect("disable kretprobe");
            enable_kprobe(&CHURN_KPROBE).expect("enable kprobe");
            enable_kretprobe(&CHURN_KRETPROBE).expect("enable kretprobe");
        }
        unregister_kretprobe(&CHURN_KRETPROBE).expect("unregister kretprobe");
        unregister_kprobe(&CHURN_KPROBE).expect("unregister kprobe");
    }
    STOP.store(true, SeqCst);
    let wrong: usize = ids.into_iter().map(task::join).sum();
    assert_eq!(wrong, 0, "a probed function returned a wrong value during the churn");
    assert_eq!(R_WRONG.load(SeqCst), 0, "a return handler saw a wrong value");
    let calls = CHURN_CALLS.load(SeqCst);
    assert!(CHURN_CALLS.load(SeqCst) > 0 && CHURN_K_HITS.load(SeqCst) > 0, "the callers ran under the probes");
    assert!(CHURN_K_HITS.load(SeqCst) <= calls, "more kprobe hits than calls");
    let (entries, returns) = (CHURN_ENTRIES.load(SeqCst), CHURN_RETURNS.load(SeqCst));
    // A return is reported only for an entry of the same registration; an
    // entry is unreported only if its registration went away while it ran
    // (at most one call in flight per caller per cycle).
    assert!(returns <= entries && entries - returns <= (CPUS - 1) * CYCLES, "entries {entries}, returns {returns}");
    // One more cycle lets the engine collect what the last ones retired.
    register_kretprobe(&CHURN_KRETPROBE).expect("register");
    unregister_kretprobe(&CHURN_KRETPROBE).expect("unregister");
    assert_eq!(kretprobe::retired_pools(), 0, "every retired pool collected");
    assert_eq!((slots::in_use_count(), site_count(), kretprobe_arena_used()), (slots, sites, arena));
}
