//! The probe engine on four CPUs, exact: every CPU hitting one kprobe,
//! kretprobe and jprobe at once; kretprobe pools under more concurrency
//! than `maxactive`, and Linux's guidance that `maxactive` = the number of
//! CPUs is enough for a function that never gives up its CPU; CPU 0
//! registering, unregistering, enabling and disabling in a tight loop while
//! CPUs 1-3 run the probed code (under QEMU's multi-threaded TCG it caught
//! stale translations of patched code, see `patch::retouch_after_sync`);
//! unregistering a kretprobe with instances in
//! flight on other CPUs; and a task preempted inside a kretprobed function
//! on one CPU that returns on another.
// run.sh: --smp=4 --timeout=300
#![no_std]
#![no_main]
#![feature(custom_test_frameworks)]
#![test_runner(probe_kernel::testing::run_tests)]
#![reexport_test_harness_main = "test_main"]

extern crate alloc;

use alloc::vec::Vec;
use core::hint::black_box;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use probe_kernel::arch::x86::percpu;
use probe_kernel::kprobes::*;
use probe_kernel::task;

probe_kernel::test_kernel_main!();

const CPUS: usize = 4;

fn cpu() -> usize {
    probe_kernel::arch::cpu::without_interrupts(percpu::cpu_id)
}

/// Spawns `entry(arg_of(c))` pinned to each CPU in `cpus` and returns the
/// joined results in CPU order.
fn on_cpus(cpus: core::ops::Range<usize>, entry: fn(usize) -> usize) -> Vec<usize> {
    let ids: Vec<usize> = cpus.map(|c| task::spawn_on(c, "worker", entry, c).expect("spawn")).collect();
    ids.into_iter().map(task::join).collect()
}

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

#[inline(never)]
#[unsafe(no_mangle)]
extern "C" fn sp_jprobed(x: u32) -> u32 {
    black_box(x).wrapping_add(11)
}

/// CPUs that have entered `sp_slow` with their first call (`x` a multiple
/// of `SLOW_CALLS`); those calls wait inside until all `CPUS` have.
static SLOW_GATE: AtomicUsize = AtomicUsize::new(0);

/// Spins long enough that calls from several CPUs overlap; each CPU's
/// first call waits inside until every CPU's first call is in, so that
/// many calls are certainly in flight at once, however the host schedules
/// the virtual CPUs (with a busy host they may otherwise run one by one).
#[inline(never)]
#[unsafe(no_mangle)]
extern "C" fn sp_slow(x: u32) -> u32 {
    if (x as usize).is_multiple_of(SLOW_CALLS) {
        SLOW_GATE.fetch_add(1, SeqCst);
        while SLOW_GATE.load(SeqCst) < CPUS {
            core::hint::spin_loop();
        }
    }
    for i in 0..2_000u32 {
        black_box(i);
    }
    black_box(x) + 3
}

/// Never gives up its CPU: the body runs with interrupts off, so no other
/// task can enter it on the same CPU while a call is in flight.
#[inline(never)]
#[unsafe(no_mangle)]
extern "C" fn sp_cpu_bound(x: u32) -> u32 {
    probe_kernel::arch::cpu::without_interrupts(|| {
        for i in 0..500u32 {
            black_box(i);
        }
        black_box(x) + 5
    })
}

/// Taking the addresses pins the `extern "C"` convention the handlers read.
#[used]
static PINNED: [extern "C" fn(u32) -> u32; 5] = [sp_kprobed, sp_kretprobed, sp_jprobed, sp_slow, sp_cpu_bound];

static K_HITS: AtomicUsize = AtomicUsize::new(0);
static R_REPORTS: AtomicUsize = AtomicUsize::new(0);
static R_WRONG: AtomicUsize = AtomicUsize::new(0);
static J_HITS: AtomicUsize = AtomicUsize::new(0);
static J_WRONG: AtomicUsize = AtomicUsize::new(0);

fn count_hit(_: &Kprobe, _: &mut PtRegs) -> PreAction {
    K_HITS.fetch_add(1, SeqCst);
    PreAction::Continue
}

fn remember_argument(ri: &mut KretprobeInstance, regs: &mut PtRegs) -> EntryAction {
    ri.store(regs_get_kernel_argument(regs, 0, CallingConvention::C).unwrap_or(u32::MAX));
    EntryAction::Report
}

/// Checks the return value against the argument the entry saw.
fn check_kretprobed(ri: &mut KretprobeInstance, regs: &mut PtRegs) {
    let x: u32 = ri.load();
    R_REPORTS.fetch_add(1, SeqCst);
    if regs_return_value(regs) != x.wrapping_mul(7).wrapping_add(1) || ri.task() != task::current_id() {
        R_WRONG.fetch_add(1, SeqCst);
    }
}

extern "C" fn jprobe_handler(x: u32) -> u32 {
    J_HITS.fetch_add(1, SeqCst);
    // Every worker passes c * 1_000_000 + i with c < 4 and i < CALLS.
    if x % 1_000_000 >= CALLS as u32 || x / 1_000_000 >= CPUS as u32 {
        J_WRONG.fetch_add(1, SeqCst);
    }
    jprobe_return()
}

static KPROBE: Kprobe = Kprobe::new().symbol("sp_kprobed", 0).pre_handler(count_hit);
static KRETPROBE: Kretprobe = Kretprobe::new()
    .symbol("sp_kretprobed")
    .entry_handler(remember_argument)
    .handler(check_kretprobed)
    .data_size(4)
    .maxactive(16);
static JPROBE: Jprobe = Jprobe::new(jprobe_handler as *const ()).symbol("sp_jprobed");

const CALLS: usize = 3_000;

/// Calls the three probed functions CALLS times; returns how many results were right.
fn hammer(c: usize) -> usize {
    let mut right = 0;
    for i in 0..CALLS {
        let x = (c * 1_000_000 + i) as u32;
        right += usize::from(sp_kprobed(x) == x ^ 0x5a5a_5a5a);
        right += usize::from(sp_kretprobed(x) == x.wrapping_mul(7).wrapping_add(1));
        right += usize::from(sp_jprobed(x) == x + 11);
    }
    right
}

#[test_case]
fn four_cpus_hit_one_kprobe_kretprobe_and_jprobe_at_once() {
    for counter in [&K_HITS, &R_REPORTS, &R_WRONG, &J_HITS, &J_WRONG] {
        counter.store(0, SeqCst);
    }
    register_kprobe(&KPROBE).expect("kprobe");
    register_kretprobe(&KRETPROBE).expect("kretprobe");
    register_jprobe(&JPROBE).expect("jprobe");
    let right = on_cpus(0..CPUS, hammer);
    let calls = CPUS * CALLS;
    assert_eq!(right, [3 * CALLS; CPUS], "every return value right on every CPU");
    assert_eq!(K_HITS.load(SeqCst) + KPROBE.nmissed(), calls, "kprobe hits + misses");
    assert_eq!(R_REPORTS.load(SeqCst) + KRETPROBE.nmissed(), calls, "kretprobe reports + misses");
    assert_eq!(J_HITS.load(SeqCst) + JPROBE.kp.nmissed(), calls, "jprobe hits + misses");
    assert_eq!((R_WRONG.load(SeqCst), J_WRONG.load(SeqCst)), (0, 0));
    // Nothing else probes these functions, so nothing may be missed at all.
    assert_eq!((KPROBE.nmissed(), KRETPROBE.nmissed(), JPROBE.kp.nmissed()), (0, 0, 0));
    unregister_jprobe(&JPROBE).expect("jprobe");
    unregister_kretprobe(&KRETPROBE).expect("kretprobe");
    unregister_kprobe(&KPROBE).expect("kprobe");
}

static SLOW_REPORTS: AtomicUsize = AtomicUsize::new(0);

fn count_slow(_: &mut KretprobeInstance, regs: &mut PtRegs) {
    if regs_return_value(regs) >= 3 {
        SLOW_REPORTS.fetch_add(1, SeqCst);
    }
}

static SLOW_FEW: Kretprobe = Kretprobe::new().symbol("sp_slow").handler(count_slow).maxactive(2);
static CPU_BOUND: Kretprobe = Kretprobe::new().symbol("sp_cpu_bound").handler(count_slow).maxactive(CPUS as i32);

const SLOW_CALLS: usize = 1_000;

fn call_slow(c: usize) -> usize {
    (0..SLOW_CALLS).filter(|&i| sp_slow((c * SLOW_CALLS + i) as u32) == (c * SLOW_CALLS + i) as u32 + 3).count()
}

fn call_cpu_bound(c: usize) -> usize {
    (0..SLOW_CALLS).filter(|&i| sp_cpu_bound((c * SLOW_CALLS + i) as u32) == (c * SLOW_CALLS + i) as u32 + 5).count()
}

#[test_case]
fn maxactive_below_concurrency_counts_every_call_as_report_or_miss() {
    SLOW_REPORTS.store(0, SeqCst);
    SLOW_GATE.store(0, SeqCst);
    register_kretprobe(&SLOW_FEW).expect("register");
    assert_eq!(on_cpus(0..CPUS, call_slow), [SLOW_CALLS; CPUS]);
    let (reports, missed) = (SLOW_REPORTS.load(SeqCst), SLOW_FEW.nmissed());
    assert_eq!(reports + missed, CPUS * SLOW_CALLS, "reports {reports} + nmissed {missed}");
    // The first calls of all four CPUs are in flight at once (the gate):
    // two instances, so at least two of them miss.
    assert!(missed >= CPUS - 2, "four CPUs in a 2-instance kretprobe missed only {missed} calls");
    unregister_kretprobe(&SLOW_FEW).expect("unregister");
}

#[test_case]
fn maxactive_of_one_per_cpu_suffices_for_a_function_that_keeps_its_cpu() {
    SLOW_REPORTS.store(0, SeqCst);
    register_kretprobe(&CPU_BOUND).expect("register");
    assert_eq!(on_cpus(0..CPUS, call_cpu_bound), [SLOW_CALLS; CPUS]);
    assert_eq!(CPU_BOUND.nmissed(), 0, "Linux: NR_CPUS instances are enough here");
    assert_eq!(SLOW_REPORTS.load(SeqCst), CPUS * SLOW_CALLS);
    unregister_kretprobe(&CPU_BOUND).expect("unregister");
}

#[test_case]
fn the_default_maxactive_follows_the_online_cpus() {
    static DEFAULT: Kretprobe = Kretprobe::new().symbol("sp_slow").handler(count_slow);
    assert_eq!(DEFAULT.effective_maxactive(), 10usize.max(2 * CPUS));
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
        // Every fourth cycle with jump optimization: its probes are then
        // optimized and unoptimized under the callers too (four times the
        // sync rounds of a breakpoint-only cycle, hence not every cycle).
        set_optimization(cycle % 4 == 0).expect("switch optimization");
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
    set_optimization(true).expect("optimization back on");
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

static ENTERED: AtomicUsize = AtomicUsize::new(0);
static RELEASE: AtomicBool = AtomicBool::new(false);
static BLOCKED_REPORTS: AtomicUsize = AtomicUsize::new(0);

/// Waits inside the function until released.
#[inline(never)]
#[unsafe(no_mangle)]
extern "C" fn sp_blocking(x: u32) -> u32 {
    ENTERED.fetch_add(1, SeqCst);
    while !RELEASE.load(SeqCst) {
        core::hint::spin_loop();
    }
    black_box(x) * 2
}

#[used]
static PINNED_BLOCKING: extern "C" fn(u32) -> u32 = sp_blocking;

fn count_blocked(_: &mut KretprobeInstance, _: &mut PtRegs) {
    BLOCKED_REPORTS.fetch_add(1, SeqCst);
}

static BLOCKING: Kretprobe = Kretprobe::new().symbol("sp_blocking").handler(count_blocked).maxactive(8);

fn call_blocking(c: usize) -> usize {
    sp_blocking(c as u32 + 100) as usize
}

#[test_case]
fn unregistering_a_kretprobe_with_instances_in_flight_on_other_cpus() {
    ENTERED.store(0, SeqCst);
    RELEASE.store(false, SeqCst);
    BLOCKED_REPORTS.store(0, SeqCst);
    let arena = kretprobe_arena_used();
    register_kretprobe(&BLOCKING).expect("register");
    let ids: Vec<usize> = (1..CPUS).map(|c| task::spawn_on(c, "blocked", call_blocking, c).expect("spawn")).collect();
    while ENTERED.load(SeqCst) < CPUS - 1 {
        task::yield_now();
    }
    unregister_kretprobe(&BLOCKING).expect("unregister with three calls in flight");
    assert_eq!(kretprobe::retired_pools(), 1, "the pool waits for its instances");
    RELEASE.store(true, SeqCst);
    let values: Vec<usize> = ids.into_iter().map(task::join).collect();
    assert_eq!(values, [202, 204, 206], "each call returned its own value to its own caller");
    assert_eq!(BLOCKED_REPORTS.load(SeqCst), 0, "no handler runs after unregistration");
    register_kretprobe(&BLOCKING).expect("register again");
    unregister_kretprobe(&BLOCKING).expect("unregister again");
    assert_eq!((kretprobe::retired_pools(), kretprobe_arena_used()), (0, arena));
}

static START_CPU: AtomicUsize = AtomicUsize::new(usize::MAX);
static MIGRATED_REPORTS: AtomicUsize = AtomicUsize::new(0);
static MIGRATION_SEEN: AtomicUsize = AtomicUsize::new(0);
static HOG_STOP: AtomicBool = AtomicBool::new(false);

/// Busy until it finds itself on another CPU than it entered on (or a
/// timeout): it never yields, so only preemption can move it.
#[inline(never)]
#[unsafe(no_mangle)]
extern "C" fn sp_migrating(x: u32) -> u32 {
    let start = cpu();
    START_CPU.store(start, SeqCst);
    let deadline = task::ticks() + 2_000;
    while cpu() == start && task::ticks() < deadline {
        black_box(0);
    }
    black_box(x) + 1
}

#[used]
static PINNED_MIGRATING: extern "C" fn(u32) -> u32 = sp_migrating;

fn entry_cpu(ri: &mut KretprobeInstance, _: &mut PtRegs) -> EntryAction {
    ri.store(percpu::cpu_id() as u32);
    EntryAction::Report
}

fn migrated_return(ri: &mut KretprobeInstance, regs: &mut PtRegs) {
    MIGRATED_REPORTS.fetch_add(1, SeqCst);
    let entered_on: u32 = ri.load();
    if entered_on as usize != percpu::cpu_id() && regs_return_value(regs) == 42 && ri.task() == task::current_id() {
        MIGRATION_SEEN.fetch_add(1, SeqCst);
    }
}

static MIGRATING: Kretprobe =
    Kretprobe::new().symbol("sp_migrating").entry_handler(entry_cpu).handler(migrated_return).data_size(4).maxactive(4);

fn migrating_caller(_: usize) -> usize {
    let value = sp_migrating(41) as usize;
    // Back in the caller: the right value, here.
    value * 10 + usize::from(cpu() != START_CPU.load(SeqCst))
}

fn hog(_: usize) -> usize {
    while !HOG_STOP.load(SeqCst) {
        black_box(0);
    }
    0
}

#[test_case]
fn a_task_preempted_in_a_kretprobed_function_returns_on_another_cpu() {
    START_CPU.store(usize::MAX, SeqCst);
    MIGRATED_REPORTS.store(0, SeqCst);
    MIGRATION_SEEN.store(0, SeqCst);
    HOG_STOP.store(false, SeqCst);
    register_kretprobe(&MIGRATING).expect("register");
    // The caller may run anywhere except CPU 0 (this task's); once it is
    // inside, a hog pinned to its CPU takes the CPU when its slice ends.
    let caller = task::spawn_on(1, "migrating", migrating_caller, 0).expect("spawn");
    while START_CPU.load(SeqCst) == usize::MAX {
        task::yield_now();
    }
    let hog = task::spawn_on(1, "hog", hog, 0).expect("hog");
    // Free the caller to move: unpinning a task that is inside the function.
    unpin(caller);
    let value = task::join(caller);
    HOG_STOP.store(true, SeqCst);
    task::join(hog);
    assert_eq!(value, 421, "returned 42 to its caller, on another CPU than it entered on");
    assert_eq!(MIGRATED_REPORTS.load(SeqCst), 1, "the return is reported once");
    assert_eq!(MIGRATION_SEEN.load(SeqCst), 1, "the handler ran on the new CPU with the right value and task");
    unregister_kretprobe(&MIGRATING).expect("unregister");
}

fn unpin(id: usize) {
    task::set_affinity_of(id, None);
}
