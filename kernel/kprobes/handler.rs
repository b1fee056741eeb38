//! The trap path: what happens at a probe hit.
//!
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
use super::control::{self, Active, Status, TrapContext};
use super::probe::{FaultAction, Kprobe, PreAction, ProbeKind, PtRegs};
use super::registry::{self, Site};
use super::{jprobe, kretprobe};
use crate::arch::cpu::{DR6_SINGLE_STEP, EFLAGS_IF, EFLAGS_TF};
use crate::arch::x86::kprobes::{self as arch, StepProgress, BREAKPOINT_INSTRUCTION};
use crate::arch::TrapOutcome;
use core::fmt;

#[unsafe(link_section = ".kprobes.text")]
fn set_current(cx: &mut TrapContext, active: Active) {
    control::with(cx, |kcb| kcb.current = active);
}

#[unsafe(link_section = ".kprobes.text")]
fn set_running(cx: &mut TrapContext, probe: &Kprobe) {
    control::with(cx, |kcb| kcb.current.running = probe);
}

/// `#BP`: is this one of ours?
#[unsafe(link_section = ".kprobes.text")]
pub fn int3_handler(cx: &mut TrapContext, regs: &mut PtRegs) -> TrapOutcome {
    let address = regs.eip as usize - 1;
    let Some(site) = registry::lookup(address) else {
        return not_a_site(cx, regs, address);
    };
    let outer = control::with(cx, |kcb| kcb.current);
    match outer.status {
        Status::Idle => {}
        Status::Handlers | Status::SingleStep | Status::Reporting => {
            reenter(cx, regs, site, outer);
            return TrapOutcome::Handled;
        }
        // A probe inside the single instruction of a reentered step cannot
        // happen unless the engine is broken: the fatal report says which.
        Status::Reenter => return TrapOutcome::NotMine,
    }
    regs.eip = address as u32;
    set_current(cx, Active::handlers(site));
    for probe in site.probes() {
        if !probe.is_enabled() {
            continue;
        }
        set_running(cx, probe);
        let action = match probe.kind {
            ProbeKind::Plain => probe.pre_handler.map_or(PreAction::Continue, |pre| pre(probe, regs)),
            ProbeKind::Kretprobe => {
                kretprobe::on_entry(cx, probe, regs);
                PreAction::Continue
            }
            ProbeKind::Jprobe => {
                jprobe::setjmp(cx, probe, regs);
                // The jprobe handler runs next, in the probed context; the
                // hit goes on when it calls `jprobe_return`.
                return TrapOutcome::Handled;
            }
        };
        if action == PreAction::Redirected {
            set_current(cx, Active::IDLE);
            return TrapOutcome::Handled;
        }
    }
    run_instruction(cx, regs, site);
    TrapOutcome::Handled
}

/// An `int3` at no registered site: `jprobe_return`'s, a probe removed
/// while its trap was in flight, or not ours.
#[unsafe(link_section = ".kprobes.text")]
fn not_a_site(cx: &mut TrapContext, regs: &mut PtRegs, address: usize) -> TrapOutcome {
    if jprobe::is_return_breakpoint(address) {
        return jprobe::longjmp(cx, regs);
    }
    // SAFETY: EIP-1 of an int3 trap is mapped code.
    let byte = unsafe { core::ptr::read_volatile(address as *const u8) };
    if byte != BREAKPOINT_INSTRUCTION {
        // The breakpoint was removed after it trapped: run the original.
        regs.eip = address as u32;
        return TrapOutcome::Handled;
    }
    TrapOutcome::NotMine
}

/// After the pre-handlers: boost or single-step the probed instruction.
#[unsafe(link_section = ".kprobes.text")]
pub(crate) fn run_instruction(cx: &mut TrapContext, regs: &mut PtRegs, site: &'static Site) {
    if site.boosted() {
        arch::setup_boost(regs, site.arch());
        set_current(cx, Active::IDLE);
    } else {
        let step = arch::setup_single_step(regs, site.arch());
        set_current(cx, Active { status: Status::SingleStep, site, running: core::ptr::null(), step });
    }
}

#[unsafe(link_section = ".kprobes.text")]
fn reenter(cx: &mut TrapContext, regs: &mut PtRegs, site: &'static Site, outer: Active) {
    site.count_miss();
    regs.eip = site.address() as u32;
    let step = arch::setup_single_step(regs, site.arch());
    control::with(cx, |kcb| {
        kcb.previous = outer;
        kcb.current = Active { status: Status::Reenter, site, running: core::ptr::null(), step };
    });
}

/// `#DB`: the single-step of a probed instruction finished.
#[unsafe(link_section = ".kprobes.text")]
pub fn debug_handler(cx: &mut TrapContext, regs: &mut PtRegs, dr6: u32) -> TrapOutcome {
    let active = control::with(cx, |kcb| kcb.current);
    if !matches!(active.status, Status::SingleStep | Status::Reenter) || dr6 & DR6_SINGLE_STEP == 0 {
        return TrapOutcome::NotMine;
    }
    // SAFETY: `site` was set from a live `&'static Site` when the step began.
    let site: &'static Site = unsafe { &*active.site };
    if arch::resume_after_single_step(regs, site.arch(), active.step) == StepProgress::Again {
        return TrapOutcome::Handled;
    }
    if active.status == Status::Reenter {
        control::with(cx, |kcb| kcb.current = kcb.previous);
        return TrapOutcome::Handled;
    }
    set_current(cx, Active { status: Status::Handlers, ..active });
    for probe in site.probes() {
        if let (true, Some(post)) = (probe.is_enabled(), probe.post_handler) {
            set_running(cx, probe);
            post(probe, regs);
        }
    }
    set_current(cx, Active::IDLE);
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
        };
        write!(f, "fault {what} at {:#010x} {}", self.address, crate::symbols::Describe(self.address))
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
    let active = control::with(cx, |kcb| kcb.current);
    let eip = regs.eip as usize;
    match active.status {
        Status::SingleStep | Status::Reenter => {
            // SAFETY: `site` was set from a live `&'static Site` when the step began.
            let site: &'static Site = unsafe { &*active.site };
            if !site.arch().slot_range().contains(&eip) {
                return FaultOutcome::NotMine(None);
            }
            regs.eip = site.address() as u32;
            regs.eflags = (regs.eflags & !(EFLAGS_TF | EFLAGS_IF)) | active.step.saved_flags;
            if active.status == Status::Reenter {
                // Back to the outer level, whose handler (if any) called the
                // code that faulted: its fault handler decides.
                control::with(cx, |kcb| kcb.current = kcb.previous);
                return match fault_handler(cx, regs) {
                    FaultOutcome::NotMine(None) => {
                        FaultOutcome::NotMine(Some(ProbeFault { place: FaultPlace::SingleStep, address: site.address() }))
                    }
                    outcome => outcome,
                };
            }
            fault_in_copy(cx, regs, site, FaultPlace::SingleStep)
        }
        Status::Handlers if !active.running.is_null() => {
            // SAFETY: `running` was set from a `&'static Kprobe`.
            let probe: &'static Kprobe = unsafe { &*active.running };
            if let Some(fault) = probe.fault_handler {
                if fault(probe, regs, regs.vector as u8) == FaultAction::Handled {
                    return FaultOutcome::Handled;
                }
            }
            FaultOutcome::NotMine(Some(ProbeFault { place: FaultPlace::Handler, address: probe.addr().unwrap_or(0) }))
        }
        Status::Idle => match registry::site_of_boost_entry(eip) {
            Some(site) => {
                // The boosted copy runs with the probed code's own flags.
                regs.eip = site.address() as u32;
                fault_in_copy(cx, regs, site, FaultPlace::Boosted)
            }
            None => FaultOutcome::NotMine(None),
        },
        _ => FaultOutcome::NotMine(None),
    }
}

/// A copy of `site`'s instruction faulted and `regs` already shows the
/// original instruction faulting: the fault handlers of the probes there
/// decide, in order, with the engine otherwise idle.
#[unsafe(link_section = ".kprobes.text")]
fn fault_in_copy(cx: &mut TrapContext, regs: &mut PtRegs, site: &'static Site, place: FaultPlace) -> FaultOutcome {
    set_current(cx, Active::handlers(site));
    for probe in site.probes().filter(|p| p.is_enabled()) {
        if let Some(fault) = probe.fault_handler {
            set_running(cx, probe);
            if fault(probe, regs, regs.vector as u8) == FaultAction::Handled {
                set_current(cx, Active::IDLE);
                return FaultOutcome::Handled;
            }
        }
    }
    set_current(cx, Active::IDLE);
    FaultOutcome::NotMine(Some(ProbeFault { place, address: site.address() }))
}

/// What the engine was doing when a fatal report began.
#[derive(Clone, Copy, Debug)]
pub struct ReportContext {
    status: Status,
    running: usize,
    site: usize,
}

/// Starts a fatal report: snapshots what the engine was doing, and from then
/// on every probe hit runs its instruction without handlers, so the report
/// (formatting, symbols, the unwinder) never runs user handlers or recurses.
#[unsafe(link_section = ".kprobes.text")]
pub fn begin_report() -> ReportContext {
    crate::arch::cpu::disable_interrupts();
    // SAFETY: interrupts are now off and stay off (a fatal report never
    // returns); this is engine code in `.kprobes.text`.
    let mut cx = unsafe { TrapContext::enter() };
    let active = control::with(&mut cx, |kcb| core::mem::replace(&mut kcb.current, Active { status: Status::Reporting, ..Active::IDLE }));
    // SAFETY: `running` is null or was set from a `&'static Kprobe`.
    let running = unsafe { active.running.as_ref() };
    // SAFETY: `site` is null or was set from a `&'static Site`.
    let site = unsafe { active.site.as_ref() };
    ReportContext {
        status: active.status,
        running: running.and_then(Kprobe::addr).unwrap_or(0),
        site: site.map_or(0, Site::address),
    }
}

impl ReportContext {
    /// Prints what the engine was doing (nothing if it was idle).
    pub fn print(&self) {
        let describe = crate::symbols::Describe;
        match self.status {
            Status::Handlers if self.running != 0 => {
                crate::println!("  while running a handler of the kprobe at {:#010x} {}", self.running, describe(self.running))
            }
            Status::Handlers => crate::println!("  while running kretprobe return handlers"),
            Status::SingleStep => {
                crate::println!("  while single-stepping the probed instruction at {:#010x} {}", self.site, describe(self.site))
            }
            Status::Reenter => crate::println!(
                "  while single-stepping the reentered probe at {:#010x} {} (a probe hit inside that step is an engine bug)",
                self.site, describe(self.site)
            ),
            Status::Idle | Status::Reporting => {}
        }
    }
}
