//! A task preempted inside a boosted copy keeps its slot while slots churn.
//!
//! Why: a task may be preempted in the boosted copy of a long `rep stosb`
//! while another unregisters the probe and churns slots; freed slots must
//! wait as garbage until the task is out.
use super::*;

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
