//! The trap path: what happens at a probe hit.
//!
//! `int3` at the guard of a text patch in progress (`text_poke_bp`) →
//! the out-of-line copy of the new instruction, before anything else.
//! `int3` at a probed address → [`int3_handler`]: run the pre-handlers of
//! every enabled probe there in order (a redirecting one ends the hit), then
//! send the code to its instruction's slot: boosted (a copy that jumps back)
//! when no probe needs a post-handler, otherwise single-stepped with TF.
//! The single-step trap → [`debug_handler`]: repair EIP, the stack and the
//! flags, run post-handlers. A fault during either → [`fault_handler`].
//!
//! A hit while handlers or a step are already in progress (a handler called
//! probed code) is a *reentry*: every probe there counts a miss, the
//! instruction is stepped without handlers, and the outer state is restored.
//!
//! Everything here runs with interrupts off, takes no lock, allocates
//! nothing, decodes nothing, and lives in `.kprobes.text`; every entry takes
//! the [`TrapContext`] that only the trap entry can create.
use super::control::{self, ControlBlock, Hit, State, TrapContext, transition};
use super::probe::{FaultAction, Kprobe, ProbeKind};
use super::registry::{self, Site};
use super::{jprobe, kretprobe};
use crate::arch::imp::PtRegs;
use crate::arch::imp::TrapOutcome;
use crate::arch::imp::{self as arch, StepProgress};
use core::fmt;

/// `#BP`: is this one of ours?
#[unsafe(link_section = ".kprobes.text")]
#[inline] // into the host's trap entry (the hot path of every breakpoint hit)
pub fn int3_handler(cx: &mut TrapContext, regs: &mut PtRegs) -> TrapOutcome {
    let address = arch::breakpoint_address(regs);
    // The guard of a text patch in progress: run the new instruction.
    if let Some(resume) = arch::text_poke_bp::guarded_resume(address) {
        regs.set_ip(resume);
        return TrapOutcome::Handled;
    }
    match registry::find(address) {
        Ok(site) => site_hit(cx, regs, site),
        Err(generation) => not_a_site(cx, regs, address, generation),
    }
}

/// An `int3` at `site`'s address (its breakpoint, never a patch guard):
/// the rest of [`int3_handler`] once the site is known. Shared with the
/// assembly fast lane, which looks the site up itself
/// ([`int3_site_entry`]).
#[unsafe(link_section = ".kprobes.text")]
#[inline(always)]
fn site_hit(cx: &mut TrapContext, regs: &mut PtRegs, site: &'static Site) -> TrapOutcome {
    let address = arch::breakpoint_address(regs);
    let lone = site.lone();
    match control::with(cx, |kcb| kcb.begin_hit(site, lone)) {
        Hit::Fresh => {}
        Hit::Reentry => {
            reenter(cx, regs, site);
            return TrapOutcome::Handled;
        }
        // A probe inside the single instruction of a reentered step cannot
        // happen unless the engine is broken: the fatal report says which.
        Hit::InsideReentry => return TrapOutcome::NotMine,
    }
    regs.set_ip(address);
    if !run_pre_handlers(cx, regs, site, lone) {
        run_instruction(cx, regs, site);
    }
    TrapOutcome::Handled
}

/// The assembly fast lane's way into the generic path, for a hit at a
/// site it found but does not handle itself (not idle, several probes, a
/// single-step, ...): [`site_hit`]. Returns whether the trap was handled;
/// if not (an engine bug, see `Hit::InsideReentry`), the lane returns to
/// the host's `#BP` path, whose [`int3_handler`] comes to the same answer
/// and reports it. The frame comes first, as in every dispatcher the
/// unwinder knows (`arch::imp::fastpath`).
#[unsafe(link_section = ".kprobes.text")]
pub(crate) extern "C" fn int3_site_entry(regs: &mut PtRegs, site: &'static Site) -> bool {
    // SAFETY: called only by the fast lane, inside the host's `#BP` entry
    // (an interrupt gate: interrupts off), engine code in `.kprobes.text`.
    let mut cx = unsafe { TrapContext::enter() };
    site_hit(&mut cx, regs, site) == TrapOutcome::Handled
}

/// A kretprobe's entry, as a fast lane calls it: the generic entry, for
/// what the assembly entry (`arch::imp::trampoline::kretprobe_entry`)
/// leaves to Rust (an entry handler, a call another kretprobe of the
/// function already swapped, a pool whose first word is empty, a miss).
/// Never redirects.
#[unsafe(link_section = ".kprobes.text")]
pub(crate) extern "fastcall" fn call_kretprobe_entry(regs: &mut PtRegs, probe: &'static Kprobe) -> bool {
    // SAFETY: called only through a fast lane, inside a trap entry or an
    // optimized probe's detour after its `cli`: interrupts are off, and
    // this is engine code in `.kprobes.text`.
    kretprobe::on_entry(&mut unsafe { TrapContext::enter() }, probe, regs);
    false
}

/// Runs the pre-handlers of every enabled probe at `site` in order (the
/// control block in `Handlers`). Returns whether one took the hit over: a
/// redirecting pre-handler (the hit is then finished) or a jprobe (its
/// handler runs next, and the hit goes on at `jprobe_return`). Shared by
/// breakpoint and optimized hits.
#[unsafe(link_section = ".kprobes.text")]
#[inline(always)]
pub(crate) fn run_pre_handlers(
    cx: &mut TrapContext,
    regs: &mut PtRegs,
    site: &'static Site,
    lone: Option<&'static Kprobe>,
) -> bool {
    // The common case, one probe (`Site::lone`, read once by the caller
    // and already the running probe of the control block): no walk.
    if let Some(probe) = lone {
        return run_pre_handler(cx, regs, probe);
    }
    for probe in site.probes() {
        if probe.is_enabled() {
            transition(cx, |kcb| kcb.run(probe));
            if run_pre_handler(cx, regs, probe) {
                return true;
            }
        }
    }
    false
}

/// Runs `probe`'s part of a hit (a pre-handler, a kretprobe's entry, a
/// jprobe's set-up), the control block already running it; returns
/// whether it took the hit over.
#[unsafe(link_section = ".kprobes.text")]
#[inline(always)]
fn run_pre_handler(cx: &mut TrapContext, regs: &mut PtRegs, probe: &'static Kprobe) -> bool {
    // Plain probes first: the common case costs one test of the kind.
    let redirected = if probe.kind == ProbeKind::Plain {
        probe.pre_handler.is_some_and(|pre| pre(regs, probe))
    } else if probe.kind == ProbeKind::Kretprobe {
        kretprobe::on_entry(cx, probe, regs);
        false
    } else {
        jprobe::setjmp(cx, probe, regs);
        return true;
    };
    if redirected {
        transition(cx, ControlBlock::finish);
        return true;
    }
    false
}

/// An `int3` at no registered site: a probe removed while its trap was in
/// flight, or not ours.
#[unsafe(link_section = ".kprobes.text")]
#[cold]
#[inline(never)]
fn not_a_site(_cx: &mut TrapContext, regs: &mut PtRegs, address: usize, generation: u32) -> TrapOutcome {
    if !arch::is_breakpoint(address) {
        // The breakpoint was removed after it trapped: run the original.
        regs.set_ip(address);
        return TrapOutcome::Handled;
    }
    if registry::index_changed_since(generation) {
        // An int3 again, and the index changed since our miss: the probe
        // was removed and registered anew while this trap was on its way
        // (QEMU's multi-threaded TCG can still run a translated block that
        // predates the removal, sync or not). Run the instruction again: it
        // traps on the new breakpoint and finds its site this time, or runs
        // the original if that went too. Each retry needs another change of
        // the index, so a foreign int3 still ends up NotMine below.
        regs.set_ip(address);
        return TrapOutcome::Handled;
    }
    TrapOutcome::NotMine
}

/// After the pre-handlers: boost or single-step the probed instruction.
#[unsafe(link_section = ".kprobes.text")]
#[inline(always)]
pub(crate) fn run_instruction(cx: &mut TrapContext, regs: &mut PtRegs, site: &'static Site) {
    // Jump-optimized (or being changed), the detour's copy of the whole
    // range (the jump may cover the bytes after this instruction); boosted,
    // the boosted copy; else a single-step.
    if let Some(resume) = site.resume() {
        regs.set_ip(resume);
        transition(cx, ControlBlock::finish);
    } else {
        let step = arch::setup_single_step(regs, site.arch());
        transition(cx, |kcb| kcb.begin_step(step));
    }
}

#[unsafe(link_section = ".kprobes.text")]
#[inline(never)]
fn reenter(cx: &mut TrapContext, regs: &mut PtRegs, site: &'static Site) {
    site.count_miss();
    if let Some(copy) = site.detour_copy_entry() {
        // The detour's copy runs the range without a trap: the outer state
        // stays as it is.
        regs.set_ip(copy);
        return;
    }
    regs.set_ip(site.address());
    let step = arch::setup_single_step(regs, site.arch());
    transition(cx, |kcb| kcb.reenter(site, step));
}

/// `#DB`: the single-step of a probed instruction finished.
#[unsafe(link_section = ".kprobes.text")]
#[inline] // into the host's trap entry, as `int3_handler`
pub fn debug_handler(cx: &mut TrapContext, regs: &mut PtRegs, dr6: u32) -> TrapOutcome {
    let Some((site, step, reentered)) = control::with(cx, |kcb| kcb.step()) else {
        return TrapOutcome::NotMine;
    };
    if !arch::is_single_step(dr6) {
        return TrapOutcome::NotMine;
    }
    if arch::resume_after_single_step(regs, site.arch(), step) == StepProgress::Again {
        return TrapOutcome::Handled;
    }
    if reentered {
        transition(cx, ControlBlock::end_reentry);
        return TrapOutcome::Handled;
    }
    transition(cx, ControlBlock::end_step);
    // The common case, one probe: no walk of the list.
    if let Some(probe) = site.lone() {
        if let Some(post) = probe.post_handler {
            transition(cx, |kcb| kcb.run(probe));
            post(regs, probe);
        }
    } else {
        for probe in site.probes() {
            if let (true, Some(post)) = (probe.is_enabled(), probe.post_handler) {
                transition(cx, |kcb| kcb.run(probe));
                post(regs, probe);
            }
        }
    }
    transition(cx, ControlBlock::finish);
    TrapOutcome::Handled
}

/// Where inside probe handling a fault that nothing handled happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultPlace {
    /// In a handler of the probe (or in code the handler called).
    Handler,
    /// In the single-stepped copy of the probed instruction.
    SingleStep,
    /// In the boosted copy of the probed instruction.
    Boosted,
    /// In the detour's copy of the instructions a jump-optimized probe
    /// displaced (the address is the probe's; EIP is the instruction's).
    Optimized,
}

/// A fault inside probe handling that no fault handler took: which probe it
/// belongs to. It travels with that one fault to its fatal report, so it can
/// never be blamed on a later, unrelated one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProbeFault {
    /// Where the fault happened.
    pub place: FaultPlace,
    /// The probed address.
    pub address: usize,
}

impl fmt::Display for ProbeFault {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        let what = match self.place {
            FaultPlace::Handler => "in a handler of the kprobe",
            FaultPlace::SingleStep => "while single-stepping the probed instruction of the kprobe",
            FaultPlace::Boosted => "in the boosted copy of the instruction of the kprobe",
            FaultPlace::Optimized => "in the jump-optimized copy of the instructions of the kprobe",
        };
        write!(f, "fault {what} at {:#010x} {}", self.address, crate::host::Describe(self.address))
    }
}

/// What the engine did with an exception.
#[must_use]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultOutcome {
    /// A probe's fault handler repaired it; resume the frame.
    Handled,
    /// Not handled here; if it happened inside probe handling, which probe.
    NotMine(Option<ProbeFault>),
}

/// Any other exception: did it happen inside probe handling?
///
/// A fault in a copy of a probed instruction (single-stepped or boosted) is
/// first made to look as if the original instruction faulted (EIP at the
/// probe address, TF and IF as the probed code had them), then offered to
/// the fault handlers of the probes there, as Linux does.
#[unsafe(link_section = ".kprobes.text")]
pub fn fault_handler(cx: &mut TrapContext, regs: &mut PtRegs) -> FaultOutcome {
    let ip = regs.ip();
    let state = control::with(cx, |kcb| *kcb.state());
    match state {
        State::SingleStep { site, step } | State::Reenter { site, step, .. } => {
            if !site.arch().slot_range().contains(&ip) {
                return FaultOutcome::NotMine(None);
            }
            arch::present_fault_at_original(regs, site.arch(), Some(step));
            let reentered = matches!(state, State::Reenter { .. });
            transition(cx, ControlBlock::abandon_step);
            if reentered {
                // Back at the outer level, whose handler (if any) called the
                // code that faulted: its fault handler decides.
                return match fault_handler(cx, regs) {
                    FaultOutcome::NotMine(None) => FaultOutcome::NotMine(Some(ProbeFault {
                        place: FaultPlace::SingleStep,
                        address: site.address(),
                    })),
                    outcome => outcome,
                };
            }
            fault_in_copy(cx, regs, site, FaultPlace::SingleStep)
        }
        State::Handlers { running: Some(probe), .. } => {
            if let Some(fault) = probe.fault_handler
                && fault(probe, regs, regs.vector as u8) == FaultAction::Handled
            {
                return FaultOutcome::Handled;
            }
            FaultOutcome::NotMine(Some(ProbeFault { place: FaultPlace::Handler, address: probe.addr().unwrap_or(0) }))
        }
        State::Idle => {
            if let Some(site) = registry::site_of_boost_entry(ip) {
                arch::present_fault_at_original(regs, site.arch(), None);
                return fault_in_copy(cx, regs, site, FaultPlace::Boosted);
            }
            match registry::site_of_detour_copy(ip) {
                Some((site, original)) => {
                    // The copy runs with the probed code's own flags: only
                    // EIP goes back, to the displaced instruction that faulted.
                    regs.set_ip(original);
                    fault_in_copy(cx, regs, site, FaultPlace::Optimized)
                }
                None => FaultOutcome::NotMine(None),
            }
        }
        State::Handlers { running: None, .. } | State::Reporting => FaultOutcome::NotMine(None),
    }
}

/// A copy of `site`'s instruction faulted and `regs` already shows the
/// original instruction faulting: the fault handlers of the probes there
/// decide, in order, with the engine otherwise idle.
#[unsafe(link_section = ".kprobes.text")]
fn fault_in_copy(cx: &mut TrapContext, regs: &mut PtRegs, site: &'static Site, place: FaultPlace) -> FaultOutcome {
    transition(cx, |kcb| kcb.begin_handlers(site));
    for probe in site.probes().filter(|p| p.is_enabled()) {
        if let Some(fault) = probe.fault_handler {
            transition(cx, |kcb| kcb.run(probe));
            if fault(probe, regs, regs.vector as u8) == FaultAction::Handled {
                transition(cx, ControlBlock::finish);
                return FaultOutcome::Handled;
            }
        }
    }
    transition(cx, ControlBlock::finish);
    FaultOutcome::NotMine(Some(ProbeFault { place, address: site.address() }))
}

/// What the engine was doing when a fatal report began.
#[derive(Clone, Copy)]
pub struct ReportContext {
    state: State,
}

/// Starts a fatal report: snapshots what the engine was doing, and from then
/// on every probe hit runs its instruction without handlers, so the report
/// (formatting, symbols, the unwinder) never runs user handlers or recurses.
#[unsafe(link_section = ".kprobes.text")]
pub fn begin_report() -> ReportContext {
    crate::arch::imp::cpu::disable_interrupts();
    // SAFETY: interrupts are now off and stay off (a fatal report never
    // returns); this is engine code in `.kprobes.text`.
    let mut cx = unsafe { TrapContext::enter() };
    ReportContext { state: control::with(&mut cx, ControlBlock::report) }
}

impl core::fmt::Display for ReportContext {
    /// What the engine was doing, as a report line (nothing if it was idle).
    fn fmt(&self, f: &mut core::fmt::Formatter) -> core::fmt::Result {
        let describe = |site: &Site| crate::host::Describe(site.address());
        match self.state {
            State::Handlers { running: Some(probe), .. } => {
                let address = probe.addr().unwrap_or(0);
                writeln!(
                    f,
                    "  while running a handler of the kprobe at {address:#010x} {}",
                    crate::host::Describe(address)
                )
            }
            State::Handlers { site: None, .. } => writeln!(f, "  while running kretprobe return handlers"),
            State::Handlers { site: Some(site), running: None } => {
                writeln!(f, "  while handling the kprobe at {:#010x} {}", site.address(), describe(site))
            }
            State::SingleStep { site, .. } => writeln!(
                f,
                "  while single-stepping the probed instruction at {:#010x} {}",
                site.address(),
                describe(site)
            ),
            State::Reenter { site, .. } => writeln!(
                f,
                "  while single-stepping the reentered probe at {:#010x} {} (a probe hit inside that step is an engine bug)",
                site.address(),
                describe(site)
            ),
            State::Idle | State::Reporting => Ok(()),
        }
    }
}
