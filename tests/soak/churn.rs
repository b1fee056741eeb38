//! The main soak: four tasks and the timer hit probes that a fifth (and sixth) task churns.
//!
//! Why: registration, unregistration, enabling and disabling must be safe
//! while other tasks and interrupts hit the very probes being changed, and
//! the books must balance exactly.
use super::*;

// ----------------------------------------------------------------- control

pub(crate) static SEED: AtomicU32 = AtomicU32::new(0x2545_f491);

pub(crate) fn random() -> u32 {
    let mut x = SEED.load(SeqCst);
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    SEED.store(x, SeqCst);
    x
}

/// Control-task engine calls in progress, and how often one began while
/// another task's was in progress (it was preempted inside the engine).
pub(crate) static IN_ENGINE: AtomicUsize = AtomicUsize::new(0);
pub(crate) static OVERLAPS: AtomicUsize = AtomicUsize::new(0);

pub(crate) fn engine_call(probe: usize, what: &str, f: impl FnOnce() -> Result<(), KprobeError>) {
    if IN_ENGINE.fetch_add(1, SeqCst) != 0 {
        OVERLAPS.fetch_add(1, SeqCst);
    }
    let result = f();
    IN_ENGINE.fetch_sub(1, SeqCst);
    result.unwrap_or_else(|e| panic!("{what} {}: {e:?}", NAMES[probe]));
}

/// Changes `probe` at a quiescent point of its calls; the caller has
/// raised its `TRANSITION`.
pub(crate) fn transition(probe: usize) {
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
            UNREGISTERS_BEGUN[probe].fetch_add(1, SeqCst);
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
pub(crate) const CONTROLLED: [&[usize]; 2] =
    [&[KP_STEP, KP_BOOST, KRET, KRET_ONE, JP, SH_KP, SH_KRET, SH_JP], &[KP_BOOST, KRET_ONE, SH_KP, SH_KRET, SH_JP]];

pub(crate) fn control(which: usize) -> usize {
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
    // All on CPU 0, however many CPUs run: the exact accounting below
    // ("calls while registered and enabled") reads a probe's state around
    // each call, which is exact only while no other CPU can change it in
    // between. The engine's exactness with CPUs running side by side is
    // tests/smp_probes.rs's to show.
    let mut ids = [0; WORKERS];
    for (who, id) in ids.iter_mut().enumerate() {
        *id = task::spawn_on(0, "soak worker", worker, who).expect("spawn worker");
    }
    let controllers = [0, 1].map(|which| task::spawn_on(0, "soak control", control, which).expect("spawn control"));
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
