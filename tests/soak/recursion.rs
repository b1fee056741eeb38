//! Recursive calls in flight across unregistration and re-registration of their kretprobe.
//!
//! Why: old and new instances share each task's list; every level's report
//! must be accounted for.
use super::*;

/// Levels below a top-level call of `soak_recurse`.
const REC_DEPTH: u32 = 6;
const REC_TOP_CALLS: usize = 150_000;

static REC_STATE: AtomicU8 = AtomicU8::new(UNREGISTERED);
static REC_TRANSITION: AtomicBool = AtomicBool::new(false);
static REC_ENTERING: AtomicUsize = AtomicUsize::new(0);
/// Unregistrations returned, and begun (see `UNREGISTERS_BEGUN` in books.rs
/// for why a call counts as orphaned from the start of one).
static REC_GENERATION: AtomicUsize = AtomicUsize::new(0);
static REC_UNREGISTERS_BEGUN: AtomicUsize = AtomicUsize::new(0);
/// Per worker, a bit per depth: set by the return handler when it reported
/// that level's call (cleared by the caller before the call).
static REC_REPORTED: [AtomicU32; WORKERS] = [const { AtomicU32::new(0) }; WORKERS];
static REC_EXPECTED: AtomicUsize = AtomicUsize::new(0);
static REC_ORPHANED: AtomicUsize = AtomicUsize::new(0);
static REC_HANDLED: AtomicUsize = AtomicUsize::new(0);
static REC_MISSED: AtomicUsize = AtomicUsize::new(0);
static REC_BAD: AtomicUsize = AtomicUsize::new(0);
static REC_DONE: AtomicUsize = AtomicUsize::new(0);
/// `REC_UNREGISTERS_BEGUN` as a worker's innermost returning call saw it, with
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
    REC_REPORTED[who as usize].fetch_and(!(1 << depth), SeqCst);
    let value = black_box(soak_recurse as extern "C" fn(u32, u32, u32) -> u32)(who, depth, a);
    let at_return = REC_RETURN_GENERATION[who as usize].load(SeqCst);
    cpu::enable_interrupts();
    if value != rec_expected(depth, a) {
        REC_BAD.fetch_add(1, SeqCst);
    }
    if enabled {
        REC_EXPECTED.fetch_add(1, SeqCst);
        if REC_REPORTED[who as usize].load(SeqCst) & 1 << depth == 0 {
            // Unreported: only an unregistration that overlapped the call
            // may explain it (the pool never runs out).
            if at_return != generation {
                REC_ORPHANED.fetch_add(1, SeqCst);
            } else {
                REC_BAD.fetch_add(1, SeqCst);
            }
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
    REC_RETURN_GENERATION[who as usize].store(REC_UNREGISTERS_BEGUN.load(SeqCst), SeqCst);
    value
}

fn rec_entry(ri: &mut KretprobeInstance, regs: &mut PtRegs) -> EntryAction {
    let (who, depth, a) = stack_arguments(regs);
    ri.store([who, depth, a]);
    EntryAction::Report
}

fn rec_return(ri: &mut KretprobeInstance, regs: &mut PtRegs) {
    let [who, depth, a]: [u32; 3] = ri.load();
    if who as usize >= WORKERS
        || depth > REC_DEPTH
        || regs_return_value(regs) != rec_expected(depth, a)
        || ri.task() != task::current_id()
    {
        REC_BAD.fetch_add(1, SeqCst);
        return;
    }
    REC_REPORTED[who as usize].fetch_or(1 << depth, SeqCst);
    REC_HANDLED.fetch_add(1, SeqCst);
}

/// Enough instances for every level of every worker: no call misses.
static RP_REC: Kretprobe = Kretprobe::new()
    .symbol("soak_recurse")
    .entry_handler(rec_entry)
    .handler(rec_return)
    .data_size(12)
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
                REC_UNREGISTERS_BEGUN.fetch_add(1, SeqCst);
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
    // On CPU 0, as in soak::churn: the exact accounting reads the probe's
    // state around each call, true only while no other CPU changes it.
    let workers = [0, 1, 2, 3].map(|who| task::spawn_on(0, "recursing", rec_worker, who).expect("spawn"));
    let control = task::spawn_on(0, "rec control", rec_control, 0).expect("spawn control");
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
