//! Soak: four tasks and the timer interrupt hit kprobes, kretprobes and a jprobe while a fifth (and sixth) task churns them.
//!
//! Why: registration, unregistration, enabling and disabling must be safe
//! while other tasks and interrupts are hitting the very probes being
//! changed, and the books must balance exactly: for every probe, handler
//! runs + nmissed = calls made while it was registered and enabled. The
//! accounting is made exact by a handshake: a caller announces a call
//! (`ENTERING`) and reads the probe's state, and the control task, before it
//! changes a probe, raises `TRANSITION` and waits until no announced call
//! is still short of its entry hit; so every hit happens in a known state.
//! The timer hook runs with interrupts off, so it only has to skip probes in
//! transition. One kretprobe lets the control task unregister it while calls
//! are in flight (they must return normally and not be reported: those
//! calls are counted as orphaned); another has one instance (misses). The
//! boosted kprobe's window ends in its handler, so it is unregistered while
//! tasks may still be preempted inside its boosted copy. A second test
//! makes that the rule: a task spends its time in the boosted copy of a
//! long `rep stosb` while another task unregisters the probe and churns
//! slots, so freed slots must wait as garbage until the task is out. A
//! third recurses seven levels deep in four tasks while the kretprobe on
//! the recursive function is unregistered and registered again, so old and
//! new instances share each task's list; every level's report is accounted.
//! A sixth function carries a kprobe, a kretprobe and a jprobe at once (one
//! site), each churned on its own while calls hit all three.
//! A sixth task churns two of the probes too, so engine calls of two tasks
//! overlap; and the timer hook keeps trying engine calls itself, each of
//! which must be refused (`InterruptsDisabled`) without changing anything;
//! now and then a batch registration that must fail is tried first, and it
//! must roll back. Afterwards every pool, arena byte, heap byte, slot and site is
//! back.
#![no_std]
#![no_main]
#![feature(custom_test_frameworks)]
#![test_runner(probe_kernel::testing::run_tests)]
#![reexport_test_harness_main = "test_main"]
#![deny(unsafe_op_in_unsafe_fn)]

extern crate alloc;

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::hint::black_box;
use core::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, AtomicUsize, Ordering::SeqCst};
use probe_kernel::arch::cpu;
use probe_kernel::kprobes::kretprobe::retired_pools;
use probe_kernel::kprobes::*;
use probe_kernel::memory::{heap_used, slots};
use probe_kernel::testing::{Seconds, entry_argument};
use probe_kernel::{println, task};

probe_kernel::test_kernel_main!();

const WORKERS: usize = 4;
/// Calls each worker makes (spread over the five targets).
const CALLS_PER_WORKER: usize = 2_000_000;
/// The `who` of calls made by the timer hook.
const HOOK: u32 = WORKERS as u32;

/// The probes, one per target function.
const KP_STEP: usize = 0;
const KP_BOOST: usize = 1;
const KRET: usize = 2;
const KRET_ONE: usize = 3;
const JP: usize = 4;
/// A kprobe, a kretprobe and a jprobe sharing one function (one site).
const SH_KP: usize = 5;
const SH_KRET: usize = 6;
const SH_JP: usize = 7;
const PROBES: usize = 8;
const NAMES: [&str; PROBES] = [
    "kprobe (stepped)",
    "kprobe (boosted)",
    "kretprobe",
    "kretprobe (maxactive 1)",
    "jprobe",
    "shared: kprobe",
    "shared: kretprobe",
    "shared: jprobe",
];
/// The target functions: one per probe, and one (`SHARED`) for three.
const SHARED: usize = 5;
const TARGETS: usize = 6;
const TARGET_PROBES: [&[usize]; TARGETS] =
    [&[KP_STEP], &[KP_BOOST], &[KRET], &[KRET_ONE], &[JP], &[SH_KP, SH_KRET, SH_JP]];
/// Probes whose window closes when the call returns (a kretprobe that may
/// not be changed while its calls are in flight); the others close it at
/// the entry hit.
const LATE: [bool; PROBES] = [false, false, false, true, false, false, true, false];
/// Mixed into each target's second argument, so handlers can check both.
const MAGIC: [u32; TARGETS] = [0x5a5a_0001, 0x3c3c_0002, 0x6969_0003, 0x0f0f_0004, 0x7e7e_0005, 0x1234_0006];

const UNREGISTERED: u8 = 0;
const ENABLED: u8 = 1;
const DISABLED: u8 = 2;

/// Each probe's state, as the control task last left it.
static STATE: [AtomicU8; PROBES] = [const { AtomicU8::new(UNREGISTERED) }; PROBES];
/// Set while the control task changes a probe: no new call may start.
static TRANSITION: [AtomicBool; PROBES] = [const { AtomicBool::new(false) }; PROBES];
/// Announced task calls whose entry hit has not happened yet.
static ENTERING: [AtomicUsize; PROBES] = [const { AtomicUsize::new(0) }; PROBES];
/// Bumped at every unregistration (a kretprobe call in flight across one is orphaned).
static GENERATION: [AtomicUsize; PROBES] = [const { AtomicUsize::new(0) }; PROBES];
/// Calls started while the probe was registered and enabled.
static EXPECTED: [AtomicUsize; PROBES] = [const { AtomicUsize::new(0) }; PROBES];
/// Of those, kretprobe calls whose registration ended before they returned.
static ORPHANED: [AtomicUsize; PROBES] = [const { AtomicUsize::new(0) }; PROBES];
/// Handler runs: pre handler, return handler, jprobe handler.
static HANDLED: [AtomicUsize; PROBES] = [const { AtomicUsize::new(0) }; PROBES];
/// `nmissed` summed over the registrations that ended.
static MISSED: [AtomicUsize; PROBES] = [const { AtomicUsize::new(0) }; PROBES];
/// Post-handler runs of the stepped kprobe and of the shared one.
static POSTS: AtomicUsize = AtomicUsize::new(0);
static SHARED_POSTS: AtomicUsize = AtomicUsize::new(0);
/// Calls made, per worker and (last) by the hook.
static CALLS: [AtomicUsize; WORKERS + 1] = [const { AtomicUsize::new(0) }; WORKERS + 1];
/// Wrong arguments or return values seen anywhere, and the first one.
static BAD: AtomicUsize = AtomicUsize::new(0);
static FIRST_BAD: AtomicU32 = AtomicU32::new(0);
/// Set by the boosted kprobe's handler when it ended a worker's window.
static RELEASED: [AtomicBool; WORKERS] = [const { AtomicBool::new(false) }; WORKERS];
/// The kretprobe's generation as `soak_kret` saw it just before returning.
static RETURN_GENERATION: [AtomicUsize; WORKERS] = [const { AtomicUsize::new(0) }; WORKERS];
static HOOK_ON: AtomicBool = AtomicBool::new(false);
static WORKERS_DONE: AtomicUsize = AtomicUsize::new(0);
/// Control-task operations done: register, unregister, enable, disable.
static OPS: [AtomicUsize; 4] = [const { AtomicUsize::new(0) }; 4];
/// Unregistrations of the kretprobe while one of its calls was in flight.
static IN_FLIGHT_UNREGISTERS: AtomicUsize = AtomicUsize::new(0);
static KRET_INSIDE: AtomicUsize = AtomicUsize::new(0);

fn bad(code: u32) {
    if BAD.fetch_add(1, SeqCst) == 0 {
        FIRST_BAD.store(code, SeqCst);
    }
}

/// What target `target` returns for `(a, b)`.
fn expected_return(target: usize, a: u32, b: u32) -> u32 {
    match target {
        KP_STEP => a.wrapping_mul(3) ^ b,
        KP_BOOST => a.wrapping_add(b).rotate_left(7),
        KRET => a.wrapping_mul(7).wrapping_add(b),
        KRET_ONE => a.wrapping_sub(b) ^ 0x55,
        JP => a ^ b.wrapping_mul(5),
        _ => a.rotate_right(3).wrapping_add(b ^ 0x77),
    }
}

/// The arguments of call `i` by `who` to target `target`.
fn arguments(target: usize, who: u32, i: usize) -> (u32, u32) {
    let a = who << 20 | (i as u32 & 0xf_ffff);
    (a, a ^ MAGIC[target])
}

/// Whether `(a, b, who)` are arguments some caller passes to `target`.
fn plausible(target: usize, a: u32, b: u32, who: u32) -> bool {
    who <= HOOK && a >> 20 == who && b == a ^ MAGIC[target]
}

/// A task call's entry hit is done (the window opened by the caller closes).
fn passed(probe: usize, who: u32) {
    if who < HOOK {
        ENTERING[probe].fetch_sub(1, SeqCst);
    }
}

// ----------------------------------------------------------------- targets

#[inline(never)]
#[unsafe(no_mangle)]
extern "C" fn soak_kp_step(a: u32, b: u32, who: u32) -> u32 {
    passed(KP_STEP, who);
    black_box(a).wrapping_mul(3) ^ b
}

#[inline(never)]
#[unsafe(no_mangle)]
extern "C" fn soak_kp_boost(a: u32, b: u32, who: u32) -> u32 {
    // The handler closed the window if it ran; otherwise close it here.
    if who < HOOK && !RELEASED[who as usize].swap(false, SeqCst) {
        ENTERING[KP_BOOST].fetch_sub(1, SeqCst);
    }
    black_box(a).wrapping_add(b).rotate_left(7)
}

/// Yields now and then, so calls are in flight while the control task runs;
/// a task's call returns with interrupts off (its caller turns them back
/// on), so nothing can change between reading the generation and the return.
#[inline(never)]
#[unsafe(no_mangle)]
extern "C" fn soak_kret(a: u32, b: u32, who: u32) -> u32 {
    passed(KRET, who);
    let value = black_box(a).wrapping_mul(7).wrapping_add(b);
    if who < HOOK {
        KRET_INSIDE.fetch_add(1, SeqCst);
        if a % 8 == 0 {
            task::yield_now();
        }
        KRET_INSIDE.fetch_sub(1, SeqCst);
        cpu::disable_interrupts();
        RETURN_GENERATION[who as usize].store(GENERATION[KRET].load(SeqCst), SeqCst);
    }
    value
}

#[inline(never)]
#[unsafe(no_mangle)]
extern "C" fn soak_kret_one(a: u32, b: u32, _who: u32) -> u32 {
    // Its window closes when the call returns (see `call`).
    black_box(a).wrapping_sub(b) ^ 0x55
}

#[inline(never)]
#[unsafe(no_mangle)]
extern "C" fn soak_jp(a: u32, b: u32, who: u32) -> u32 {
    passed(JP, who);
    black_box(a) ^ b.wrapping_mul(5)
}

#[inline(never)]
#[unsafe(no_mangle)]
extern "C" fn soak_shared(a: u32, b: u32, who: u32) -> u32 {
    passed(SH_KP, who);
    passed(SH_JP, who);
    // SH_KRET's window closes when the call returns.
    black_box(a).rotate_right(3).wrapping_add(b ^ 0x77)
}

fn target(target: usize) -> extern "C" fn(u32, u32, u32) -> u32 {
    match target {
        KP_STEP => soak_kp_step,
        KP_BOOST => soak_kp_boost,
        KRET => soak_kret,
        KRET_ONE => soak_kret_one,
        JP => soak_jp,
        _ => soak_shared,
    }
}

// ----------------------------------------------------------------- handlers

/// The arguments at a function's first instruction: [esp+4], [esp+8], [esp+12].
fn stack_arguments(regs: &PtRegs) -> (u32, u32, u32) {
    (entry_argument(regs, 0), entry_argument(regs, 1), entry_argument(regs, 2))
}

fn step_pre(probe: &Kprobe, regs: &mut PtRegs) -> PreAction {
    let (a, b, who) = stack_arguments(regs);
    if !plausible(KP_STEP, a, b, who) || probe.addr() != Some(regs.eip as usize) {
        bad(0x100);
    }
    HANDLED[KP_STEP].fetch_add(1, SeqCst);
    PreAction::Continue
}

fn step_post(probe: &Kprobe, regs: &mut PtRegs) {
    let address = probe.addr().unwrap_or(0);
    if !(address + 1..address + 16).contains(&(regs.eip as usize)) {
        bad(0x101);
    }
    POSTS.fetch_add(1, SeqCst);
}

fn boost_pre(probe: &Kprobe, regs: &mut PtRegs) -> PreAction {
    let (a, b, who) = stack_arguments(regs);
    if !plausible(KP_BOOST, a, b, who) || probe.addr() != Some(regs.eip as usize) {
        bad(0x200);
    }
    HANDLED[KP_BOOST].fetch_add(1, SeqCst);
    if who < HOOK {
        // The hit is counted: the control task may now change this probe,
        // even while this task still runs the boosted copy.
        RELEASED[who as usize].store(true, SeqCst);
        ENTERING[KP_BOOST].fetch_sub(1, SeqCst);
    }
    PreAction::Continue
}

fn kret_entry(ri: &mut KretprobeInstance, regs: &mut PtRegs) -> EntryAction {
    let (a, b, _) = stack_arguments(regs);
    ri.store([a, b]);
    EntryAction::Report
}

fn kret_return(ri: &mut KretprobeInstance, regs: &mut PtRegs) {
    let [a, b]: [u32; 2] = ri.load();
    let rp = ri.kretprobe();
    let (probe, target) = if rp.is_some_and(|rp| core::ptr::eq(rp, &RP_ONE)) {
        (KRET_ONE, KRET_ONE)
    } else if rp.is_some_and(|rp| core::ptr::eq(rp, &RP_SHARED)) {
        (SH_KRET, SHARED)
    } else {
        (KRET, KRET)
    };
    if !plausible(target, a, b, a >> 20) || regs_return_value(regs) != expected_return(target, a, b) {
        bad(0x300 + probe as u32);
    }
    if ri.task() != task::current_id() {
        bad(0x310);
    }
    HANDLED[probe].fetch_add(1, SeqCst);
}

extern "C" fn jp_handler(a: u32, b: u32, who: u32) -> u32 {
    if !plausible(JP, a, b, who) {
        bad(0x400);
    }
    HANDLED[JP].fetch_add(1, SeqCst);
    jprobe_return()
}

fn shared_pre(probe: &Kprobe, regs: &mut PtRegs) -> PreAction {
    let (a, b, who) = stack_arguments(regs);
    if !plausible(SHARED, a, b, who) || probe.addr() != Some(regs.eip as usize) {
        bad(0x800);
    }
    HANDLED[SH_KP].fetch_add(1, SeqCst);
    PreAction::Continue
}

fn shared_post(_probe: &Kprobe, _regs: &mut PtRegs) {
    SHARED_POSTS.fetch_add(1, SeqCst);
}

extern "C" fn shared_jp_handler(a: u32, b: u32, who: u32) -> u32 {
    if !plausible(SHARED, a, b, who) {
        bad(0x801);
    }
    HANDLED[SH_JP].fetch_add(1, SeqCst);
    jprobe_return()
}

static KP_STEP_PROBE: Kprobe = Kprobe::new().symbol("soak_kp_step", 0).pre_handler(step_pre).post_handler(step_post);
static KP_BOOST_PROBE: Kprobe = Kprobe::new().symbol("soak_kp_boost", 0).pre_handler(boost_pre);
static RP: Kretprobe =
    Kretprobe::new().symbol("soak_kret").entry_handler(kret_entry).handler(kret_return).data_size(8).maxactive(8);
static RP_ONE: Kretprobe =
    Kretprobe::new().symbol("soak_kret_one").entry_handler(kret_entry).handler(kret_return).data_size(8).maxactive(1);
static JPROBE: Jprobe = Jprobe::new(jp_handler as *const ()).symbol("soak_jp");
static KP_SHARED: Kprobe = Kprobe::new().symbol("soak_shared", 0).pre_handler(shared_pre).post_handler(shared_post);
static RP_SHARED: Kretprobe =
    Kretprobe::new().symbol("soak_shared").entry_handler(kret_entry).handler(kret_return).data_size(8).maxactive(8);
/// Never registrable (no such function): a batch with it fails and must
/// roll back the probes registered before it.
static KP_NOWHERE: Kprobe = Kprobe::new().symbol("soak::no_such_function", 0).pre_handler(step_pre);
static RP_NOWHERE: Kretprobe = Kretprobe::new().symbol("soak::no_such_function").handler(kret_return);
static FAILED_BATCHES: AtomicUsize = AtomicUsize::new(0);

/// A batch of `probe` (unregistered) and an unregistrable probe: it must
/// fail with `UnknownSymbol` and leave `probe` unregistered.
fn failing_batch(probe: usize) {
    let (result, gone) = match probe {
        KP_STEP => {
            (register_kprobes(&[&KP_STEP_PROBE, &KP_NOWHERE]), KP_STEP_PROBE.flags().contains(KprobeFlags::GONE))
        }
        _ => (register_kretprobes(&[&RP, &RP_NOWHERE]), RP.kp.flags().contains(KprobeFlags::GONE)),
    };
    assert_eq!(result, Err(KprobeError::UnknownSymbol), "{}: a failing batch", NAMES[probe]);
    let still_gone = match probe {
        KP_STEP => KP_STEP_PROBE.flags().contains(KprobeFlags::GONE),
        _ => RP.kp.flags().contains(KprobeFlags::GONE),
    };
    assert!(gone && still_gone, "{}: registered by a batch that failed", NAMES[probe]);
    FAILED_BATCHES.fetch_add(1, SeqCst);
}

static JP_SHARED: Jprobe = Jprobe::new(shared_jp_handler as *const ()).symbol("soak_shared");

/// Frees retired kretprobe pools whose calls have all returned: the engine
/// does that when a kretprobe is registered or unregistered.
fn sweep_retired_pools() {
    register_kretprobe(&RP_SWEEP).expect("sweep");
    unregister_kretprobe(&RP_SWEEP).expect("sweep");
}

/// Registered only to sweep (on a target nobody calls then).
static RP_SWEEP: Kretprobe = Kretprobe::new().symbol("soak_kret_one").handler(kret_return).maxactive(1);

fn register(probe: usize) -> Result<(), KprobeError> {
    match probe {
        KP_STEP => register_kprobe(&KP_STEP_PROBE),
        KP_BOOST => register_kprobe(&KP_BOOST_PROBE),
        KRET => register_kretprobe(&RP),
        KRET_ONE => register_kretprobe(&RP_ONE),
        JP => register_jprobe(&JPROBE),
        SH_KP => register_kprobe(&KP_SHARED),
        SH_KRET => register_kretprobe(&RP_SHARED),
        _ => register_jprobe(&JP_SHARED),
    }
}

fn unregister(probe: usize) -> Result<(), KprobeError> {
    match probe {
        KP_STEP => unregister_kprobe(&KP_STEP_PROBE),
        KP_BOOST => unregister_kprobe(&KP_BOOST_PROBE),
        KRET => unregister_kretprobe(&RP),
        KRET_ONE => unregister_kretprobe(&RP_ONE),
        JP => unregister_jprobe(&JPROBE),
        SH_KP => unregister_kprobe(&KP_SHARED),
        SH_KRET => unregister_kretprobe(&RP_SHARED),
        _ => unregister_jprobe(&JP_SHARED),
    }
}

fn set_enabled(probe: usize, on: bool) -> Result<(), KprobeError> {
    match (probe, on) {
        (KP_STEP, true) => enable_kprobe(&KP_STEP_PROBE),
        (KP_STEP, false) => disable_kprobe(&KP_STEP_PROBE),
        (KP_BOOST, true) => enable_kprobe(&KP_BOOST_PROBE),
        (KP_BOOST, false) => disable_kprobe(&KP_BOOST_PROBE),
        (KRET, true) => enable_kretprobe(&RP),
        (KRET, false) => disable_kretprobe(&RP),
        (KRET_ONE, true) => enable_kretprobe(&RP_ONE),
        (KRET_ONE, false) => disable_kretprobe(&RP_ONE),
        (JP, true) => enable_kprobe(&JPROBE.kp),
        (JP, false) => disable_kprobe(&JPROBE.kp),
        (SH_KP, true) => enable_kprobe(&KP_SHARED),
        (SH_KP, false) => disable_kprobe(&KP_SHARED),
        (SH_KRET, true) => enable_kretprobe(&RP_SHARED),
        (SH_KRET, false) => disable_kretprobe(&RP_SHARED),
        (_, true) => enable_kprobe(&JP_SHARED.kp),
        (_, false) => disable_kprobe(&JP_SHARED.kp),
    }
}

fn nmissed(probe: usize) -> usize {
    match probe {
        KP_STEP => KP_STEP_PROBE.nmissed(),
        KP_BOOST => KP_BOOST_PROBE.nmissed(),
        KRET => RP.nmissed(),
        KRET_ONE => RP_ONE.nmissed(),
        JP => JPROBE.kp.nmissed(),
        SH_KP => KP_SHARED.nmissed(),
        SH_KRET => RP_SHARED.nmissed(),
        _ => JP_SHARED.kp.nmissed(),
    }
}

// ----------------------------------------------------------------- callers

/// One call by worker `who` to `target`, inside the handshake (for every
/// probe on the target). Returns false if one of them was in transition
/// (nothing was called).
fn call(target: usize, who: u32, i: usize) -> bool {
    let probes = TARGET_PROBES[target];
    if probes.iter().any(|&p| TRANSITION[p].load(SeqCst)) {
        return false;
    }
    for &p in probes {
        ENTERING[p].fetch_add(1, SeqCst);
    }
    if probes.iter().any(|&p| TRANSITION[p].load(SeqCst)) {
        for &p in probes {
            ENTERING[p].fetch_sub(1, SeqCst);
        }
        return false;
    }
    // Stable until this call's entry hit is done (the control task waits).
    let mut enabled = [false; 3];
    for (on, &p) in enabled.iter_mut().zip(probes) {
        *on = STATE[p].load(SeqCst) == ENABLED;
    }
    let generation = GENERATION[KRET].load(SeqCst);
    let (a, b) = arguments(target, who, i);
    if i % 4093 == 0 {
        // Widen the window: the control task must wait for this call.
        task::yield_now();
    }
    let value = black_box(self::target(target))(a, b, who);
    if target == KRET {
        let at_return = RETURN_GENERATION[who as usize].load(SeqCst);
        cpu::enable_interrupts();
        if enabled[0] && at_return != generation {
            ORPHANED[KRET].fetch_add(1, SeqCst);
        }
    }
    for &p in probes.iter().filter(|&&p| LATE[p]) {
        ENTERING[p].fetch_sub(1, SeqCst);
    }
    if value != expected_return(target, a, b) {
        bad(0x500 + target as u32);
    }
    for (&on, &p) in enabled.iter().zip(probes) {
        if on {
            EXPECTED[p].fetch_add(1, SeqCst);
        }
    }
    CALLS[who as usize].fetch_add(1, SeqCst);
    true
}

fn worker(who: usize) -> usize {
    let mut done = 0;
    let mut i = 0;
    while done < CALLS_PER_WORKER {
        let target = (i + who) % TARGETS;
        // A probe in transition is skipped: the next call goes to the next target.
        if call(target, who as u32, i) {
            done += 1;
        }
        // Rarely yield: mostly the timer preempts workers, anywhere.
        i += 1;
        if i % 8192 == 0 {
            task::yield_now();
        }
    }
    WORKERS_DONE.fetch_add(1, SeqCst);
    done
}

static HOOK_TICK: AtomicUsize = AtomicUsize::new(0);
/// Engine calls the timer hook tried (each must be refused, changing nothing).
static HOOK_REFUSALS: AtomicUsize = AtomicUsize::new(0);
/// Never registered: the hook tries to.
static HOOK_PROBE: Kprobe = Kprobe::new().symbol("soak_kp_step", 0).pre_handler(step_pre);

/// From interrupt context every engine call is refused with a typed
/// error, whatever the control tasks are doing meanwhile.
fn hook_tries_the_engine(tick: usize) {
    let result = match tick % 4 {
        0 => register_kprobe(&HOOK_PROBE),
        1 => unregister_kretprobe(&RP),
        2 => disable_kprobe(&KP_STEP_PROBE),
        _ => enable_kprobe(&KP_BOOST_PROBE),
    };
    if result != Err(KprobeError::InterruptsDisabled) {
        bad(0x700 + (tick % 4) as u32);
    }
    HOOK_REFUSALS.fetch_add(1, SeqCst);
}

/// Every tick (interrupt context, interrupts off): one call to each target
/// not in transition. Nothing can change a probe while this runs.
#[allow(clippy::needless_range_loop)] // the index names a target in several tables
fn tick_hook() {
    if !HOOK_ON.load(SeqCst) {
        return;
    }
    let tick = HOOK_TICK.fetch_add(1, SeqCst);
    if tick % 8 == 0 {
        hook_tries_the_engine(tick / 8);
    }
    for target in 0..TARGETS {
        let probes = TARGET_PROBES[target];
        if probes.iter().any(|&p| TRANSITION[p].load(SeqCst)) {
            continue;
        }
        let (a, b) = arguments(target, HOOK, tick);
        if black_box(self::target(target))(a, b, HOOK) != expected_return(target, a, b) {
            bad(0x600 + target as u32);
        }
        for &p in probes {
            if STATE[p].load(SeqCst) == ENABLED {
                EXPECTED[p].fetch_add(1, SeqCst);
            }
        }
        CALLS[HOOK as usize].fetch_add(1, SeqCst);
    }
}

// ----------------------------------------------------------------- control

static SEED: AtomicU32 = AtomicU32::new(0x2545_f491);

fn random() -> u32 {
    let mut x = SEED.load(SeqCst);
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    SEED.store(x, SeqCst);
    x
}

/// Control-task engine calls in progress, and how often one began while
/// another task's was in progress (it was preempted inside the engine).
static IN_ENGINE: AtomicUsize = AtomicUsize::new(0);
static OVERLAPS: AtomicUsize = AtomicUsize::new(0);

fn engine_call(probe: usize, what: &str, f: impl FnOnce() -> Result<(), KprobeError>) {
    if IN_ENGINE.fetch_add(1, SeqCst) != 0 {
        OVERLAPS.fetch_add(1, SeqCst);
    }
    let result = f();
    IN_ENGINE.fetch_sub(1, SeqCst);
    result.unwrap_or_else(|e| panic!("{what} {}: {e:?}", NAMES[probe]));
}

/// Changes `probe` at a quiescent point of its calls; the caller has
/// raised its `TRANSITION`.
fn transition(probe: usize) {
    while ENTERING[probe].load(SeqCst) != 0 {
        task::yield_now();
    }
    let state = STATE[probe].load(SeqCst);
    let new = match (state, random() % 2) {
        (UNREGISTERED, _) => {
            if matches!(probe, KP_STEP | KRET) && random() % 8 == 0 {
                failing_batch(probe);
            }
            engine_call(probe, "register", || register(probe));
            OPS[0].fetch_add(1, SeqCst);
            ENABLED
        }
        (_, 0) => {
            if probe == KRET && KRET_INSIDE.load(SeqCst) != 0 {
                IN_FLIGHT_UNREGISTERS.fetch_add(1, SeqCst);
            }
            MISSED[probe].fetch_add(nmissed(probe), SeqCst);
            engine_call(probe, "unregister", || unregister(probe));
            GENERATION[probe].fetch_add(1, SeqCst);
            OPS[1].fetch_add(1, SeqCst);
            UNREGISTERED
        }
        (ENABLED, _) => {
            engine_call(probe, "disable", || set_enabled(probe, false));
            OPS[3].fetch_add(1, SeqCst);
            DISABLED
        }
        _ => {
            engine_call(probe, "enable", || set_enabled(probe, true));
            OPS[2].fetch_add(1, SeqCst);
            ENABLED
        }
    };
    STATE[probe].store(new, SeqCst);
    TRANSITION[probe].store(false, SeqCst);
}

/// The probes each control task changes: the first one all of them (so
/// any probe can change while any other is hit), the second one the
/// boosted kprobe and the one-instance kretprobe, so registrations of two
/// tasks also overlap (each probe has one owner at a time: the one that
/// raised its `TRANSITION`).
const CONTROLLED: [&[usize]; 2] =
    [&[KP_STEP, KP_BOOST, KRET, KRET_ONE, JP, SH_KP, SH_KRET, SH_JP], &[KP_BOOST, KRET_ONE, SH_KP, SH_KRET, SH_JP]];

fn control(which: usize) -> usize {
    let mut ops = 0;
    let probes = CONTROLLED[which];
    while WORKERS_DONE.load(SeqCst) < WORKERS {
        // Bursts longer than a time slice, so the timer preempts control
        // tasks anywhere, inside the engine too; then the workers get the CPU.
        let until = task::ticks() + task::TIME_SLICE_TICKS as u64 + 1;
        while task::ticks() < until {
            let probe = probes[random() as usize % probes.len()];
            if TRANSITION[probe].swap(true, SeqCst) {
                continue; // the other control task is changing it
            }
            transition(probe);
            ops += 1;
        }
        task::sleep(2 * task::TIME_SLICE_TICKS as u64);
    }
    ops
}

#[test_case]
#[allow(clippy::needless_range_loop)] // the index names a probe in several tables
fn four_tasks_and_the_timer_hit_probes_that_a_fifth_task_churns() {
    let started = task::ticks();
    let baseline = (heap_used(), kretprobe_arena_used(), slots::in_use_count(), site_count(), retired_pools());
    assert_eq!((baseline.3, baseline.4), (0, 0));
    // Every probe registers and unregisters cleanly before the storm.
    for probe in 0..PROBES {
        register(probe).unwrap_or_else(|e| panic!("register {}: {e:?}", NAMES[probe]));
        unregister(probe).unwrap_or_else(|e| panic!("unregister {}: {e:?}", NAMES[probe]));
    }
    assert_eq!(
        (heap_used(), kretprobe_arena_used(), slots::in_use_count(), site_count()),
        (baseline.0, baseline.1, baseline.2, 0)
    );

    task::set_tick_hook(Some(tick_hook));
    HOOK_ON.store(true, SeqCst);
    let mut ids = [0; WORKERS];
    for (who, id) in ids.iter_mut().enumerate() {
        *id = task::spawn_named("soak worker", worker, who).expect("spawn worker");
    }
    let controllers = [0, 1].map(|which| task::spawn_named("soak control", control, which).expect("spawn control"));
    for (who, id) in ids.into_iter().enumerate() {
        assert_eq!(task::join(id), CALLS_PER_WORKER, "worker {who}");
    }
    let ops: usize = controllers.into_iter().map(task::join).sum();
    HOOK_ON.store(false, SeqCst);
    task::set_tick_hook(None);

    // Everything still registered goes; its misses count.
    for probe in 0..PROBES {
        if STATE[probe].load(SeqCst) != UNREGISTERED {
            MISSED[probe].fetch_add(nmissed(probe), SeqCst);
            unregister(probe).unwrap_or_else(|e| panic!("final unregister {}: {e:?}", NAMES[probe]));
            STATE[probe].store(UNREGISTERED, SeqCst);
        }
    }
    let elapsed = task::ticks() - started;

    let load = |a: &AtomicUsize| a.load(SeqCst);
    println!();
    println!(
        "  soak: {} worker calls ({} each) + {} from the timer hook, {ops} control operations (register {}, unregister {}, enable {}, disable {}), {}",
        CALLS[..WORKERS].iter().map(load).sum::<usize>(),
        CALLS_PER_WORKER,
        load(&CALLS[WORKERS]),
        load(&OPS[0]),
        load(&OPS[1]),
        load(&OPS[2]),
        load(&OPS[3]),
        Seconds(elapsed)
    );
    for probe in 0..PROBES {
        println!(
            "    {:<24} expected {:>6}, handled {:>6}, missed {:>4}, orphaned {:>4}",
            NAMES[probe],
            load(&EXPECTED[probe]),
            load(&HANDLED[probe]),
            load(&MISSED[probe]),
            load(&ORPHANED[probe])
        );
    }
    println!(
        "    the timer hook's {} engine calls were all refused (InterruptsDisabled); {} failing batches rolled back",
        load(&HOOK_REFUSALS),
        load(&FAILED_BATCHES)
    );
    println!(
        "    kretprobe unregistered with a call in flight {} times; post-handler runs {}; {} engine calls began while another task's was preempted inside the engine",
        load(&IN_FLIGHT_UNREGISTERS),
        load(&POSTS),
        load(&OVERLAPS)
    );
    let garbage_slots = slots::in_use_count() - baseline.2;
    assert_eq!(load(&BAD), 0, "wrong arguments or return values (first: {:#x})", FIRST_BAD.load(SeqCst));
    for probe in 0..PROBES {
        assert_eq!(
            load(&HANDLED[probe]) + load(&MISSED[probe]) + load(&ORPHANED[probe]),
            load(&EXPECTED[probe]),
            "{}: handler runs + nmissed (+ orphaned) != calls while registered and enabled",
            NAMES[probe]
        );
        assert!(load(&HANDLED[probe]) > 0, "{}: never hit", NAMES[probe]);
    }
    assert_eq!(load(&POSTS), load(&HANDLED[KP_STEP]), "stepped kprobe: post runs differ from pre runs");
    assert_eq!(load(&SHARED_POSTS), load(&HANDLED[SH_KP]), "shared kprobe: post runs differ from pre runs");
    for probe in [KP_STEP, KP_BOOST, JP, SH_KP, SH_KRET, SH_JP] {
        assert_eq!(load(&MISSED[probe]), 0, "{}: misses without nesting", NAMES[probe]);
    }
    assert_eq!(load(&MISSED[KRET]), 0, "the kretprobe's 8 instances cover every concurrent call");
    assert!(load(&OPS[0]) >= 50 && load(&OPS[2]) >= 20 && load(&OPS[3]) >= 20, "too little churn");
    assert!(load(&CALLS[WORKERS]) >= 50, "the timer hook made too few calls");
    assert!(load(&HOOK_REFUSALS) >= 10, "the timer hook tried the engine too rarely");
    assert!(load(&FAILED_BATCHES) >= 10, "too few failing batches");
    assert!(HOOK_PROBE.flags().contains(KprobeFlags::GONE), "the hook's registration went through");

    // Back to the baseline: pools, arena, heap, sites; slots once the
    // garbage of boosted copies tasks were preempted in is collected (by
    // the next slot allocation, as Linux's collect_garbage_slots), and
    // pools retired with calls in flight once they are freed (by the next
    // kretprobe registration or unregistration: never on the trap path).
    let retired_left = retired_pools();
    sweep_retired_pools();
    println!("    {retired_left} retired kretprobe pools freed by the sweep");
    assert_eq!(retired_pools(), 0, "kretprobe pools still retired");
    assert_eq!(kretprobe_arena_used(), baseline.1, "kretprobe arena");
    assert_eq!(heap_used(), baseline.0, "heap");
    assert_eq!(site_count(), 0, "sites");
    register_kprobe(&KP_STEP_PROBE).expect("sweep");
    unregister_kprobe(&KP_STEP_PROBE).expect("sweep");
    assert_eq!(slots::in_use_count(), baseline.2, "slots after collection");
    println!(
        "    {garbage_slots} garbage slots collected at the end; heap, arena, slots, sites and pools back to baseline"
    );
}

// ===================================== a task preempted inside a boosted copy

/// Bytes each `soak_fill` call writes: long enough that the timer usually
/// preempts the filler inside the `rep stosb` (in the boosted copy, when
/// probed), short enough for thousands of calls.
const FILL_LEN: usize = 128 * 1024;
const FILL_CALLS: usize = 25_000;

struct FillBuffer(core::cell::UnsafeCell<[u8; FILL_LEN]>);
// SAFETY: only the filler task writes or reads the buffer.
unsafe impl Sync for FillBuffer {}
static FILL_BUFFER: FillBuffer = FillBuffer(core::cell::UnsafeCell::new([0; FILL_LEN]));

/// Fills `len` bytes at `buffer` with `value`: one `rep stosb`, whose
/// boosted copy runs with interrupts on for a long time.
#[inline(never)]
#[unsafe(no_mangle)]
extern "C" fn soak_fill(buffer: *mut u8, len: usize, value: u8) {
    // SAFETY: the caller owns `len` writable bytes at `buffer`; DF is clear
    // at a function boundary (the ABI), so the fill goes upwards.
    unsafe {
        core::arch::asm!("rep stosb", inout("ecx") len => _, inout("edi") buffer => _, in("al") value, options(nostack));
    }
}

/// The `rep stosb` in `soak_fill` (found by decoding the function).
fn rep_stosb_address() -> usize {
    let function = probe_kernel::symbols::lookup_name("soak_fill").expect("soak_fill in the symbol table");
    let bytes = probe_kernel::testing::function_bytes(&function);
    let boundaries = probe_kernel::testing::instruction_boundaries(&function, &bytes).expect("soak_fill decodes");
    let (address, _) = boundaries
        .into_iter()
        .find(|&(address, length)| length == 2 && bytes[address - function.address..][..2] == [0xf3, 0xaa])
        .expect("a rep stosb in soak_fill");
    address
}

static FILL_STATE: AtomicU8 = AtomicU8::new(UNREGISTERED);
static FILL_TRANSITION: AtomicBool = AtomicBool::new(false);
static FILL_ENTERING: AtomicUsize = AtomicUsize::new(0);
static FILL_RELEASED: AtomicBool = AtomicBool::new(false);
static FILL_EXPECTED: AtomicUsize = AtomicUsize::new(0);
static FILL_HANDLED: AtomicUsize = AtomicUsize::new(0);
static FILL_BAD: AtomicUsize = AtomicUsize::new(0);
static FILL_DONE: AtomicBool = AtomicBool::new(false);
/// Unregistrations after which the probe's slot was still in use (the
/// filler was preempted inside the boosted copy): garbage slots.
static FILL_GARBAGE: AtomicUsize = AtomicUsize::new(0);

fn fill_pre(_probe: &Kprobe, _regs: &mut PtRegs) -> PreAction {
    FILL_HANDLED.fetch_add(1, SeqCst);
    // The hit is counted: the probe may change while the copy still runs.
    FILL_RELEASED.store(true, SeqCst);
    FILL_ENTERING.fetch_sub(1, SeqCst);
    PreAction::Continue
}

fn filler(_: usize) -> usize {
    let buffer = FILL_BUFFER.0.get() as *mut u8;
    let mut calls = 0;
    while calls < FILL_CALLS {
        if FILL_TRANSITION.load(SeqCst) {
            task::yield_now();
            continue;
        }
        FILL_ENTERING.fetch_add(1, SeqCst);
        if FILL_TRANSITION.load(SeqCst) {
            FILL_ENTERING.fetch_sub(1, SeqCst);
            continue;
        }
        let enabled = FILL_STATE.load(SeqCst) == ENABLED;
        let value = (calls % 251) as u8 + 1;
        soak_fill(buffer, FILL_LEN, value);
        if !FILL_RELEASED.swap(false, SeqCst) {
            FILL_ENTERING.fetch_sub(1, SeqCst);
        }
        // SAFETY: only this task touches the buffer; the fill has returned.
        let filled = unsafe { &*FILL_BUFFER.0.get() };
        if filled.iter().step_by(61).chain([&filled[FILL_LEN - 1]]).any(|&b| b != value) {
            FILL_BAD.fetch_add(1, SeqCst);
        }
        if enabled {
            FILL_EXPECTED.fetch_add(1, SeqCst);
        }
        calls += 1;
    }
    FILL_DONE.store(true, SeqCst);
    calls
}

/// Slot churners: probes on every instruction of `soak_kp_step` (never
/// called here), registered and unregistered so slots are allocated (and
/// garbage collection tried) while the filler may sit in a freed slot.
fn churn_slots(probes: &[&'static Kprobe]) {
    register_kprobes(probes).expect("slot churners");
    unregister_kprobes(probes);
}

fn ignore(_probe: &Kprobe, _regs: &mut PtRegs) -> PreAction {
    PreAction::Continue
}

/// The rep stosb probe and the slot churners (leaked by the test).
static FILL_PROBES: spin::Once<(&'static Kprobe, &'static [&'static Kprobe])> = spin::Once::new();

fn fill_control(_: usize) -> usize {
    let (probe, churners) = *FILL_PROBES.get().expect("probes made by the test");
    let mut ops = 0;
    while !FILL_DONE.load(SeqCst) {
        FILL_TRANSITION.store(true, SeqCst);
        while FILL_ENTERING.load(SeqCst) != 0 {
            task::yield_now();
        }
        let new = match (FILL_STATE.load(SeqCst), random() % 3) {
            (UNREGISTERED, _) => {
                register_kprobe(probe).expect("register the rep stosb probe");
                assert!(probe.flags().contains(KprobeFlags::BOOSTED), "the rep stosb probe is boosted");
                ENABLED
            }
            (_, 0) => {
                let before = slots::in_use_count();
                unregister_kprobe(probe).expect("unregister the rep stosb probe");
                if slots::in_use_count() == before {
                    FILL_GARBAGE.fetch_add(1, SeqCst);
                }
                UNREGISTERED
            }
            (ENABLED, _) => {
                disable_kprobe(probe).expect("disable");
                DISABLED
            }
            _ => {
                enable_kprobe(probe).expect("enable");
                ENABLED
            }
        };
        FILL_STATE.store(new, SeqCst);
        FILL_TRANSITION.store(false, SeqCst);
        churn_slots(churners);
        ops += 1;
        task::sleep(1 + random() as u64 % 3);
    }
    ops
}

#[test_case]
fn a_task_preempted_in_a_boosted_copy_keeps_its_slot_while_slots_churn() {
    let started = task::ticks();
    let rep = rep_stosb_address();
    let probe: &'static Kprobe = Box::leak(Box::new(Kprobe::new().address(rep as *const ()).pre_handler(fill_pre)));
    let target = probe_kernel::symbols::lookup_name("soak_kp_step").expect("soak_kp_step");
    let bytes = probe_kernel::testing::function_bytes(&target);
    let churners: Vec<&'static Kprobe> = probe_kernel::testing::instruction_boundaries(&target, &bytes)
        .expect("decodes")
        .into_iter()
        .filter(|&(address, _)| can_probe(address as *const ()).is_ok())
        .map(|(address, _)| &*Box::leak(Box::new(Kprobe::new().address(address as *const ()).pre_handler(ignore))))
        .collect();
    let churner_count = churners.len();
    FILL_PROBES.call_once(|| (probe, churners.leak()));
    let baseline = (heap_used(), slots::in_use_count(), site_count());
    assert_eq!(baseline.2, 0);

    let filler_id = task::spawn_named("filler", filler, 0).expect("spawn filler");
    let control_id = task::spawn_named("fill control", fill_control, 0).expect("spawn control");
    assert_eq!(task::join(filler_id), FILL_CALLS);
    let ops = task::join(control_id);
    if FILL_STATE.load(SeqCst) != UNREGISTERED {
        unregister_kprobe(probe).expect("final unregister");
    }
    let garbage_left = slots::in_use_count() - baseline.1;
    churn_slots(FILL_PROBES.get().expect("made above").1);
    let load = |a: &AtomicUsize| a.load(SeqCst);
    println!();
    println!(
        "  rep stosb: {FILL_CALLS} fills of {} KiB, {ops} changes of its boosted probe (+{churner_count} slot churners each), {} hits of {} calls while enabled; unregistered {} times while the filler sat in the copy; {}",
        FILL_LEN / 1024,
        load(&FILL_HANDLED),
        load(&FILL_EXPECTED),
        load(&FILL_GARBAGE),
        Seconds(task::ticks() - started)
    );
    assert_eq!(load(&FILL_BAD), 0, "a fill went wrong (its copy's slot was reused?)");
    assert_eq!(load(&FILL_HANDLED), load(&FILL_EXPECTED), "rep stosb probe: hits != calls while enabled");
    assert!(ops >= 50, "too few changes: {ops}");
    assert!(garbage_left <= 1, "{garbage_left} slots left in use after the filler ended");
    assert_eq!((heap_used(), slots::in_use_count(), site_count()), baseline, "heap, slots, sites back");
}

// ================================ recursion across unregistration and re-registration

/// Levels below a top-level call of `soak_recurse`.
const REC_DEPTH: u32 = 6;
const REC_TOP_CALLS: usize = 150_000;

static REC_STATE: AtomicU8 = AtomicU8::new(UNREGISTERED);
static REC_TRANSITION: AtomicBool = AtomicBool::new(false);
static REC_ENTERING: AtomicUsize = AtomicUsize::new(0);
static REC_GENERATION: AtomicUsize = AtomicUsize::new(0);
static REC_EXPECTED: AtomicUsize = AtomicUsize::new(0);
static REC_ORPHANED: AtomicUsize = AtomicUsize::new(0);
static REC_HANDLED: AtomicUsize = AtomicUsize::new(0);
static REC_MISSED: AtomicUsize = AtomicUsize::new(0);
static REC_BAD: AtomicUsize = AtomicUsize::new(0);
static REC_DONE: AtomicUsize = AtomicUsize::new(0);
/// The generation as a worker's innermost returning call saw it, with
/// interrupts off up to its caller's check.
static REC_RETURN_GENERATION: [AtomicUsize; WORKERS] = [const { AtomicUsize::new(0) }; WORKERS];

/// What `soak_recurse(_, depth, a)` returns.
fn rec_expected(depth: u32, a: u32) -> u32 {
    let inner = if depth > 0 { rec_expected(depth - 1, a.wrapping_mul(3)) } else { a };
    inner ^ (depth << 24) ^ 0x1357
}

/// One call of `soak_recurse` inside the handshake; waits (yielding) while
/// the probe is in transition, so recursion never loses a level.
fn rec_call(who: u32, depth: u32, a: u32) -> u32 {
    loop {
        if !REC_TRANSITION.load(SeqCst) {
            REC_ENTERING.fetch_add(1, SeqCst);
            if !REC_TRANSITION.load(SeqCst) {
                break;
            }
            REC_ENTERING.fetch_sub(1, SeqCst);
        }
        task::yield_now();
    }
    let enabled = REC_STATE.load(SeqCst) == ENABLED;
    let generation = REC_GENERATION.load(SeqCst);
    if a % 7 == 0 {
        // Widen the window: the control task must wait for this entry.
        task::yield_now();
    }
    let value = black_box(soak_recurse as extern "C" fn(u32, u32, u32) -> u32)(who, depth, a);
    let at_return = REC_RETURN_GENERATION[who as usize].load(SeqCst);
    cpu::enable_interrupts();
    if value != rec_expected(depth, a) {
        REC_BAD.fetch_add(1, SeqCst);
    }
    if enabled {
        REC_EXPECTED.fetch_add(1, SeqCst);
        if at_return != generation {
            REC_ORPHANED.fetch_add(1, SeqCst);
        }
    }
    value
}

/// Recursive: every level is a probed call; the deepest level sometimes
/// yields, so whole stacks of calls are in flight while the kretprobe is
/// unregistered and registered again (old and new instances then share
/// one task's list). Returns with interrupts off (see `rec_call`).
#[inline(never)]
#[unsafe(no_mangle)]
extern "C" fn soak_recurse(who: u32, depth: u32, a: u32) -> u32 {
    REC_ENTERING.fetch_sub(1, SeqCst);
    let inner = if depth > 0 {
        rec_call(who, depth - 1, a.wrapping_mul(3))
    } else {
        if a % 4 == 0 {
            task::yield_now();
        }
        a
    };
    let value = inner ^ (depth << 24) ^ 0x1357;
    cpu::disable_interrupts();
    REC_RETURN_GENERATION[who as usize].store(REC_GENERATION.load(SeqCst), SeqCst);
    value
}

fn rec_entry(ri: &mut KretprobeInstance, regs: &mut PtRegs) -> EntryAction {
    let (_who, depth, a) = stack_arguments(regs);
    ri.store([depth, a]);
    EntryAction::Report
}

fn rec_return(ri: &mut KretprobeInstance, regs: &mut PtRegs) {
    let [depth, a]: [u32; 2] = ri.load();
    if depth > REC_DEPTH || regs_return_value(regs) != rec_expected(depth, a) || ri.task() != task::current_id() {
        REC_BAD.fetch_add(1, SeqCst);
    }
    REC_HANDLED.fetch_add(1, SeqCst);
}

/// Enough instances for every level of every worker: no call misses.
static RP_REC: Kretprobe = Kretprobe::new()
    .symbol("soak_recurse")
    .entry_handler(rec_entry)
    .handler(rec_return)
    .data_size(8)
    .maxactive((WORKERS as i32) * (REC_DEPTH as i32 + 1));

fn rec_worker(who: usize) -> usize {
    for i in 0..REC_TOP_CALLS {
        rec_call(who as u32, REC_DEPTH, (who << 20 | i) as u32);
    }
    REC_DONE.fetch_add(1, SeqCst);
    REC_TOP_CALLS
}

fn rec_control(_: usize) -> usize {
    let mut ops = 0;
    while REC_DONE.load(SeqCst) < WORKERS {
        REC_TRANSITION.store(true, SeqCst);
        while REC_ENTERING.load(SeqCst) != 0 {
            task::yield_now();
        }
        let new = match (REC_STATE.load(SeqCst), random() % 3) {
            (UNREGISTERED, _) => {
                register_kretprobe(&RP_REC).expect("register");
                ENABLED
            }
            (_, 0) => {
                REC_MISSED.fetch_add(RP_REC.nmissed(), SeqCst);
                unregister_kretprobe(&RP_REC).expect("unregister");
                REC_GENERATION.fetch_add(1, SeqCst);
                UNREGISTERED
            }
            (ENABLED, _) => {
                disable_kretprobe(&RP_REC).expect("disable");
                DISABLED
            }
            _ => {
                enable_kretprobe(&RP_REC).expect("enable");
                ENABLED
            }
        };
        REC_STATE.store(new, SeqCst);
        REC_TRANSITION.store(false, SeqCst);
        ops += 1;
        task::yield_now();
    }
    ops
}

#[test_case]
fn recursive_calls_in_flight_across_unregistration_and_reregistration() {
    let started = task::ticks();
    let baseline = (heap_used(), kretprobe_arena_used(), slots::in_use_count(), site_count(), retired_pools());
    assert_eq!((baseline.3, baseline.4), (0, 0));
    let workers = [0, 1, 2, 3].map(|who| task::spawn_named("recursing", rec_worker, who).expect("spawn"));
    let control = task::spawn_named("rec control", rec_control, 0).expect("spawn control");
    for id in workers {
        assert_eq!(task::join(id), REC_TOP_CALLS);
    }
    let ops = task::join(control);
    if REC_STATE.load(SeqCst) != UNREGISTERED {
        REC_MISSED.fetch_add(RP_REC.nmissed(), SeqCst);
        unregister_kretprobe(&RP_REC).expect("final unregister");
    }
    // A pool retired while calls were in flight is freed by the next
    // kretprobe registration or unregistration.
    let retired_left = retired_pools();
    sweep_retired_pools();
    let load = |a: &AtomicUsize| a.load(SeqCst);
    println!();
    println!(
        "  recursion: {} calls ({WORKERS} tasks x {REC_TOP_CALLS} x {} levels), {ops} changes; expected {}, reported {}, missed {}, orphaned {}; {retired_left} retired pools swept; {}",
        WORKERS * REC_TOP_CALLS * (REC_DEPTH as usize + 1),
        REC_DEPTH + 1,
        load(&REC_EXPECTED),
        load(&REC_HANDLED),
        load(&REC_MISSED),
        load(&REC_ORPHANED),
        Seconds(task::ticks() - started)
    );
    assert_eq!(load(&REC_BAD), 0, "a wrong return value, report or task");
    assert_eq!(
        load(&REC_HANDLED) + load(&REC_MISSED) + load(&REC_ORPHANED),
        load(&REC_EXPECTED),
        "reports + nmissed + orphaned != calls entered while registered and enabled"
    );
    assert_eq!(load(&REC_MISSED), 0, "maxactive covers every level of every task");
    assert!(load(&REC_ORPHANED) > 0 && ops >= 100, "too little churn while calls were in flight");
    assert_eq!(retired_pools(), 0, "kretprobe pools still retired");
    assert_eq!(
        (heap_used(), kretprobe_arena_used(), slots::in_use_count(), site_count()),
        (baseline.0, baseline.1, baseline.2, 0)
    );
}
