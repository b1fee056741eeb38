//! Scale: 16,384 probed addresses at once, registered as one batch, each
//! hit exactly as often as its instruction ran; the table's limit a typed
//! error that changes nothing; every site, slot and byte back afterwards.
//!
//! Why: Linux's own ftrace selftests put hundreds of probes in at once,
//! and a tracing session on a whole subsystem puts thousands; the engine's
//! static tables must hold `MAX_SITES` of them with exact books, and
//! registering them must not take time quadratic in their number (one
//! walk of the function's instructions, one cross-CPU sync per batch).
#![no_std]
#![no_main]
#![feature(custom_test_frameworks)]
#![test_runner(probe_kernel::testing::run_tests)]
#![reexport_test_harness_main = "test_main"]

extern crate alloc;

use alloc::vec::Vec;
use core::arch::naked_asm;
use core::sync::atomic::{AtomicU32, Ordering};
use probe_kernel::kprobes::{
    Kprobe, KprobeError, KprobeFlags, MAX_SITES, PreAction, PtRegs, register_kprobe, register_kprobes, site_count,
    unregister_kprobes,
};
use probe_kernel::memory::slots;
use probe_kernel::testing::{address_of, text_bytes};

probe_kernel::test_kernel_main!();

/// `MAX_SITES + 1` one-byte instructions, then `ret`.
#[unsafe(naked)]
#[unsafe(no_mangle)]
extern "C" fn scale_sled() {
    naked_asm!(".rept {n}", "nop", ".endr", "ret", n = const MAX_SITES + 1);
}

/// Hits per sled offset.
static HITS: [AtomicU32; MAX_SITES + 1] = [const { AtomicU32::new(0) }; MAX_SITES + 1];

fn count_hit(probe: &Kprobe, _regs: &mut PtRegs) -> PreAction {
    let offset = probe.addr().unwrap() - address_of("scale_sled");
    HITS[offset].fetch_add(1, Ordering::Relaxed);
    PreAction::Continue
}

/// One probe per sled instruction, the last one past the table's limit.
static SLED: [Kprobe; MAX_SITES + 1] = {
    let mut probes = [const { Kprobe::new() }; MAX_SITES + 1];
    let mut i = 0;
    while i <= MAX_SITES {
        probes[i] = Kprobe::new().symbol("scale_sled", i).pre_handler(count_hit);
        i += 1;
    }
    probes
};

#[test_case]
fn sixteen_thousand_probes_at_once_each_counted_exactly() {
    assert_eq!(MAX_SITES, 16_384);
    let sled = address_of("scale_sled");
    let original = text_bytes(sled, MAX_SITES + 2);
    let (sites, slots_before) = (site_count(), slots::in_use_count());
    let batch: Vec<&'static Kprobe> = SLED[..MAX_SITES].iter().collect();
    register_kprobes(&batch).unwrap();
    assert_eq!(site_count(), sites + MAX_SITES);
    assert_eq!(slots::in_use_count(), slots_before + MAX_SITES);
    assert!(SLED[..MAX_SITES].iter().all(|p| p.flags().contains(KprobeFlags::BOOSTED)));

    // The table is full: one more address is refused and changes nothing.
    assert_eq!(register_kprobe(&SLED[MAX_SITES]), Err(KprobeError::TableFull("probe sites")));
    assert!(SLED[MAX_SITES].flags().contains(KprobeFlags::GONE));
    assert_eq!((site_count(), slots::in_use_count()), (sites + MAX_SITES, slots_before + MAX_SITES));

    for _ in 0..3 {
        scale_sled();
    }
    unregister_kprobes(&batch);
    let hits: Vec<u32> = HITS.iter().map(|h| h.load(Ordering::Relaxed)).collect();
    let wrong = hits[..MAX_SITES].iter().position(|&h| h != 3);
    assert_eq!(wrong, None, "a probe hit other than 3 times: offset {wrong:?}");
    assert_eq!(hits[MAX_SITES], 0);
    assert_eq!(SLED[..MAX_SITES].iter().map(|p| p.nmissed()).sum::<usize>(), 0);
    assert_eq!((site_count(), slots::in_use_count()), (sites, slots_before));
    assert_eq!(text_bytes(sled, MAX_SITES + 2), original, "the sled's bytes restored");
}

#[test_case]
fn a_batch_that_cannot_all_register_registers_none() {
    // The last probe of the batch has no location: the whole batch is undone.
    static NOWHERE: Kprobe = Kprobe::new().pre_handler(count_hit);
    let (sites, slots_before) = (site_count(), slots::in_use_count());
    let mut batch: Vec<&'static Kprobe> = SLED[..1000].iter().collect();
    batch.push(&NOWHERE);
    assert_eq!(register_kprobes(&batch), Err(KprobeError::NoLocation));
    assert!(SLED[..1000].iter().all(|p| p.flags().contains(KprobeFlags::GONE)));
    assert_eq!((site_count(), slots::in_use_count()), (sites, slots_before));
    let before: Vec<u32> = HITS.iter().map(|h| h.load(Ordering::Relaxed)).collect();
    scale_sled();
    assert!(HITS.iter().zip(&before).all(|(h, b)| h.load(Ordering::Relaxed) == *b), "no probe left behind");
}
