//! Kernel threads: ticks, spawn/join/exit, preemption, sleep, full table, `preempted_in`.
//!
//! The scheduler is what lets probes be hit by interrupted, preempted code;
//! these tests pin down its observable behaviour with exact expectations.
//! Each test leaves the task table as it found it (every spawned task is
//! joined), so the tests are independent and run in any subset.
#![no_std]
#![no_main]
#![feature(custom_test_frameworks)]
#![test_runner(probe_kernel::testing::run_tests)]
#![reexport_test_harness_main = "test_main"]

use core::hint::black_box;
use core::ops::Range;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use probe_kernel::task::{self, MAX_TASKS, SpawnError, TaskState};

probe_kernel::test_kernel_main!();

/// Spins (without yielding) until the tick counter moves past `after`.
fn spin_past_tick(after: u64) -> u64 {
    loop {
        let now = task::ticks();
        if now > after {
            return now;
        }
        black_box(now);
    }
}

#[test_case]
fn ticks_advance() {
    assert_eq!(task::current_id(), 0);
    let start = task::ticks();
    let later = spin_past_tick(start + 2);
    assert!(later >= start + 3);
    let before = task::ticks();
    task::sleep(5);
    let slept = task::ticks() - before;
    // At least the 5 ticks asked for; nothing else is runnable, so the boot
    // task is woken by the 5th tick and runs at once (the slack only absorbs
    // a host stall of the QEMU vCPU right after the wake-up).
    assert!((5..=8).contains(&slept), "sleep(5) took {slept} ticks");
}

fn times_ten(arg: usize) -> usize {
    arg * 10
}

#[test_case]
fn spawn_join_returns_exit_values() {
    let ids = [1, 2, 3].map(|arg| task::spawn(times_ten, arg).expect("spawn"));
    assert!(ids.iter().all(|id| (1..MAX_TASKS).contains(id)));
    assert!(ids[0] != ids[1] && ids[1] != ids[2] && ids[0] != ids[2]);
    assert_eq!(task::task_name(ids[0]), Some("task"));
    // Join in reverse order: values belong to tasks, not to join order.
    assert_eq!(task::join(ids[2]), 30);
    assert_eq!(task::join(ids[1]), 20);
    assert_eq!(task::join(ids[0]), 10);
    assert_eq!(task::state(ids[0]), None, "a joined slot is free");
}

const STEPS: usize = 24;
static LOG: [AtomicUsize; 2 * STEPS] = [const { AtomicUsize::new(0) }; 2 * STEPS];
static LOG_LEN: AtomicUsize = AtomicUsize::new(0);
static COUNTS: [AtomicUsize; 2] = [const { AtomicUsize::new(0) }; 2];

/// CPU bound, never yields: each step waits (spinning) for the next tick,
/// then logs `who`. Without preemption one task would log all its steps
/// before the other logged any.
fn spinner(who: usize) -> usize {
    let mut tick = task::ticks();
    for _ in 0..STEPS {
        tick = spin_past_tick(tick);
        let index = LOG_LEN.fetch_add(1, Ordering::SeqCst);
        LOG[index].store(who, Ordering::SeqCst);
        COUNTS[who - 1].fetch_add(1, Ordering::SeqCst);
    }
    who + 100
}

#[test_case]
fn preemption_interleaves_cpu_bound_tasks() {
    let a = task::spawn_named("spinner-a", spinner, 1).expect("spawn a");
    let b = task::spawn_named("spinner-b", spinner, 2).expect("spawn b");
    assert_eq!(task::join(a), 101);
    assert_eq!(task::join(b), 102);
    assert_eq!(LOG_LEN.load(Ordering::SeqCst), 2 * STEPS);
    assert_eq!(COUNTS[0].load(Ordering::SeqCst), STEPS);
    assert_eq!(COUNTS[1].load(Ordering::SeqCst), STEPS);
    let log: [usize; 2 * STEPS] = core::array::from_fn(|i| LOG[i].load(Ordering::SeqCst));
    assert_eq!(log.iter().filter(|&&w| w == 1).count(), STEPS);
    assert_eq!(log.iter().filter(|&&w| w == 2).count(), STEPS);
    let switches = log.windows(2).filter(|pair| pair[0] != pair[1]).count();
    // Each task logs about one step per tick of a 3-tick slice, so the log
    // switches owner about every 3 entries (~15 times); both tasks progressed
    // while the other was unfinished iff it switches at least twice.
    assert!(switches >= 4, "log switched owner only {switches} times: {log:?}");
    let last_a = log.iter().rposition(|&w| w == 1).unwrap();
    let first_b = log.iter().position(|&w| w == 2).unwrap();
    let last_b = log.iter().rposition(|&w| w == 2).unwrap();
    let first_a = log.iter().position(|&w| w == 1).unwrap();
    assert!(first_b < last_a && first_a < last_b);
}

static WAKE_ORDER: [AtomicUsize; 3] = [const { AtomicUsize::new(0) }; 3];
static WAKE_LEN: AtomicUsize = AtomicUsize::new(0);

/// Sleeps `ticks` and logs it; returns how many ticks actually passed.
fn sleeper(ticks: usize) -> usize {
    let start = task::ticks();
    task::sleep(ticks as u64);
    let slept = task::ticks() - start;
    WAKE_ORDER[WAKE_LEN.fetch_add(1, Ordering::SeqCst)].store(ticks, Ordering::SeqCst);
    slept as usize
}

#[test_case]
fn sleepers_wake_in_deadline_order() {
    let ids = [10, 5, 1].map(|ticks| task::spawn(sleeper, ticks).expect("spawn"));
    let slept = ids.map(task::join);
    let order: [usize; 3] = core::array::from_fn(|i| WAKE_ORDER[i].load(Ordering::SeqCst));
    assert_eq!(order, [1, 5, 10]);
    assert!(slept[0] >= 10 && slept[1] >= 5 && slept[2] >= 1, "slept {slept:?}");
}

static RELEASE: AtomicBool = AtomicBool::new(false);

fn wait_for_release(arg: usize) -> usize {
    while !RELEASE.load(Ordering::SeqCst) {
        task::sleep(1);
    }
    arg
}

#[test_case]
fn full_table_is_a_typed_error_until_join() {
    RELEASE.store(false, Ordering::SeqCst);
    let mut ids = [0; MAX_TASKS - 1];
    for (i, id) in ids.iter_mut().enumerate() {
        *id = task::spawn(wait_for_release, i).expect("spawn while the table has room");
    }
    let mut live = 0;
    task::for_each_task(|_| live += 1);
    assert_eq!(live, MAX_TASKS);
    assert_eq!(task::spawn(times_ten, 1), Err(SpawnError::TableFull));
    assert_eq!(task::spawn(times_ten, 2), Err(SpawnError::TableFull));
    RELEASE.store(true, Ordering::SeqCst);
    for (i, id) in ids.iter().enumerate() {
        assert_eq!(task::join(*id), i);
    }
    let again = task::spawn(times_ten, 7).expect("spawn after join");
    assert_eq!(task::join(again), 70);
    let mut live = 0;
    task::for_each_task(|info| {
        assert_eq!((info.id, info.name, info.state), (0, "boot", TaskState::Running));
        live += 1;
    });
    assert_eq!(live, 1);
}

fn report_own_id(_: usize) -> usize {
    task::current_id()
}

#[test_case]
fn current_id_inside_a_task_is_its_spawn_id() {
    let ids = [0, 0, 0].map(|arg| task::spawn(report_own_id, arg).expect("spawn"));
    for id in ids {
        assert_eq!(task::join(id), id);
    }
    assert_eq!(task::current_id(), 0);
}

#[inline(never)]
fn exit_from_deep_inside(depth: usize, value: usize) -> usize {
    if black_box(depth) == 0 {
        task::exit(value);
    }
    exit_from_deep_inside(depth - 1, value) + 1 // never returns
}

fn nested_exit(arg: usize) -> usize {
    exit_from_deep_inside(3, arg + 7);
    unreachable!("exit returned")
}

#[test_case]
fn exit_from_a_nested_function_returns_value_to_join() {
    let id = task::spawn(nested_exit, 35).expect("spawn");
    assert_eq!(task::join(id), 42);
}

#[test_case]
fn yield_with_nothing_else_runnable_returns() {
    let before = task::current_id();
    task::yield_now();
    task::sleep(0);
    assert_eq!(task::current_id(), before);
}

static STOP: AtomicBool = AtomicBool::new(false);

/// A busy loop the test recognises the range of.
#[inline(never)]
fn busy_loop(limit: usize) -> usize {
    let mut rounds = 0;
    while !STOP.load(Ordering::Relaxed) && rounds < limit {
        rounds = black_box(rounds + 1);
    }
    rounds
}

fn busy_task(_: usize) -> usize {
    busy_loop(black_box(usize::MAX))
}

/// `busy_loop`'s code: exact when the kernel has symbols; otherwise from its
/// entry to the next function the linker placed after it (it is small).
fn busy_loop_range() -> Range<usize> {
    let start = busy_loop as *const () as usize;
    match probe_kernel::symbols::lookup_address(start) {
        Some(symbol) => symbol.address..symbol.address + symbol.size,
        None => start..start + 64,
    }
}

#[test_case]
fn preempted_in_sees_a_task_preempted_in_a_busy_loop() {
    STOP.store(false, Ordering::SeqCst);
    let range = busy_loop_range();
    assert!(!task::preempted_in(range.clone()), "nothing spawned yet");
    // Pinned to the boot task's CPU, so the two share it (with more CPUs
    // the busy task would otherwise run beside us, never preempted).
    let id = task::spawn_on(0, "busy", busy_task, 0).expect("spawn");
    assert!(!task::preempted_in(range.clone()), "not run yet: nothing to resume");
    // While the boot task sleeps only the busy task runs on CPU 0; it is
    // preempted when the boot task is runnable again and its slice runs out.
    task::sleep(2 * task::TIME_SLICE_TICKS as u64);
    let preempted_at = match task::state(id) {
        Some(TaskState::Ready) => {
            let mut eip = None;
            task::for_each_task(|info| {
                if info.id == id {
                    eip = info.preempted_eip;
                }
            });
            eip
        }
        other => panic!("busy task is {other:?}, expected Ready"),
    };
    let eip = preempted_at.expect("busy task switched out without a preempted EIP");
    assert!(range.contains(&eip), "preempted at {eip:#x}, outside busy_loop {range:#x?}");
    assert!(task::preempted_in(range.clone()));
    assert!(task::preempted_in(eip..eip + 1));
    assert!(!task::preempted_in(0x1000..0x2000));
    STOP.store(true, Ordering::SeqCst);
    assert!(task::join(id) > 0);
    assert!(!task::preempted_in(range), "a joined task resumes nowhere");
}
