//! The soak's target functions, their handlers and probes, and the engine calls that keep the books.
//!
//! Why: every handler checks what it sees against the books and counts its
//! run; registering and unregistering go through one place that records
//! the state change.
use super::*;

// ----------------------------------------------------------------- targets

#[inline(never)]
#[unsafe(no_mangle)]
pub(crate) extern "C" fn soak_kp_step(a: u32, b: u32, who: u32) -> u32 {
    passed(KP_STEP, who);
    black_box(a).wrapping_mul(3) ^ b
}

#[inline(never)]
#[unsafe(no_mangle)]
pub(crate) extern "C" fn soak_kp_boost(a: u32, b: u32, who: u32) -> u32 {
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
pub(crate) extern "C" fn soak_kret(a: u32, b: u32, who: u32) -> u32 {
    passed(KRET, who);
    let value = black_box(a).wrapping_mul(7).wrapping_add(b);
    if who < HOOK {
        KRET_INSIDE.fetch_add(1, SeqCst);
        if a % 8 == 0 {
            task::yield_now();
        }
        KRET_INSIDE.fetch_sub(1, SeqCst);
        cpu::disable_interrupts();
        RETURN_GENERATION[who as usize].store(UNREGISTERS_BEGUN[KRET].load(SeqCst), SeqCst);
    }
    value
}

#[inline(never)]
#[unsafe(no_mangle)]
pub(crate) extern "C" fn soak_kret_one(a: u32, b: u32, _who: u32) -> u32 {
    // Its window closes when the call returns (see `call`).
    black_box(a).wrapping_sub(b) ^ 0x55
}

#[inline(never)]
#[unsafe(no_mangle)]
pub(crate) extern "C" fn soak_jp(a: u32, b: u32, who: u32) -> u32 {
    passed(JP, who);
    black_box(a) ^ b.wrapping_mul(5)
}

#[inline(never)]
#[unsafe(no_mangle)]
pub(crate) extern "C" fn soak_shared(a: u32, b: u32, who: u32) -> u32 {
    passed(SH_KP, who);
    passed(SH_JP, who);
    // SH_KRET's window closes when the call returns.
    black_box(a).rotate_right(3).wrapping_add(b ^ 0x77)
}

pub(crate) fn target(target: usize) -> extern "C" fn(u32, u32, u32) -> u32 {
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
pub(crate) fn stack_arguments(regs: &PtRegs) -> (u32, u32, u32) {
    (entry_argument(regs, 0), entry_argument(regs, 1), entry_argument(regs, 2))
}

pub(crate) fn step_pre(probe: &Kprobe, regs: &mut PtRegs) -> PreAction {
    let (a, b, who) = stack_arguments(regs);
    if !plausible(KP_STEP, a, b, who) || probe.addr() != Some(regs.eip as usize) {
        bad(0x100);
    }
    HANDLED[KP_STEP].fetch_add(1, SeqCst);
    PreAction::Continue
}

pub(crate) fn step_post(probe: &Kprobe, regs: &mut PtRegs) {
    let address = probe.addr().unwrap_or(0);
    if !(address + 1..address + 16).contains(&(regs.eip as usize)) {
        bad(0x101);
    }
    POSTS.fetch_add(1, SeqCst);
}

pub(crate) fn boost_pre(probe: &Kprobe, regs: &mut PtRegs) -> PreAction {
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

pub(crate) fn kret_entry(ri: &mut KretprobeInstance, regs: &mut PtRegs) -> EntryAction {
    let (a, b, _) = stack_arguments(regs);
    ri.store([a, b]);
    EntryAction::Report
}

pub(crate) fn kret_return(ri: &mut KretprobeInstance, regs: &mut PtRegs) {
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
    if probe == KRET && a >> 20 < HOOK {
        REPORTED[(a >> 20) as usize].store(true, SeqCst);
    }
    HANDLED[probe].fetch_add(1, SeqCst);
}

pub(crate) extern "C" fn jp_handler(a: u32, b: u32, who: u32) -> u32 {
    if !plausible(JP, a, b, who) {
        bad(0x400);
    }
    HANDLED[JP].fetch_add(1, SeqCst);
    jprobe_return()
}

pub(crate) fn shared_pre(probe: &Kprobe, regs: &mut PtRegs) -> PreAction {
    let (a, b, who) = stack_arguments(regs);
    if !plausible(SHARED, a, b, who) || probe.addr() != Some(regs.eip as usize) {
        bad(0x800);
    }
    HANDLED[SH_KP].fetch_add(1, SeqCst);
    PreAction::Continue
}

pub(crate) fn shared_post(_probe: &Kprobe, _regs: &mut PtRegs) {
    SHARED_POSTS.fetch_add(1, SeqCst);
}

pub(crate) extern "C" fn shared_jp_handler(a: u32, b: u32, who: u32) -> u32 {
    if !plausible(SHARED, a, b, who) {
        bad(0x801);
    }
    HANDLED[SH_JP].fetch_add(1, SeqCst);
    jprobe_return()
}

pub(crate) static KP_STEP_PROBE: Kprobe =
    Kprobe::new().symbol("soak_kp_step", 0).pre_handler(step_pre).post_handler(step_post);
pub(crate) static KP_BOOST_PROBE: Kprobe = Kprobe::new().symbol("soak_kp_boost", 0).pre_handler(boost_pre);
pub(crate) static RP: Kretprobe =
    Kretprobe::new().symbol("soak_kret").entry_handler(kret_entry).handler(kret_return).data_size(8).maxactive(8);
pub(crate) static RP_ONE: Kretprobe =
    Kretprobe::new().symbol("soak_kret_one").entry_handler(kret_entry).handler(kret_return).data_size(8).maxactive(1);
pub(crate) static JPROBE: Jprobe = Jprobe::new(jp_handler as *const ()).symbol("soak_jp");
pub(crate) static KP_SHARED: Kprobe =
    Kprobe::new().symbol("soak_shared", 0).pre_handler(shared_pre).post_handler(shared_post);
pub(crate) static RP_SHARED: Kretprobe =
    Kretprobe::new().symbol("soak_shared").entry_handler(kret_entry).handler(kret_return).data_size(8).maxactive(8);
/// Never registrable (no such function): a batch with it fails and must
/// roll back the probes registered before it.
pub(crate) static KP_NOWHERE: Kprobe = Kprobe::new().symbol("soak::no_such_function", 0).pre_handler(step_pre);
pub(crate) static RP_NOWHERE: Kretprobe = Kretprobe::new().symbol("soak::no_such_function").handler(kret_return);
pub(crate) static FAILED_BATCHES: AtomicUsize = AtomicUsize::new(0);

/// A batch of `probe` (unregistered) and an unregistrable probe: it must
/// fail with `UnknownSymbol` and leave `probe` unregistered.
pub(crate) fn failing_batch(probe: usize) {
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

pub(crate) static JP_SHARED: Jprobe = Jprobe::new(shared_jp_handler as *const ()).symbol("soak_shared");

/// Frees retired kretprobe pools whose calls have all returned: the engine
/// does that when a kretprobe is registered or unregistered.
pub(crate) fn sweep_retired_pools() {
    register_kretprobe(&RP_SWEEP).expect("sweep");
    unregister_kretprobe(&RP_SWEEP).expect("sweep");
}

/// Registered only to sweep (on a target nobody calls then).
pub(crate) static RP_SWEEP: Kretprobe = Kretprobe::new().symbol("soak_kret_one").handler(kret_return).maxactive(1);

pub(crate) fn register(probe: usize) -> Result<(), KprobeError> {
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

pub(crate) fn unregister(probe: usize) -> Result<(), KprobeError> {
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

pub(crate) fn set_enabled(probe: usize, on: bool) -> Result<(), KprobeError> {
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

pub(crate) fn nmissed(probe: usize) -> usize {
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
