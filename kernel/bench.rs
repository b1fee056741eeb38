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
    Jprobe, Kprobe, Kretprobe, KretprobeInstance, PreAction, PtRegs, jprobe_return, register_jprobe, register_kprobe,
    register_kretprobe, unregister_jprobe, unregister_kprobe, unregister_kretprobe,
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
    /// The case's name in the `bench: <case> <instructions>` line.
    pub case: &'static str,
    /// What was measured.
    pub description: &'static str,
    /// Ticks per hit over the unprobed call (per cycle for registration).
    pub per_hit: u64,
}

fn row(
    case: &'static str,
    description: &'static str,
    baseline: u64,
    setup: impl FnOnce(),
    teardown: impl FnOnce(),
) -> Row {
    setup();
    measure(); // warm up
    let ticks = measure();
    teardown();
    Row { case, description, per_hit: ticks.saturating_sub(baseline) / CALLS }
}

/// Ticks for one register + unregister of the boosted function-entry
/// probe: the least of five batches of 20, so a timer tick that lands in
/// one batch does not count (registration runs with interrupts on).
fn register_unregister(case: &'static str, description: &'static str) -> Row {
    let per_cycle = (0..5)
        .map(|_| {
            let start = rdtsc();
            for _ in 0..20 {
                register_kprobe(&BOOSTED).unwrap();
                unregister_kprobe(&BOOSTED).unwrap();
            }
            (rdtsc() - start) / 20
        })
        .min()
        .unwrap_or(0);
    Row { case, description, per_hit: per_cycle }
}

/// Distinct probe addresses for the churn: every byte of `bench_sled`.
const SLED_LENGTH: usize = 1024;

/// 1024 one-byte instructions.
#[unsafe(naked)]
#[unsafe(no_mangle)]
pub extern "C" fn bench_sled() {
    naked_asm!(".rept 1024", "nop", ".endr", "ret");
}

/// One probe per instruction of `bench_sled`.
static SLED: [Kprobe; SLED_LENGTH] = sled_probes();

const fn sled_probes() -> [Kprobe; SLED_LENGTH] {
    let mut probes = [const { Kprobe::new() }; SLED_LENGTH];
    let mut i = 0;
    while i < SLED_LENGTH {
        probes[i] = Kprobe::new().symbol("bench_sled", i).pre_handler(pre);
        i += 1;
    }
    probes
}

/// Register/unregister cycles at distinct addresses before the "after
/// churn" cases (issue 7: tombstones left by unregistering slowed every
/// later lookup and registration).
pub const CHURN_CYCLES: usize = 100_000;

fn churn() {
    core::hint::black_box(bench_sled as *const ()); // keep it linked: probes find it by name
    for cycle in 0..CHURN_CYCLES {
        let probe = &SLED[cycle % SLED_LENGTH];
        register_kprobe(probe).unwrap();
        unregister_kprobe(probe).unwrap();
    }
}

fn boosted_row(case: &'static str, description: &'static str, baseline: u64) -> Row {
    row(case, description, baseline, || register_kprobe(&BOOSTED).unwrap(), || unregister_kprobe(&BOOSTED).unwrap())
}

/// The case-name suffix for `cpus` online CPUs: none for one, `_smpN` else.
fn case_suffix(cpus: usize) -> alloc::string::String {
    if cpus == 1 { alloc::string::String::new() } else { alloc::format!("_smp{cpus}") }
}

/// Runs every case and prints one `bench: <case> <instructions>` line each.
pub fn run() -> [Row; 10] {
    // On a fresh engine, before any other case has used sites and slots.
    let fresh_registration = register_unregister("register_unregister", "register + unregister, function entry");
    let baseline = measure().min(measure());
    let fresh = [
        Row { case: "unprobed_call", description: "unprobed call (absolute, per call)", per_hit: baseline / CALLS },
        row(
            "kprobe",
            "kprobe, single-step (pre+post handler)",
            baseline,
            || register_kprobe(&SINGLE_STEP).unwrap(),
            || unregister_kprobe(&SINGLE_STEP).unwrap(),
        ),
        boosted_row("kprobe_boosted", "kprobe, boosted (pre handler only)", baseline),
        row(
            "kretprobe",
            "kretprobe (return handler)",
            baseline,
            || register_kretprobe(&RETURN).unwrap(),
            || unregister_kretprobe(&RETURN).unwrap(),
        ),
        row(
            "kretprobe_with_kprobe",
            "kretprobe + boosted kprobe",
            baseline,
            || {
                register_kretprobe(&RETURN).unwrap();
                register_kprobe(&BOOSTED).unwrap()
            },
            || {
                unregister_kprobe(&BOOSTED).unwrap();
                unregister_kretprobe(&RETURN).unwrap()
            },
        ),
        row("jprobe", "jprobe", baseline, || register_jprobe(&JUMP).unwrap(), || unregister_jprobe(&JUMP).unwrap()),
        fresh_registration,
    ];
    churn();
    let after = [
        boosted_row("kprobe_boosted_after_churn", "kprobe, boosted, after the churn", baseline),
        register_unregister("register_unregister_after_churn", "register + unregister, after the churn"),
        Row {
            case: "site_index_occupancy_after_churn",
            description: "site index buckets in use after the churn",
            per_hit: crate::kprobes::site_index_occupancy() as u64,
        },
    ];
    let rows: [Row; 10] = core::array::from_fn(|i| if i < fresh.len() { fresh[i] } else { after[i - fresh.len()] });
    println!("bench: {CALLS} calls per hit case; TSC ticks per hit over the unprobed call, per cycle for");
    println!("       registration; guest instructions when QEMU runs with -icount shift=0,sleep=off;");
    println!(
        "       the after_churn cases follow {CHURN_CYCLES} register/unregister cycles at {SLED_LENGTH} distinct addresses"
    );
    // Run with more CPUs, every case is named for their count, so the two
    // runs of `make bench` can be told apart (and compared) by scripts.
    let cpus = crate::arch::x86::smp::online_cpus();
    let suffix = case_suffix(cpus);
    for row in &rows {
        println!("bench: {}{suffix} {}", row.case, row.per_hit);
    }
    println!("  on {cpus} CPU{}:", if cpus == 1 { "" } else { "s" });
    for row in &rows {
        println!("  {:<34} {:<42} {:>7}", alloc::format!("{}{suffix}", row.case), row.description, row.per_hit);
    }
    println!(
        "memory: {} probe sites, {} instruction slots of {} bytes, kretprobe instance {} bytes + data",
        crate::kprobes::MAX_SITES,
        crate::memory::slots::SLOT_COUNT,
        crate::memory::slots::SLOT_SIZE,
        core::mem::size_of::<KretprobeInstance>()
    );
    rows
}
