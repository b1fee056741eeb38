//! The soak's callers: the workers and the timer hook, inside the handshake.
//!
//! Why: a call is announced before it is made, so the control task can wait
//! for calls in flight before it changes a probe; the timer hook calls too,
//! and tries engine calls that must be refused.
use super::*;

// ----------------------------------------------------------------- callers

/// One call by worker `who` to `target`, inside the handshake (for every
/// probe on the target). Returns false if one of them was in transition
/// (nothing was called).
pub(crate) fn call(target: usize, who: u32, i: usize) -> bool {
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
    if target == KRET {
        REPORTED[who as usize].store(false, SeqCst);
    }
    let value = black_box(self::target(target))(a, b, who);
    if target == KRET {
        let at_return = RETURN_GENERATION[who as usize].load(SeqCst);
        cpu::enable_interrupts();
        if enabled[0] && !REPORTED[who as usize].load(SeqCst) {
            // Unreported: only an unregistration that overlapped the call
            // may explain it (the pool is large enough never to miss).
            if at_return != generation {
                ORPHANED[KRET].fetch_add(1, SeqCst);
            } else {
                bad(0x320);
            }
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

pub(crate) fn worker(who: usize) -> usize {
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

pub(crate) static HOOK_TICK: AtomicUsize = AtomicUsize::new(0);
/// Engine calls the timer hook tried (each must be refused, changing nothing).
pub(crate) static HOOK_REFUSALS: AtomicUsize = AtomicUsize::new(0);
/// Never registered: the hook tries to.
pub(crate) static HOOK_PROBE: Kprobe = Kprobe::new().symbol("soak_kp_step", 0).pre_handler(step_pre);

/// From interrupt context every engine call is refused with a typed
/// error, whatever the control tasks are doing meanwhile.
pub(crate) fn hook_tries_the_engine(tick: usize) {
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
pub(crate) fn tick_hook() {
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
