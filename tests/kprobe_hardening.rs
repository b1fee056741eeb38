//! Regression tests for what adversarial use broke in the engine (issue 7).
//!
//! Why: each of these once went wrong: faults in single-stepped and boosted
//! copies, concurrent registration, registration from interrupt context, the
//! entry probes of kretprobes and jprobes passed to the plain-kprobe
//! functions, and the site index after churn. Each asserts the exact values
//! the semantics demand.
#![no_std]
#![no_main]
#![feature(custom_test_frameworks)]
#![test_runner(probe_kernel::testing::run_tests)]
#![reexport_test_harness_main = "test_main"]

use core::arch::naked_asm;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering::SeqCst};
use probe_kernel::arch::cpu::{self, EFLAGS_IF, EFLAGS_TF};
use probe_kernel::arch::x86::trap::{HookKind, set_hook};
use probe_kernel::arch::{TrapFrame, TrapOutcome};
use probe_kernel::kprobes::*;
use probe_kernel::task;
use probe_kernel::testing::{address_of, armed_opcode, text_byte};

probe_kernel::test_kernel_main!();

// ---------------------------------------------------------------- targets

/// Reads `[address]`: the load is the probed instruction, and a fault
/// handler resumes at `hd_read_resume` (with EAX as it chose).
#[unsafe(naked)]
#[unsafe(no_mangle)]
extern "C" fn hd_read(address: u32) -> u32 {
    naked_asm!(
        "mov ecx, [esp + 4]",
        ".global hd_read_load",
        "hd_read_load:",
        "mov eax, [ecx]",
        ".global hd_read_resume",
        "hd_read_resume:",
        "ret",
    );
}

/// `return a + 5` (a kretprobe and jprobe target).
#[inline(never)]
#[unsafe(no_mangle)]
extern "C" fn hd_add5(a: u32) -> u32 {
    core::hint::black_box(a) + 5
}

/// `return a * 7` (a kprobe target for the concurrency tests).
#[inline(never)]
#[unsafe(no_mangle)]
extern "C" fn hd_times7(a: u32) -> u32 {
    core::hint::black_box(a).wrapping_mul(7)
}

/// A busy loop a task can be interrupted in: `count` iterations.
#[unsafe(naked)]
#[unsafe(no_mangle)]
extern "C" fn hd_spin(count: u32) {
    naked_asm!("mov ecx, [esp + 4]", "2:", "pause", "dec ecx", "jnz 2b", ".global hd_spin_end", "hd_spin_end:", "ret",);
}

/// 200 one-byte instructions: distinct probe addresses for churn.
#[unsafe(naked)]
#[unsafe(no_mangle)]
extern "C" fn hd_nop_sled() {
    naked_asm!(".rept 200", "nop", ".endr", "ret");
}

fn load_address() -> usize {
    unsafe extern "C" {
        static hd_read_load: u8;
    }
    &raw const hd_read_load as usize
}

fn resume_address() -> u32 {
    unsafe extern "C" {
        static hd_read_resume: u8;
    }
    &raw const hd_read_resume as u32
}

// ---------------------------------------- faults in the copies (bugs 2, 7)

static FAULTS: AtomicU32 = AtomicU32::new(0);
static FAULT_EIP: AtomicUsize = AtomicUsize::new(0);
static FAULT_FLAGS: AtomicU32 = AtomicU32::new(0);
static FAULT_TRAP: AtomicU32 = AtomicU32::new(0);
static POSTS: AtomicU32 = AtomicU32::new(0);
static STRAY_DEBUG_TRAPS: AtomicU32 = AtomicU32::new(0);

fn note_pre(_p: &Kprobe, _r: &mut PtRegs) -> PreAction {
    PreAction::Continue
}

fn note_post(_p: &Kprobe, _r: &mut PtRegs) {
    POSTS.fetch_add(1, SeqCst);
}

fn skip_faulting_load(_p: &Kprobe, regs: &mut PtRegs, trap: u8) -> FaultAction {
    FAULTS.fetch_add(1, SeqCst);
    FAULT_EIP.store(regs.eip as usize, SeqCst);
    FAULT_FLAGS.store(regs.eflags, SeqCst);
    FAULT_TRAP.store(trap as u32, SeqCst);
    regs.eax = 0xdead;
    regs.eip = resume_address();
    FaultAction::Handled
}

fn count_stray_debug_trap(frame: &mut TrapFrame) -> TrapOutcome {
    STRAY_DEBUG_TRAPS.fetch_add(1, SeqCst);
    frame.eflags &= !EFLAGS_TF;
    TrapOutcome::Handled
}

static STEPPED_LOAD: Kprobe =
    Kprobe::new().symbol("hd_read", 4).pre_handler(note_pre).post_handler(note_post).fault_handler(skip_faulting_load);
static BOOSTED_LOAD: Kprobe =
    Kprobe::new().symbol("hd_read", 4).pre_handler(note_pre).fault_handler(skip_faulting_load);

/// Calls `hd_read(0x123)` (page 0 is absent) with interrupts on, under
/// `probe`, and checks what its fault handler saw and what followed.
fn fault_in_copy_is_seen_at_the_probe_address(probe: &'static Kprobe, boosted: bool) {
    for counter in [&FAULTS, &POSTS, &STRAY_DEBUG_TRAPS, &FAULT_TRAP] {
        counter.store(0, SeqCst);
    }
    set_hook(HookKind::Debug, Some(count_stray_debug_trap));
    register_kprobe(probe).unwrap();
    assert_eq!(probe.addr(), Some(load_address()));
    assert_eq!(probe.flags().contains(KprobeFlags::BOOSTED), boosted);
    assert!(cpu::interrupts_enabled());
    assert_eq!(hd_read(0x123), 0xdead);
    let interrupts_after = cpu::interrupts_enabled();
    unregister_kprobe(probe).unwrap();
    set_hook(HookKind::Debug, None);
    assert_eq!(FAULTS.load(SeqCst), 1);
    assert_eq!(FAULT_TRAP.load(SeqCst), 14);
    assert_eq!(FAULT_EIP.load(SeqCst), load_address(), "the handler sees the original instruction fault");
    assert_eq!(FAULT_FLAGS.load(SeqCst) & (EFLAGS_TF | EFLAGS_IF), EFLAGS_IF, "the probed code's TF and IF");
    assert!(interrupts_after, "interrupts are back on after the handled fault");
    assert_eq!(STRAY_DEBUG_TRAPS.load(SeqCst), 0, "no single-step trap follows the handled fault");
    assert_eq!(POSTS.load(SeqCst), 0, "the instruction did not complete: no post handler");
    // The probe works normally afterwards.
    static WORD: u32 = 0x5eed;
    register_kprobe(probe).unwrap();
    assert_eq!(hd_read(&WORD as *const u32 as u32), 0x5eed);
    unregister_kprobe(probe).unwrap();
    assert_eq!(POSTS.load(SeqCst), if boosted { 0 } else { 1 });
}

#[test_case]
fn a_handled_fault_in_a_single_stepped_copy_looks_like_the_original_faulting() {
    fault_in_copy_is_seen_at_the_probe_address(&STEPPED_LOAD, false);
}

#[test_case]
fn a_fault_in_a_boosted_copy_reaches_the_fault_handler_too() {
    fault_in_copy_is_seen_at_the_probe_address(&BOOSTED_LOAD, true);
}

/// On `hd_read`'s entry, jump-optimized: the faulting load is the second
/// instruction the jump displaces, so it runs in the detour's copy.
static OPTIMIZED_ENTRY: Kprobe = Kprobe::new().symbol("hd_read", 0).pre_handler(note_pre);

/// An exception hook that skips `hd_read`'s faulting load, as
/// `skip_faulting_load` does for a probe's fault handler.
fn skip_faulting_load_in_hook(frame: &mut TrapFrame) -> TrapOutcome {
    if frame.vector != 14 {
        return TrapOutcome::NotMine;
    }
    FAULTS.fetch_add(1, SeqCst);
    FAULT_EIP.store(frame.eip as usize, SeqCst);
    frame.eax = 0xdead;
    frame.eip = resume_address();
    TrapOutcome::Handled
}

#[test_case]
fn a_fault_in_an_optimized_copy_is_presented_at_the_displaced_instruction() {
    FAULTS.store(0, SeqCst);
    set_optimization(true).unwrap();
    register_kprobe(&OPTIMIZED_ENTRY).unwrap();
    assert!(OPTIMIZED_ENTRY.flags().contains(KprobeFlags::OPTIMIZED));
    set_hook(HookKind::Exception, Some(skip_faulting_load_in_hook));
    let value = hd_read(0x123);
    set_hook(HookKind::Exception, None);
    unregister_kprobe(&OPTIMIZED_ENTRY).unwrap();
    assert_eq!((value, FAULTS.load(SeqCst)), (0xdead, 1));
    assert_eq!(FAULT_EIP.load(SeqCst), load_address(), "the fault is seen at the original load, not in the detour");
}

// -------------------------------------------- concurrent registration (bug 4)

static REPORTS: AtomicU32 = AtomicU32::new(0);

fn count_return(_ri: &mut KretprobeInstance, regs: &mut PtRegs) {
    assert_eq!(regs_return_value(regs) % 5, 0);
    REPORTS.fetch_add(1, SeqCst);
}

static RACED: Kretprobe = Kretprobe::new().symbol("hd_add5").handler(count_return).maxactive(4);
static CHURN_PROBE: Kprobe = Kprobe::new().symbol("hd_times7", 0).pre_handler(note_pre);

static GO: AtomicBool = AtomicBool::new(false);
static STOP: AtomicBool = AtomicBool::new(false);

/// Registers RACED once when GO is set: 1 for Ok, 2 for AlreadyRegistered.
fn racer(_: usize) -> usize {
    while !GO.load(SeqCst) {
        core::hint::spin_loop();
    }
    match register_kretprobe(&RACED) {
        Ok(()) => 1,
        Err(KprobeError::AlreadyRegistered) => 2,
        Err(other) => panic!("unexpected refusal {other:?}"),
    }
}

/// Keeps the registry busy (and its lock contended) until STOP.
fn churner(_: usize) -> usize {
    let mut cycles = 0;
    while !STOP.load(SeqCst) {
        register_kprobe(&CHURN_PROBE).unwrap();
        unregister_kprobe(&CHURN_PROBE).unwrap();
        cycles += 1;
    }
    cycles
}

#[test_case]
fn two_tasks_registering_one_kretprobe_register_it_exactly_once() {
    let arena = kretprobe_arena_used();
    STOP.store(false, SeqCst);
    let churn = task::spawn(churner, 0).unwrap();
    for round in 0..40 {
        GO.store(false, SeqCst);
        let racers = [task::spawn(racer, 0).unwrap(), task::spawn(racer, 0).unwrap()];
        task::sleep(round % 3);
        GO.store(true, SeqCst);
        let mut outcomes = racers.map(task::join);
        outcomes.sort();
        assert_eq!(outcomes, [1, 2], "round {round}: exactly one registration succeeds");
        REPORTS.store(0, SeqCst);
        for i in 0..3 {
            assert_eq!(hd_add5(i * 5), i * 5 + 5);
        }
        assert_eq!(REPORTS.load(SeqCst), 3, "round {round}: every return is reported");
        assert_eq!(RACED.nmissed(), 0, "round {round}");
        unregister_kretprobe(&RACED).unwrap();
        assert_eq!(kretprobe::retired_pools(), 0);
    }
    STOP.store(true, SeqCst);
    assert!(task::join(churn) > 0);
    // Freed pools go back to the arena at the next registration.
    register_kretprobe(&RACED).unwrap();
    unregister_kretprobe(&RACED).unwrap();
    assert_eq!(kretprobe_arena_used(), arena, "no pool leaked");
    assert_eq!(site_count(), 0);
}

static TOGGLER_RESULTS: AtomicU32 = AtomicU32::new(0);

fn toggler(_: usize) -> usize {
    for _ in 0..200 {
        let _ = disable_kprobe(&CHURN_PROBE);
        let _ = enable_kprobe(&CHURN_PROBE);
    }
    TOGGLER_RESULTS.fetch_add(1, SeqCst) as usize
}

#[test_case]
fn enabling_and_disabling_from_several_tasks_keeps_flags_and_breakpoint_consistent() {
    register_kprobe(&CHURN_PROBE).unwrap();
    let ids = [task::spawn(toggler, 0).unwrap(), task::spawn(toggler, 0).unwrap(), task::spawn(toggler, 0).unwrap()];
    assert_eq!(ids.map(task::join).len(), 3);
    // Every toggler ended with an enable: the probe is armed and enabled.
    assert!(CHURN_PROBE.is_enabled());
    let mut first = [0u8];
    original_bytes(hd_times7 as *const () as usize, &mut first);
    let armed = text_byte(hd_times7 as *const () as usize);
    assert_eq!(armed, armed_opcode(&CHURN_PROBE));
    assert_ne!(first[0], armed);
    unregister_kprobe(&CHURN_PROBE).unwrap();
    assert_eq!(text_byte(hd_times7 as *const () as usize), first[0]);
}

// ------------------------------------- interrupt context (bug 5)

static FROM_TICK: [AtomicUsize; 6] = [const { AtomicUsize::new(0) }; 6];
static TICK_DONE: AtomicBool = AtomicBool::new(false);
static TICK_PROBE: Kprobe = Kprobe::new().symbol("hd_times7", 0).pre_handler(note_pre);
static TICK_RETPROBE: Kretprobe = Kretprobe::new().symbol("hd_add5").handler(count_return);

fn code(result: Result<(), KprobeError>) -> usize {
    match result {
        Ok(()) => 1,
        Err(KprobeError::InterruptsDisabled) => 2,
        Err(_) => 3,
    }
}

fn register_from_tick() {
    if TICK_DONE.load(SeqCst) {
        return;
    }
    FROM_TICK[0].store(code(register_kprobe(&TICK_PROBE)), SeqCst);
    FROM_TICK[1].store(code(register_kretprobe(&TICK_RETPROBE)), SeqCst);
    FROM_TICK[2].store(code(unregister_kprobe(&CHURN_PROBE)), SeqCst);
    FROM_TICK[3].store(code(disable_kprobe(&CHURN_PROBE)), SeqCst);
    FROM_TICK[4].store(code(enable_kprobe(&CHURN_PROBE)), SeqCst);
    FROM_TICK[5].store(code(register_kprobes(&[&TICK_PROBE])), SeqCst);
    TICK_DONE.store(true, SeqCst);
}

#[test_case]
fn registration_from_interrupt_context_is_refused_with_a_typed_error() {
    register_kprobe(&CHURN_PROBE).unwrap();
    let (sites, slots, arena) = (site_count(), probe_kernel::memory::slots::in_use_count(), kretprobe_arena_used());
    TICK_DONE.store(false, SeqCst);
    task::set_tick_hook(Some(register_from_tick));
    while !TICK_DONE.load(SeqCst) {
        task::sleep(1);
    }
    task::set_tick_hook(None);
    let results: [usize; 6] = core::array::from_fn(|i| FROM_TICK[i].load(SeqCst));
    assert_eq!(results, [2; 6], "every call from the timer interrupt is refused as InterruptsDisabled");
    assert_eq!(
        (site_count(), probe_kernel::memory::slots::in_use_count(), kretprobe_arena_used()),
        (sites, slots, arena)
    );
    assert!(CHURN_PROBE.is_enabled());
    assert_eq!(TICK_PROBE.flags(), KprobeFlags::GONE);
    unregister_kprobe(&CHURN_PROBE).unwrap();
}

#[test_case]
fn registration_with_interrupts_off_is_refused_with_a_typed_error() {
    let sites = site_count();
    let result = cpu::without_interrupts(|| register_kprobe(&TICK_PROBE));
    assert_eq!(result, Err(KprobeError::InterruptsDisabled));
    let result = cpu::without_interrupts(|| register_kretprobe(&TICK_RETPROBE));
    assert_eq!(result, Err(KprobeError::InterruptsDisabled));
    assert_eq!(site_count(), sites);
}

static SPIN_SEEN: AtomicUsize = AtomicUsize::new(0);
static SPIN_NOT_SEEN: AtomicUsize = AtomicUsize::new(0);

/// From the timer interrupt: is the interrupted (current) task inside `hd_spin`?
fn check_interrupted_task() {
    let range = address_of("hd_spin")..address_of("hd_spin_end");
    let current_inside = task::state(task::current_id()).is_some() && {
        // Only ticks that interrupted hd_spin itself count.
        let mut inside = false;
        task::for_each_task(|info| {
            if info.id == task::current_id() {
                inside = info.preempted_eip.is_some_and(|eip| range.contains(&eip));
            }
        });
        inside
    };
    if current_inside {
        if task::preempted_in(range) {
            SPIN_SEEN.fetch_add(1, SeqCst);
        } else {
            SPIN_NOT_SEEN.fetch_add(1, SeqCst);
        }
    }
}

#[test_case]
fn slot_reuse_sees_the_interrupted_current_task() {
    SPIN_SEEN.store(0, SeqCst);
    SPIN_NOT_SEEN.store(0, SeqCst);
    task::set_tick_hook(Some(check_interrupted_task));
    while SPIN_SEEN.load(SeqCst) + SPIN_NOT_SEEN.load(SeqCst) < 5 {
        hd_spin(200_000);
    }
    task::set_tick_hook(None);
    assert_eq!(SPIN_NOT_SEEN.load(SeqCst), 0, "the current task's interrupted EIP counts");
    assert!(SPIN_SEEN.load(SeqCst) >= 5);
}

// ------------------------------- entry probes of other kinds (bug 6)

extern "C" fn jp_handler(a: u32) -> u32 {
    assert_eq!(a % 5, 0);
    jprobe_return()
}

static OWNED_RETPROBE: Kretprobe = Kretprobe::new().symbol("hd_add5").handler(count_return).maxactive(2);
static OWNED_JPROBE: Jprobe = Jprobe::new(jp_handler as *const ()).symbol("hd_add5");

#[test_case]
fn entry_probes_of_kretprobes_and_jprobes_are_refused_by_the_kprobe_functions() {
    let (sites, arena) = (site_count(), kretprobe_arena_used());
    assert_eq!(register_kprobe(&OWNED_RETPROBE.kp), Err(KprobeError::NotAPlainKprobe));
    assert_eq!(register_kprobe(&OWNED_JPROBE.kp), Err(KprobeError::NotAPlainKprobe));
    assert_eq!(register_kprobes(&[&CHURN_PROBE, &OWNED_JPROBE.kp]), Err(KprobeError::NotAPlainKprobe));
    assert_eq!(CHURN_PROBE.flags(), KprobeFlags::GONE, "the batch rolled back");
    assert_eq!(site_count(), sites);

    register_kretprobe(&OWNED_RETPROBE).unwrap();
    register_jprobe(&OWNED_JPROBE).unwrap();
    assert_eq!(unregister_kprobe(&OWNED_RETPROBE.kp), Err(KprobeError::NotAPlainKprobe));
    assert_eq!(unregister_kprobe(&OWNED_JPROBE.kp), Err(KprobeError::NotAPlainKprobe));
    REPORTS.store(0, SeqCst);
    assert_eq!(hd_add5(10), 15);
    assert_eq!(REPORTS.load(SeqCst), 1, "the kretprobe still works");
    unregister_jprobe(&OWNED_JPROBE).unwrap();
    unregister_kretprobe(&OWNED_RETPROBE).unwrap();
    // Enabling goes through for every kind (Linux's enable_kretprobe is
    // enable_kprobe on its entry probe), and only while registered.
    assert_eq!(enable_kprobe(&OWNED_RETPROBE.kp), Err(KprobeError::NotRegistered));
    register_kretprobe(&OWNED_RETPROBE).unwrap();
    unregister_kretprobe(&OWNED_RETPROBE).unwrap();
    assert_eq!((site_count(), kretprobe_arena_used()), (sites, arena), "nothing leaked");
}

// ------------------------------------------- the site index (bug 11)

static SLED_HITS: AtomicUsize = AtomicUsize::new(0);

fn count_sled_hit(_p: &Kprobe, _r: &mut PtRegs) -> PreAction {
    SLED_HITS.fetch_add(1, SeqCst);
    PreAction::Continue
}

/// One probe per instruction of `hd_nop_sled`.
static SLED: [Kprobe; 200] = sled_probes();

const fn sled_probes() -> [Kprobe; 200] {
    let mut probes = [const { Kprobe::new() }; 200];
    let mut i = 0;
    while i < 200 {
        probes[i] = Kprobe::new().symbol("hd_nop_sled", i).pre_handler(count_sled_hit);
        i += 1;
    }
    probes
}

#[test_case]
fn the_site_index_is_as_empty_after_churn_as_when_new() {
    assert_eq!(site_index_occupancy(), 0);
    let mut live = [false; 200];
    let mut seed = 0x1234_5678u32;
    for _ in 0..3000 {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        let which = seed as usize % 200;
        // Keep at most ~24 live so the index sees long runs come and go.
        if live[which] {
            unregister_kprobe(&SLED[which]).unwrap();
            live[which] = false;
        } else if live.iter().filter(|l| **l).count() < 24 {
            register_kprobe(&SLED[which]).unwrap();
            live[which] = true;
        }
        assert_eq!(site_index_occupancy(), live.iter().filter(|l| **l).count());
        assert_eq!(site_count(), site_index_occupancy());
    }
    // Every live probe is still found by its breakpoint.
    SLED_HITS.store(0, SeqCst);
    hd_nop_sled();
    assert_eq!(SLED_HITS.load(SeqCst), live.iter().filter(|l| **l).count());
    for (which, _) in live.iter().enumerate().filter(|(_, l)| **l) {
        unregister_kprobe(&SLED[which]).unwrap();
    }
    assert_eq!(site_index_occupancy(), 0, "no tombstones");
    assert_eq!(site_count(), 0);
}
