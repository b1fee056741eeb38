//! The check every fix-up case goes through: unprobed, single-stepped, boosted, both.
//!
//! Why: every case must hold to the same rules (identical results, the
//! probe address before and the true continuation after in the handlers,
//! exact hits, original bytes restored), so they are written once here and
//! each case module only describes its instruction.
use super::*;

/// One probed instruction and what must hold around it.
pub(crate) struct Case {
    /// The naked function holding the instruction.
    pub(crate) routine: Routine,
    /// The naked function holding the probed instruction when it is not
    /// `routine` itself (a callee whose `ret` is probed).
    pub(crate) inner: Option<fn() -> usize>,
    pub(crate) argument: u32,
    /// Run with IF forced on or off (`None`: as the test runs, IF on).
    pub(crate) interrupts: Option<bool>,
    /// The probed instruction (a global label).
    pub(crate) at: fn() -> usize,
    /// What `can_probe` must classify it as.
    pub(crate) fixup: fn() -> Fixup,
    /// Whether a probe without post-handlers there must be boosted.
    pub(crate) boostable: bool,
    /// Where execution continues after each hit, in order (one per hit).
    pub(crate) continues: fn() -> Vec<usize>,
    /// ESP after the instruction minus ESP before it.
    pub(crate) esp_delta: i32,
    /// Exact expectations on a run's result, the registers of the first
    /// pre-handler call (all zero for the unprobed run, hence the
    /// `pre.esp != 0` guards) and the words at ESP seen by the post-handlers.
    pub(crate) check: fn(&Snapshot, &SeenRegs, &[u32]),
}

fn run(case: &Case) -> Snapshot {
    reset_state();
    let was_enabled = cpu::interrupts_enabled();
    match case.interrupts {
        Some(true) => cpu::enable_interrupts(),
        Some(false) => cpu::disable_interrupts(),
        None => {}
    }
    // SAFETY: each routine is a self-contained cdecl function that preserves
    // the callee-saved registers and touches only this file's statics.
    let returned = unsafe { (case.routine)(case.argument) };
    let after = cpu::interrupts_enabled();
    if was_enabled {
        cpu::enable_interrupts();
    } else {
        cpu::disable_interrupts();
    }
    if let Some(wanted) = case.interrupts {
        assert_eq!(after, wanted, "the routine changed IF for its caller");
    }
    snapshot(returned)
}

/// The probed instruction and the 15 bytes after it (inside this file's
/// routines or the next function, all kernel text).
pub(crate) fn code_bytes(address: usize) -> [u8; 16] {
    core::array::from_fn(|i| text_byte(address + i))
}

/// Checks the handlers' records after a run with `per_hit` pre-handler
/// calls per hit (one per probe at the address) and `posts` post-handlers.
fn check_hits(case: &Case, what: &str, result: &Snapshot, at: usize, per_hit: usize, posts: bool) {
    let continues = (case.continues)();
    let hits = continues.len();
    let probe_esp = PROBE_ESP.load(Ordering::SeqCst);
    let pre_hits = PRE_HITS.load(Ordering::SeqCst);
    assert_eq!(pre_hits, hits * per_hit, "{what}: pre-handler calls");
    for (hit, eip) in records(&PRE_EIP, pre_hits).into_iter().enumerate() {
        assert_eq!(eip as usize, at, "{what}: pre-handler {hit} saw EIP {eip:#x}, not the probe address {at:#x}");
    }
    let seen = first_pre_regs();
    assert_eq!(seen.esp, probe_esp, "{what}: pre-handler ESP");
    assert_eq!(seen.eflags & EFLAGS_TF, 0, "{what}: TF in the pre-handler's flags");
    let post_hits = POST_HITS.load(Ordering::SeqCst);
    if !posts {
        assert_eq!(post_hits, 0, "{what}: post-handler calls");
        (case.check)(result, &seen, &[]);
        return;
    }
    assert_eq!(post_hits, hits, "{what}: post-handler calls");
    let eips = records(&POST_EIP, post_hits);
    let wanted: Vec<u32> = continues.iter().map(|&a| a as u32).collect();
    assert_eq!(eips, wanted, "{what}: post-handler EIPs (where execution continues)");
    for (hit, esp) in records(&POST_ESP, post_hits).into_iter().enumerate() {
        let wanted = probe_esp.wrapping_add_signed(case.esp_delta);
        assert_eq!(esp, wanted, "{what}: post-handler {hit} ESP {esp:#x}, wanted {wanted:#x}");
    }
    (case.check)(result, &seen, &records(&POST_STACK_TOP, post_hits));
}

/// A breakpoint the engine did not claim, inside an instruction slot: the
/// slot's `int3` filler after a stepped copy ran, so the single-step trap did
/// not come right after the copy. Fails the test with that diagnosis (the
/// default would only say "unexpected #BP").
fn stray_slot_breakpoint(frame: &mut PtRegs) -> TrapOutcome {
    let at = frame.eip as usize - 1;
    if probe_kernel::memory::slots::region().contains(&at) {
        panic!(
            "int3 filler of an instruction slot executed at {at:#x}: no single-step trap came right after the stepped copy, so it ran on"
        );
    }
    TrapOutcome::NotMine
}

pub(crate) fn check(case: &Case) {
    set_hook(HookKind::Breakpoint, Some(stray_slot_breakpoint));
    check_probed(case);
    set_hook(HookKind::Breakpoint, None);
}

fn check_probed(case: &Case) {
    let at = (case.at)();
    let routine = case.inner.map_or(case.routine as usize, |inner| inner());
    let function = probe_kernel::symbols::lookup_address(at).expect("probed label in no function");
    assert_eq!(
        function.address, routine,
        "{} (offset {:#x}) is not the routine containing the label",
        function.name, function.offset
    );
    assert!(function.offset == at - routine && at < routine + function.size);

    let fixup = (case.fixup)();
    assert_eq!(can_probe(at as *const ()), Ok(fixup));
    assert_eq!(fixup.boostable(), case.boostable, "{fixup:?}: the engine's boostability differs from the design");
    let original = code_bytes(at);

    let baseline = run(case);
    reset_hits();
    (case.check)(&baseline, &first_pre_regs(), &[]);
    let unprobed_esp = PROBE_ESP.load(Ordering::SeqCst);
    assert_ne!(unprobed_esp, 0, "the routine did not note ESP");

    // Single-stepped: pre- and post-handler.
    let stepped = leak(Kprobe::new().address(at as *const ()).pre_handler(pre).post_handler(post));
    register_kprobe(stepped).expect("single-step probe refused");
    assert!(!stepped.flags().contains(KprobeFlags::BOOSTED), "a probe with a post-handler is boosted");
    assert_eq!(code_bytes(at)[0], 0xcc, "breakpoint not armed");
    reset_hits();
    let result = run(case);
    assert_eq!(result, baseline, "single-stepped run differs from the unprobed run");
    check_hits(case, "single-step", &result, at, 1, true);
    assert_eq!(stepped.nmissed(), 0);
    unregister_kprobe(stepped).unwrap();
    assert_eq!(code_bytes(at), original, "bytes not restored after the single-step probe");

    // Boosted where the class allows: pre-handler only.
    let boosted = leak(Kprobe::new().address(at as *const ()).pre_handler(pre));
    register_kprobe(boosted).expect("pre-handler probe refused");
    assert_eq!(boosted.flags().contains(KprobeFlags::BOOSTED), case.boostable, "BOOSTED flag for {fixup:?}");
    reset_hits();
    let result = run(case);
    assert_eq!(result, baseline, "pre-handler-only run differs from the unprobed run");
    check_hits(case, "pre-handler only", &result, at, 1, false);
    assert_eq!(boosted.nmissed(), 0);

    // Both at one address: a post-handler anywhere at the address turns boosting off.
    let with_post = leak(Kprobe::new().address(at as *const ()).pre_handler(pre).post_handler(post));
    register_kprobe(with_post).expect("second probe at the address refused");
    assert!(!boosted.flags().contains(KprobeFlags::BOOSTED), "boosted while another probe has a post-handler");
    assert!(!with_post.flags().contains(KprobeFlags::BOOSTED), "a probe with a post-handler is boosted");
    reset_hits();
    let result = run(case);
    assert_eq!(result, baseline, "run with two probes differs from the unprobed run");
    check_hits(case, "two probes", &result, at, 2, true);
    unregister_kprobe(with_post).unwrap();
    assert_eq!(
        boosted.flags().contains(KprobeFlags::BOOSTED),
        case.boostable,
        "BOOSTED after the post-handler probe left"
    );
    // With no post handler left the probe may be jump-optimized again.
    assert_eq!(code_bytes(at)[0], armed_opcode(boosted), "breakpoint disarmed while a probe remains");
    unregister_kprobe(boosted).unwrap();
    assert_eq!(code_bytes(at), original, "bytes not restored after the last probe");

    // And unprobed once more: nothing left behind.
    reset_hits();
    assert_eq!(run(case), baseline, "run after unregistering differs");
    assert_eq!(PRE_HITS.load(Ordering::SeqCst), 0);
}

pub(crate) fn next_of(address: usize) -> Vec<usize> {
    vec![address]
}
