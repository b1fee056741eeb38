//! The kernel on four CPUs: every CPU online with its own identity, tasks
//! pinned, migrating, sleeping, exiting and joined across CPUs, the running
//! task and CPU as trap handlers see them, and console lines from several
//! CPUs at once that never mix.
// run.sh: --smp=4
#![no_std]
#![no_main]
#![feature(custom_test_frameworks)]
#![test_runner(probe_kernel::testing::run_tests)]
#![reexport_test_harness_main = "test_main"]

extern crate alloc;

use alloc::vec::Vec;
use core::hint::black_box;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use probe_kernel::arch::x86::{percpu, smp};
use probe_kernel::kprobes::{Kprobe, PreAction, PtRegs, register_kprobe, unregister_kprobe};
use probe_kernel::{console, println, task};

probe_kernel::test_kernel_main!();

const CPUS: usize = 4;

fn cpu() -> usize {
    probe_kernel::arch::cpu::without_interrupts(percpu::cpu_id)
}

#[test_case]
fn every_cpu_is_online_with_its_own_id() {
    assert_eq!(smp::online_cpus(), CPUS);
    assert_eq!(cpu(), 0, "the boot task is pinned to the boot CPU");
    let ids: Vec<u8> = (0..CPUS).map(smp::apic_id_of).collect();
    for (i, id) in ids.iter().enumerate() {
        assert!(!ids[..i].contains(id), "APIC id {id} twice in {ids:?}");
    }
}

fn report_cpu(_: usize) -> usize {
    cpu()
}

#[test_case]
fn a_pinned_task_runs_on_its_cpu() {
    for round in 0..3 {
        let ids: Vec<usize> = (0..CPUS).map(|c| task::spawn_on(c, "pinned", report_cpu, 0).expect("spawn")).collect();
        let seen: Vec<usize> = ids.into_iter().map(task::join).collect();
        assert_eq!(seen, (0..CPUS).collect::<Vec<_>>(), "round {round}");
    }
}

/// Visits CPUs 3, 2, 1, 0, 3 in turn by changing its own affinity, checks
/// it is where it asked to be after each move, and returns the moves made.
fn wanderer(_: usize) -> usize {
    let mut moves = 0;
    for target in [3, 2, 1, 0, 3] {
        task::set_affinity(Some(target));
        assert_eq!(cpu(), target, "set_affinity({target}) returned elsewhere");
        moves += 1;
        spin_ticks(1);
    }
    task::set_affinity(None);
    moves
}

fn spin_ticks(ticks: u64) {
    let until = task::ticks() + ticks;
    while task::ticks() < until {
        black_box(0);
    }
}

#[test_case]
fn a_task_migrates_between_cpus_and_is_joined_from_another() {
    let id = task::spawn(wanderer, 0).expect("spawn");
    assert_eq!(task::join(id), 5);
}

fn sleeper(ticks: usize) -> usize {
    let before = task::ticks();
    task::sleep(ticks as u64);
    let slept = (task::ticks() - before) as usize;
    cpu() * 1000 + slept
}

#[test_case]
fn sleep_and_exit_on_other_cpus_are_seen_by_the_joiner() {
    let ids: Vec<usize> = (1..CPUS).map(|c| task::spawn_on(c, "sleeper", sleeper, 3 * c).expect("spawn")).collect();
    for (c, id) in (1..CPUS).zip(ids) {
        let value = task::join(id);
        let (ran_on, slept) = (value / 1000, value % 1000);
        assert_eq!(ran_on, c, "pinned sleeper came back on CPU {ran_on}");
        assert!(slept >= 3 * c, "sleep({}) returned after {slept} ticks", 3 * c);
    }
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);
static GO: AtomicBool = AtomicBool::new(false);

fn add_many(count: usize) -> usize {
    while !GO.load(Ordering::Acquire) {
        core::hint::spin_loop();
    }
    for _ in 0..count {
        COUNTER.fetch_add(1, Ordering::Relaxed);
    }
    cpu()
}

#[test_case]
fn tasks_on_every_cpu_run_at_once() {
    // Three tasks pinned to CPUs 1-3 wait for one flag: they can only all
    // start if they run simultaneously with this one (which sets it).
    COUNTER.store(0, Ordering::SeqCst);
    GO.store(false, Ordering::SeqCst);
    let ids: Vec<usize> = (1..CPUS).map(|c| task::spawn_on(c, "adder", add_many, 100_000).expect("spawn")).collect();
    task::sleep(2);
    GO.store(true, Ordering::Release);
    let cpus: Vec<usize> = ids.into_iter().map(task::join).collect();
    assert_eq!(cpus, [1, 2, 3]);
    assert_eq!(COUNTER.load(Ordering::SeqCst), 300_000, "atomic adds from three CPUs");
}

#[inline(never)]
#[unsafe(no_mangle)]
extern "C" fn smp_probed(x: u32) -> u32 {
    black_box(x).wrapping_mul(3)
}

/// What the pre-handler saw, per calling CPU: (CPU, task) packed.
static SEEN: [AtomicUsize; CPUS] = [const { AtomicUsize::new(usize::MAX) }; CPUS];

fn record_ids(_: &Kprobe, _: &mut PtRegs) -> PreAction {
    let (c, t) = (percpu::cpu_id(), task::current_id());
    SEEN[c].store(c << 16 | t, Ordering::SeqCst);
    PreAction::Continue
}

static IDS_PROBE: Kprobe = Kprobe::new().symbol("smp_probed", 0).pre_handler(record_ids);

fn call_probed(x: usize) -> usize {
    smp_probed(x as u32) as usize
}

#[test_case]
fn trap_handlers_see_their_cpu_and_task() {
    SEEN.iter().for_each(|s| s.store(usize::MAX, Ordering::SeqCst));
    register_kprobe(&IDS_PROBE).expect("register");
    let ids: Vec<usize> = (0..CPUS).map(|c| task::spawn_on(c, "caller", call_probed, c).expect("spawn")).collect();
    for (c, &id) in ids.iter().enumerate() {
        assert_eq!(task::join(id), 3 * c);
        assert_eq!(SEEN[c].load(Ordering::SeqCst), c << 16 | id, "CPU {c} should have run task {id}");
    }
    unregister_kprobe(&IDS_PROBE).expect("unregister");
}

const LINES_PER_CPU: usize = 40;

fn chatter(c: usize) -> usize {
    while !GO.load(Ordering::Acquire) {
        core::hint::spin_loop();
    }
    for line in 0..LINES_PER_CPU {
        // Several pieces per line: the whole line must still come out together.
        probe_kernel::print!("cpu{c}:");
        for piece in 0..6 {
            probe_kernel::print!(" {c}{line:02}{piece}");
            // Long enough between pieces that the CPUs' lines overlap in
            // time (QEMU runs the vCPUs as host threads, two at a time
            // here): with output sent piece by piece they do mix.
            for i in 0..20_000u32 {
                black_box(i);
            }
        }
        println!(" end{c}");
    }
    0
}

#[test_case]
fn console_lines_from_four_cpus_never_mix() {
    GO.store(false, Ordering::SeqCst);
    let mut buffer = alloc::vec![0u8; 8192];
    console::capture_begin_silent();
    let ids: Vec<usize> = (0..CPUS).map(|c| task::spawn_on(c, "chatter", chatter, c).expect("spawn")).collect();
    GO.store(true, Ordering::Release);
    for id in ids {
        task::join(id);
    }
    let text = alloc::string::String::from(core::str::from_utf8(console::capture_end(&mut buffer)).expect("utf-8"));
    let mut per_cpu = [0usize; CPUS];
    for line in text.lines() {
        let c: usize = line[3..4].parse().expect("a cpu digit");
        let mut expected = alloc::format!("cpu{c}:");
        for piece in 0..6 {
            expected += &alloc::format!(" {c}{:02}{piece}", per_cpu[c]);
        }
        expected += &alloc::format!(" end{c}");
        assert_eq!(line, expected, "a line mixed with another CPU's, or out of order");
        per_cpu[c] += 1;
    }
    assert_eq!(per_cpu, [LINES_PER_CPU; CPUS]);
}
