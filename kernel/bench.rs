//! The kernel's bench mode: guest instructions per probe hit, per kind of probe.
//!
//! Under QEMU's `-icount shift=0,sleep=off` the TSC advances exactly once per
//! guest instruction, so `rdtsc` deltas are instruction counts that repeat
//! from run to run — a noise-free way to compare instrumentation techniques
//! (run with `make bench`). Without `-icount` the numbers are TCG cycles and
//! vary by 50% or more. Each case calls one small function `CALLS` times
//! with interrupts off and subtracts the unprobed baseline.
use crate::arch::cpu::{rdtsc, without_interrupts};
use crate::kprobes::{
    jprobe_return, register_jprobe, register_kprobe, register_kretprobe, unregister_jprobe,
    unregister_kprobe, unregister_kretprobe, Jprobe, Kprobe, KretprobeInstance, Kretprobe, PreAction, PtRegs,
};
use crate::println;
use core::arch::naked_asm;

/// Calls per measurement.
pub const CALLS: u64 = 1000;

/// The measured function: `return a + 1` in three instructions.
#[unsafe(naked)]
#[unsafe(no_mangle)]
pub extern "C" fn bench_target(a: u32) -> u32 {
    naked_asm!("mov eax, [esp + 4]", "inc eax", "ret");
}

fn pre(_probe: &Kprobe, _regs: &mut PtRegs) -> PreAction {
    PreAction::Continue
}
fn post(_probe: &Kprobe, _regs: &mut PtRegs) {}
fn returned(_instance: &mut KretprobeInstance, _regs: &mut PtRegs) {}
extern "C" fn jhandler(_a: u32) -> u32 {
    jprobe_return()
}

static SINGLE_STEP: Kprobe = Kprobe::new().symbol("bench_target", 0).pre_handler(pre).post_handler(post);
static BOOSTED: Kprobe = Kprobe::new().symbol("bench_target", 0).pre_handler(pre);
static RETURN: Kretprobe = Kretprobe::new().symbol("bench_target").handler(returned).maxactive(4);
static JUMP: Jprobe = Jprobe::new(jhandler as *const ()).symbol("bench_target");

/// Ticks (instructions under `-icount`) for `CALLS` calls.
fn measure() -> u64 {
    without_interrupts(|| {
        let start = rdtsc();
        let mut sum = 0u32;
        for i in 0..CALLS as u32 {
            sum = sum.wrapping_add(bench_target(core::hint::black_box(i)));
        }
        core::hint::black_box(sum);
        rdtsc() - start
    })
}

/// One row of the report.
#[derive(Clone, Copy, Debug)]
pub struct Row {
    /// What was measured.
    pub name: &'static str,
    /// Extra ticks per call over the unprobed function.
    pub per_hit: u64,
}

fn row(name: &'static str, baseline: u64, setup: impl FnOnce(), teardown: impl FnOnce()) -> Row {
    setup();
    measure(); // warm up
    let ticks = measure();
    teardown();
    Row { name, per_hit: ticks.saturating_sub(baseline) / CALLS }
}

/// Runs every case and prints the table.
pub fn run() -> [Row; 6] {
    let baseline = measure().min(measure());
    let rows = [
        Row { name: "unprobed call (absolute, per call)", per_hit: baseline / CALLS },
        row("kprobe, single-step (pre+post handler)", baseline,
            || register_kprobe(&SINGLE_STEP).unwrap(), || unregister_kprobe(&SINGLE_STEP).unwrap()),
        row("kprobe, boosted (pre handler only)", baseline,
            || register_kprobe(&BOOSTED).unwrap(), || unregister_kprobe(&BOOSTED).unwrap()),
        row("kretprobe (return handler)", baseline,
            || register_kretprobe(&RETURN).unwrap(), || unregister_kretprobe(&RETURN).unwrap()),
        row("kretprobe + boosted kprobe", baseline,
            || { register_kretprobe(&RETURN).unwrap(); register_kprobe(&BOOSTED).unwrap() },
            || { unregister_kprobe(&BOOSTED).unwrap(); unregister_kretprobe(&RETURN).unwrap() }),
        row("jprobe", baseline,
            || register_jprobe(&JUMP).unwrap(), || unregister_jprobe(&JUMP).unwrap()),
    ];
    println!("bench: {CALLS} calls per case; TSC ticks per hit over the unprobed call");
    println!("       (guest instructions when QEMU runs with -icount shift=0,sleep=off)");
    for row in &rows {
        println!("  {:<42} {:>6}", row.name, row.per_hit);
    }
    println!("memory: {} probe sites, {} instruction slots of {} bytes, kretprobe instance {} bytes + data",
        crate::kprobes::MAX_SITES, crate::memory::slots::SLOT_COUNT, crate::memory::slots::SLOT_SIZE,
        core::mem::size_of::<KretprobeInstance>());
    rows
}
