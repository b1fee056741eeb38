//! Test kernel: kretprobes with several tasks, preemption and interrupts.
//!
//! Instances belong to a task and a stack slot, so calls that are in flight
//! in several tasks at once (each preempted inside the probed function), or
//! nested inside a call by the timer interrupt, each report exactly once to
//! the right handler with the right return value. A call in flight when its
//! kretprobe is unregistered returns normally and is not reported; its
//! instance memory waits for it. A task that exits inside a probed function
//! gives its instance back. Every expectation is exact.
//!
//! Each test joins every task it spawns and unregisters what it registered.
#![no_std]
#![no_main]
#![feature(custom_test_frameworks)]
#![test_runner(probe_kernel::testing::run_tests)]
#![reexport_test_harness_main = "test_main"]

use core::hint::{black_box, spin_loop};
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use probe_kernel::kprobes::kretprobe::{active_instances, retired_pools};
use probe_kernel::kprobes::*;
use probe_kernel::task::{self, TaskState};
use probe_kernel::testing::{caller_of, entry_argument, load, reset};
use probe_kernel::unwind;

probe_kernel::test_kernel_main!();

// ============================================= 8. unregister while in flight

static SLEEPY_INSIDE: AtomicBool = AtomicBool::new(false);
static SLEEPY_RELEASE: AtomicBool = AtomicBool::new(false);
/// Set once a sleeping call has left its wait (it is about to return).
static SLEEPY_PAST: AtomicBool = AtomicBool::new(false);
static SLEEPY_RA_BEFORE: AtomicUsize = AtomicUsize::new(0);
static SLEEPY_RA_AFTER: AtomicUsize = AtomicUsize::new(0);
static SLEEPY_REPORTS: AtomicUsize = AtomicUsize::new(0);
static SLEEPY_VALUE: AtomicUsize = AtomicUsize::new(0);
const NO_SLEEP: u32 = 1 << 20;

/// Sleeps (in ticks) until the main task releases it.
#[inline(never)]
#[unsafe(no_mangle)]
extern "C" fn kt_sleepy(value: u32) -> u32 {
    SLEEPY_RA_BEFORE.store(unwind::return_address(0).unwrap_or(0), SeqCst);
    if value & NO_SLEEP == 0 {
        SLEEPY_INSIDE.store(true, SeqCst);
        while !SLEEPY_RELEASE.load(SeqCst) {
            task::sleep(1);
        }
        SLEEPY_PAST.store(true, SeqCst);
    }
    SLEEPY_RA_AFTER.store(unwind::return_address(0).unwrap_or(0), SeqCst);
    black_box(value) * 2 + 1
}

#[inline(never)]
fn sleeper(arg: usize) -> usize {
    black_box(kt_sleepy(black_box(arg as u32))) as usize
}

fn sleepy_return(_ri: &mut KretprobeInstance, regs: &mut PtRegs) {
    SLEEPY_REPORTS.fetch_add(1, SeqCst);
    SLEEPY_VALUE.store(regs_return_value(regs) as usize, SeqCst);
}

static RP_SLEEPY: Kretprobe = Kretprobe::new().symbol("kt_sleepy").handler(sleepy_return).maxactive(2);

/// Starts `sleeper(arg)` and waits until it sleeps inside `kt_sleepy`.
fn start_sleeper(arg: usize) -> task::TaskId {
    SLEEPY_INSIDE.store(false, SeqCst);
    SLEEPY_RELEASE.store(false, SeqCst);
    SLEEPY_PAST.store(false, SeqCst);
    // On our CPU, so it sleeps or waits whenever we look (not running beside us).
    let id = task::spawn_on(0, "sleeper", sleeper, arg).expect("spawn");
    while !SLEEPY_INSIDE.load(SeqCst) {
        task::sleep(1);
    }
    assert!(matches!(task::state(id), Some(TaskState::Sleeping { .. } | TaskState::Ready)));
    id
}

#[test_case]
fn unregister_while_task_sleeps_inside() {
    reset(&[&SLEEPY_REPORTS, &SLEEPY_VALUE]);
    assert_eq!(retired_pools(), 0);
    register_kretprobe(&RP_SLEEPY).expect("register");
    let a = start_sleeper(21);
    assert_eq!(active_instances(a), 1, "A's call holds an instance");
    unregister_kretprobe(&RP_SLEEPY).expect("unregister while A is inside");
    assert_eq!(retired_pools(), 1, "the pool waits for A's call");
    assert!(!SLEEPY_PAST.load(SeqCst), "A has not returned yet");
    SLEEPY_RELEASE.store(true, SeqCst);
    assert_eq!(task::join(a), 43, "A's call returned the right value");
    assert_eq!(load(&SLEEPY_REPORTS), 0, "the handler of an unregistered kretprobe does not run");
    // The return went to the real caller, and the unwinder saw it all along.
    let before = load(&SLEEPY_RA_BEFORE);
    assert_eq!(caller_of(before), "kretprobe_tasks::sleeper");
    assert_eq!(load(&SLEEPY_RA_AFTER), before);
    assert_eq!(retired_pools(), 1, "freed by the next registration, not on the trap path");
    // Registering again right after works, frees the old pool, and reports.
    register_kretprobe(&RP_SLEEPY).expect("register again");
    assert_eq!(retired_pools(), 0);
    assert_eq!(kt_sleepy(black_box(5 | NO_SLEEP)), (5 | NO_SLEEP) * 2 + 1);
    assert_eq!(load(&SLEEPY_REPORTS), 1);
    assert_eq!(load(&SLEEPY_VALUE), ((5 | NO_SLEEP) * 2 + 1) as usize);
    assert_eq!(RP_SLEEPY.nmissed(), 0);
    unregister_kretprobe(&RP_SLEEPY).expect("unregister");
    assert_eq!(retired_pools(), 0);
}

#[test_case]
fn reregister_while_task_sleeps_inside() {
    reset(&[&SLEEPY_REPORTS, &SLEEPY_VALUE]);
    register_kretprobe(&RP_SLEEPY).expect("register");
    let a = start_sleeper(8);
    unregister_kretprobe(&RP_SLEEPY).expect("unregister");
    register_kretprobe(&RP_SLEEPY).expect("register again while A is inside");
    assert_eq!(retired_pools(), 1, "A's instance is still out");
    // A second task in the same function under the new registration.
    let b = start_sleeper(9);
    assert_eq!((active_instances(a), active_instances(b)), (1, 1));
    assert!(!SLEEPY_PAST.load(SeqCst), "neither has returned yet");
    SLEEPY_RELEASE.store(true, SeqCst);
    assert_eq!(task::join(a), 17);
    assert_eq!(task::join(b), 19);
    assert_eq!(load(&SLEEPY_REPORTS), 1, "only B's call belongs to the current registration");
    assert_eq!(load(&SLEEPY_VALUE), 19);
    assert_eq!(RP_SLEEPY.nmissed(), 0);
    unregister_kretprobe(&RP_SLEEPY).expect("unregister");
    assert_eq!(retired_pools(), 0, "both pools freed once every call was back");
}

// ================================================ a task exits inside

static EXIT_ENTRIES: AtomicUsize = AtomicUsize::new(0);
static EXIT_REPORTS: AtomicUsize = AtomicUsize::new(0);

#[inline(never)]
#[unsafe(no_mangle)]
extern "C" fn kt_exit_inside(value: u32) -> u32 {
    if black_box(value) != 0 {
        task::exit(value as usize * 3);
    }
    black_box(0)
}

#[inline(never)]
fn exiter(arg: usize) -> usize {
    black_box(kt_exit_inside(black_box(arg as u32))) as usize + 1000
}

fn exit_entry(_ri: &mut KretprobeInstance, _regs: &mut PtRegs) -> EntryAction {
    EXIT_ENTRIES.fetch_add(1, SeqCst);
    EntryAction::Report
}
fn exit_return(_ri: &mut KretprobeInstance, _regs: &mut PtRegs) {
    EXIT_REPORTS.fetch_add(1, SeqCst);
}

// One instance: the second task gets it only if the first one's came back.
static RP_EXIT: Kretprobe =
    Kretprobe::new().symbol("kt_exit_inside").entry_handler(exit_entry).handler(exit_return).maxactive(1);

#[test_case]
fn task_exits_inside_probed_function() {
    reset(&[&EXIT_ENTRIES, &EXIT_REPORTS]);
    register_kretprobe(&RP_EXIT).expect("register");
    for (round, arg) in [4usize, 5].into_iter().enumerate() {
        let id = task::spawn(exiter, arg).expect("spawn");
        assert_eq!(task::join(id), arg * 3, "the task ended inside the probed function");
        assert_eq!(active_instances(id), 0, "its instance went back at exit");
        assert_eq!(load(&EXIT_ENTRIES), round + 1);
    }
    assert_eq!(load(&EXIT_REPORTS), 0, "those calls never returned");
    assert_eq!(RP_EXIT.nmissed(), 0, "the single instance was free again");
    assert_eq!(kt_exit_inside(black_box(0)), 0);
    assert_eq!(load(&EXIT_REPORTS), 1);
    unregister_kretprobe(&RP_EXIT).expect("unregister");
    assert_eq!(retired_pools(), 0, "no instance was out");
}

// ====================================== 10. tasks preempted inside the function

const CALLS_PER_TASK: usize = 4;
const WORKERS: usize = 3;
/// Longer than a time slice: every call is preempted while other tasks run.
const SPIN_TICKS: u64 = task::TIME_SLICE_TICKS as u64 + 1;

static INSIDE: AtomicUsize = AtomicUsize::new(0);
static MAX_INSIDE: AtomicUsize = AtomicUsize::new(0);
static BUSY_REPORTS: [AtomicUsize; WORKERS + 1] = [const { AtomicUsize::new(0) }; WORKERS + 1];
static BUSY_BAD: AtomicUsize = AtomicUsize::new(0);
static BUSY_CALLS: AtomicUsize = AtomicUsize::new(0);

#[inline(never)]
#[unsafe(no_mangle)]
extern "C" fn kt_busy(value: u32) -> u32 {
    let inside = INSIDE.fetch_add(1, SeqCst) + 1;
    MAX_INSIDE.fetch_max(inside, SeqCst);
    let start = task::ticks();
    while task::ticks() < start + SPIN_TICKS {
        spin_loop();
    }
    INSIDE.fetch_sub(1, SeqCst);
    black_box(value) * 2
}

/// Worker `id` calls `kt_busy` with its own arguments; returns how many
/// calls came back with a wrong value.
#[inline(never)]
fn busy_worker(id: usize) -> usize {
    let mut bad = 0;
    for k in 0..CALLS_PER_TASK {
        let arg = (id * 1000 + k) as u32;
        if black_box(kt_busy(black_box(arg))) != arg * 2 {
            bad += 1;
        }
        BUSY_CALLS.fetch_add(1, SeqCst);
    }
    bad
}

fn busy_entry(ri: &mut KretprobeInstance, regs: &mut PtRegs) -> EntryAction {
    ri.store(entry_argument(regs, 0));
    EntryAction::Report
}

fn busy_return(ri: &mut KretprobeInstance, regs: &mut PtRegs) {
    let arg: u32 = ri.load();
    let worker = arg as usize / 1000;
    let ok = regs_return_value(regs) == arg * 2
        && ri.task() == task::current_id()
        && regs.eip as usize == ri.ret_addr()
        && caller_of(ri.ret_addr()) == "kretprobe_tasks::busy_worker"
        && (1..=WORKERS).contains(&worker);
    if ok {
        BUSY_REPORTS[worker].fetch_add(1, SeqCst);
    } else {
        BUSY_BAD.fetch_add(1, SeqCst);
    }
}

static RP_BUSY: Kretprobe = Kretprobe::new()
    .symbol("kt_busy")
    .entry_handler(busy_entry)
    .handler(busy_return)
    .data_size(4)
    .maxactive(WORKERS as i32);
static RP_BUSY_ONE: Kretprobe =
    Kretprobe::new().symbol("kt_busy").entry_handler(busy_entry).handler(busy_return).data_size(4).maxactive(1);

/// Runs the workers; returns (reports per worker, total reports).
fn run_workers(rp: &'static Kretprobe) -> ([usize; WORKERS + 1], usize) {
    reset(&[&INSIDE, &MAX_INSIDE, &BUSY_BAD, &BUSY_CALLS]);
    for r in &BUSY_REPORTS {
        r.store(0, SeqCst);
    }
    register_kretprobe(rp).expect("register");
    let ids = [1, 2, 3].map(|id| task::spawn(busy_worker, id).expect("spawn"));
    for id in ids {
        assert_eq!(task::join(id), 0, "worker {id}: every call returned its own value");
        assert_eq!(active_instances(id), 0);
    }
    assert_eq!(load(&BUSY_CALLS), WORKERS * CALLS_PER_TASK);
    assert_eq!(load(&MAX_INSIDE), WORKERS, "all workers were preempted inside kt_busy at once");
    assert_eq!(load(&BUSY_BAD), 0, "every report had the right task, value and return address");
    let reports = [0, 1, 2, 3].map(|i| BUSY_REPORTS[i].load(SeqCst));
    let total = reports.iter().sum();
    unregister_kretprobe(rp).expect("unregister");
    assert_eq!(retired_pools(), 0, "no instance leaked");
    (reports, total)
}

#[test_case]
fn tasks_preempted_inside_probed_function() {
    let (reports, total) = run_workers(&RP_BUSY);
    assert_eq!(reports, [0, CALLS_PER_TASK, CALLS_PER_TASK, CALLS_PER_TASK]);
    assert_eq!(total, WORKERS * CALLS_PER_TASK);
    assert_eq!(RP_BUSY.nmissed(), 0);
}

#[test_case]
fn tasks_preempted_inside_probed_function_maxactive_1() {
    let (_, total) = run_workers(&RP_BUSY_ONE);
    let missed = RP_BUSY_ONE.nmissed();
    assert_eq!(total + missed, WORKERS * CALLS_PER_TASK, "every call reported or missed, once");
    assert!(total >= 1 && missed >= 1, "overlapping calls: {total} reported, {missed} missed");
}

// =============================================== 11. from the timer interrupt

const HOOK_BIT: u32 = 1 << 30;
const SPIN_BIT: u32 = 1 << 29;
const MAIN_CALLS: usize = 20;

static HOOK_ON: AtomicBool = AtomicBool::new(false);
static HOOK_CALLS: AtomicUsize = AtomicUsize::new(0);
static HOOK_NESTED: AtomicUsize = AtomicUsize::new(0);
static HOOK_BAD: AtomicUsize = AtomicUsize::new(0);
static HOOK_REPORTS: AtomicUsize = AtomicUsize::new(0);
static MAIN_REPORTS: AtomicUsize = AtomicUsize::new(0);
static TICK_BAD: AtomicUsize = AtomicUsize::new(0);
static MAIN_HOLDS: AtomicBool = AtomicBool::new(false);

/// Called by the main task (spinning until the next tick, so the timer
/// interrupt lands inside it) and by the tick hook (not spinning).
#[inline(never)]
#[unsafe(no_mangle)]
extern "C" fn kt_tick(value: u32) -> u32 {
    if value & SPIN_BIT != 0 {
        let start = task::ticks();
        while task::ticks() == start {
            spin_loop();
        }
    }
    black_box(value) + 7
}

/// The tick hook: interrupt context, on whatever task the timer interrupted.
fn tick_hook() {
    if !HOOK_ON.load(SeqCst) {
        return;
    }
    let seq = HOOK_CALLS.load(SeqCst) as u32;
    if MAIN_HOLDS.load(SeqCst) {
        HOOK_NESTED.fetch_add(1, SeqCst);
    }
    let arg = HOOK_BIT | seq;
    if kt_tick(black_box(arg)) != arg + 7 {
        HOOK_BAD.fetch_add(1, SeqCst);
    }
    HOOK_CALLS.fetch_add(1, SeqCst);
}

fn tick_entry(ri: &mut KretprobeInstance, regs: &mut PtRegs) -> EntryAction {
    let arg = entry_argument(regs, 0);
    ri.store(arg);
    if arg & HOOK_BIT == 0 {
        MAIN_HOLDS.store(true, SeqCst);
    }
    EntryAction::Report
}

fn tick_return(ri: &mut KretprobeInstance, regs: &mut PtRegs) {
    let arg: u32 = ri.load();
    if regs_return_value(regs) != arg + 7 || regs.eip as usize != ri.ret_addr() || ri.task() != task::current_id() {
        TICK_BAD.fetch_add(1, SeqCst);
    }
    let expected_caller =
        if arg & HOOK_BIT != 0 { "kretprobe_tasks::tick_hook" } else { "kretprobe_tasks::main_tick_calls" };
    if caller_of(ri.ret_addr()) != expected_caller {
        TICK_BAD.fetch_add(1, SeqCst);
    }
    if arg & HOOK_BIT != 0 {
        HOOK_REPORTS.fetch_add(1, SeqCst);
    } else {
        MAIN_REPORTS.fetch_add(1, SeqCst);
        MAIN_HOLDS.store(false, SeqCst);
    }
}

static RP_TICK: Kretprobe =
    Kretprobe::new().symbol("kt_tick").entry_handler(tick_entry).handler(tick_return).data_size(4).maxactive(4);
static RP_TICK_ONE: Kretprobe =
    Kretprobe::new().symbol("kt_tick").entry_handler(tick_entry).handler(tick_return).data_size(4).maxactive(1);

/// The main task's calls, each spanning a timer tick.
#[inline(never)]
fn main_tick_calls() -> usize {
    let mut bad = 0;
    for i in 0..MAIN_CALLS as u32 {
        let arg = SPIN_BIT | i;
        if black_box(kt_tick(black_box(arg))) != arg + 7 {
            bad += 1;
        }
    }
    bad
}

fn run_with_tick_hook(rp: &'static Kretprobe) {
    reset(&[&HOOK_CALLS, &HOOK_NESTED, &HOOK_BAD, &HOOK_REPORTS, &MAIN_REPORTS, &TICK_BAD]);
    MAIN_HOLDS.store(false, SeqCst);
    register_kretprobe(rp).expect("register");
    task::set_tick_hook(Some(tick_hook));
    HOOK_ON.store(true, SeqCst);
    assert_eq!(main_tick_calls(), 0, "the main task's calls returned their own values");
    task::sleep(5); // hook calls with nothing of the main task in flight
    HOOK_ON.store(false, SeqCst);
    task::set_tick_hook(None);
    unregister_kretprobe(rp).expect("unregister");
    assert_eq!(retired_pools(), 0, "no instance left out");
    assert!(!MAIN_HOLDS.load(SeqCst));
    assert_eq!(load(&HOOK_BAD), 0, "the hook's calls returned their own values");
    assert_eq!(load(&TICK_BAD), 0, "every report had the right value, task and caller");
    assert_eq!(load(&MAIN_REPORTS), MAIN_CALLS, "every main-task call got an instance");
    assert!(load(&HOOK_NESTED) >= MAIN_CALLS, "each main call spans a tick: the hook ran inside it");
    assert!(load(&HOOK_CALLS) >= load(&HOOK_NESTED) + 5);
}

#[test_case]
fn called_from_timer_interrupt() {
    run_with_tick_hook(&RP_TICK);
    assert_eq!(RP_TICK.nmissed(), 0);
    assert_eq!(load(&HOOK_REPORTS), load(&HOOK_CALLS), "every call from the interrupt reported");
}

#[test_case]
fn called_from_timer_interrupt_maxactive_1() {
    run_with_tick_hook(&RP_TICK_ONE);
    // The hook's calls miss exactly while the main task holds the instance.
    assert_eq!(RP_TICK_ONE.nmissed(), load(&HOOK_NESTED));
    assert_eq!(load(&HOOK_REPORTS) + RP_TICK_ONE.nmissed(), load(&HOOK_CALLS));
}
