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
//! nothing, decodes nothing, and lives in `.kprobes.text`.
use super::control::{self, Active, Status};
use super::probe::{FaultAction, Kprobe, PreAction, ProbeKind, PtRegs};
use super::registry::{self, Site};
use super::{jprobe, kretprobe};
use crate::arch::cpu::{DR6_SINGLE_STEP, EFLAGS_IF, EFLAGS_TF};
use crate::arch::x86::kprobes::{self as arch, StepProgress, BREAKPOINT_INSTRUCTION};
use crate::arch::TrapOutcome;
use crate::println;
use core::sync::atomic::{AtomicUsize, Ordering};

/// What the last unrecoverable fault inside probe handling was, for the report.
static FAULT_NOTE_ADDRESS: AtomicUsize = AtomicUsize::new(0);
static FAULT_NOTE_KIND: AtomicUsize = AtomicUsize::new(0);
const NOTE_IN_HANDLER: usize = 1;
const NOTE_IN_STEP: usize = 2;
const NOTE_IN_BOOST: usize = 3;

#[unsafe(link_section = ".kprobes.text")]
fn set_current(active: Active) {
    control::with(|kcb| kcb.current = active);
}

#[unsafe(link_section = ".kprobes.text")]
fn set_running(probe: &Kprobe) {
    control::with(|kcb| kcb.current.running = probe);
}

/// `#BP`: is this one of ours?
#[unsafe(link_section = ".kprobes.text")]
pub fn int3_handler(regs: &mut PtRegs) -> TrapOutcome {
    let address = regs.eip as usize - 1;
    let Some(site) = registry::lookup(address) else {
        return not_a_site(regs, address);
    };
    let outer = control::with(|kcb| kcb.current);
    match outer.status {
        Status::Idle => {}
        Status::Handlers | Status::SingleStep => {
            reenter(regs, site, outer);
            return TrapOutcome::Handled;
        }
        Status::Reenter => {
            println!("\n!!! kprobes: probe at {address:#x} hit while stepping a reentered probe");
            return TrapOutcome::NotMine;
        }
    }
    regs.eip = address as u32;
    set_current(Active { status: Status::Handlers, site, running: core::ptr::null(), step: Default::default() });
    for probe in site.probes() {
        if !probe.is_enabled() {
            continue;
        }
        set_running(probe);
        let action = match probe.kind {
            ProbeKind::Plain => probe.pre_handler.map_or(PreAction::Continue, |pre| pre(probe, regs)),
            ProbeKind::Kretprobe => {
                kretprobe::on_entry(probe, regs);
                PreAction::Continue
            }
            ProbeKind::Jprobe => {
                jprobe::setjmp(probe, regs);
                // The jprobe handler runs next, in the probed context; the
                // hit goes on when it calls `jprobe_return`.
                return TrapOutcome::Handled;
            }
        };
        if action == PreAction::Redirected {
            set_current(Active::IDLE);
            return TrapOutcome::Handled;
        }
    }
    run_instruction(regs, site);
    TrapOutcome::Handled
}

/// An `int3` at no registered site: `jprobe_return`'s, a probe removed
/// while its trap was in flight, or not ours.
#[unsafe(link_section = ".kprobes.text")]
fn not_a_site(regs: &mut PtRegs, address: usize) -> TrapOutcome {
    if jprobe::is_return_breakpoint(address) {
        return jprobe::longjmp(regs);
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
pub(crate) fn run_instruction(regs: &mut PtRegs, site: &'static Site) {
    if site.boosted() {
        arch::setup_boost(regs, site.arch());
        set_current(Active::IDLE);
    } else {
        let step = arch::setup_single_step(regs, site.arch());
        set_current(Active { status: Status::SingleStep, site, running: core::ptr::null(), step });
    }
}

#[unsafe(link_section = ".kprobes.text")]
fn reenter(regs: &mut PtRegs, site: &'static Site, outer: Active) {
    site.count_miss();
    regs.eip = site.address() as u32;
    let step = arch::setup_single_step(regs, site.arch());
    control::with(|kcb| {
        kcb.previous = outer;
        kcb.current = Active { status: Status::Reenter, site, running: core::ptr::null(), step };
    });
}

/// `#DB`: the single-step of a probed instruction finished.
#[unsafe(link_section = ".kprobes.text")]
pub fn debug_handler(regs: &mut PtRegs, dr6: u32) -> TrapOutcome {
    let active = control::with(|kcb| kcb.current);
    if !matches!(active.status, Status::SingleStep | Status::Reenter) || dr6 & DR6_SINGLE_STEP == 0 {
        return TrapOutcome::NotMine;
    }
    // SAFETY: `site` was set from a live `&'static Site` when the step began.
    let site: &'static Site = unsafe { &*active.site };
    if arch::resume_after_single_step(regs, site.arch(), active.step) == StepProgress::Again {
        return TrapOutcome::Handled;
    }
    if active.status == Status::Reenter {
        control::with(|kcb| kcb.current = kcb.previous);
        return TrapOutcome::Handled;
    }
    set_current(Active { status: Status::Handlers, ..active });
    for probe in site.probes() {
        if let (true, Some(post)) = (probe.is_enabled(), probe.post_handler) {
            set_running(probe);
            post(probe, regs);
        }
    }
    set_current(Active::IDLE);
    TrapOutcome::Handled
}

/// Any other exception: did it happen inside probe handling?
#[unsafe(link_section = ".kprobes.text")]
pub fn fault_handler(regs: &mut PtRegs) -> TrapOutcome {
    let active = control::with(|kcb| kcb.current);
    let trap = regs.vector as u8;
    match active.status {
        Status::SingleStep | Status::Reenter => {
            // SAFETY: `site` was set from a live `&'static Site` when the step began.
            let site: &'static Site = unsafe { &*active.site };
            if !site.arch().slot_range().contains(&(regs.eip as usize)) {
                return TrapOutcome::NotMine;
            }
            if active.status == Status::SingleStep {
                for probe in site.probes().filter(|p| p.is_enabled()) {
                    if let Some(fault) = probe.fault_handler {
                        set_running(probe);
                        if fault(probe, regs, trap) == FaultAction::Handled {
                            set_current(Active::IDLE);
                            return TrapOutcome::Handled;
                        }
                    }
                }
            }
            // Make it look as if the original instruction faulted.
            regs.eip = site.address() as u32;
            regs.eflags = (regs.eflags & !(EFLAGS_TF | EFLAGS_IF)) | active.step.saved_flags;
            control::with(|kcb| kcb.current = if active.status == Status::Reenter { kcb.previous } else { Active::IDLE });
            note(NOTE_IN_STEP, site.address());
            TrapOutcome::NotMine
        }
        Status::Handlers if !active.running.is_null() => {
            // SAFETY: `running` was set from a `&'static Kprobe`.
            let probe: &'static Kprobe = unsafe { &*active.running };
            if let Some(fault) = probe.fault_handler {
                if fault(probe, regs, trap) == FaultAction::Handled {
                    return TrapOutcome::Handled;
                }
            }
            note(NOTE_IN_HANDLER, probe.addr().unwrap_or(0));
            TrapOutcome::NotMine
        }
        _ => {
            let eip = regs.eip as usize;
            let in_slot = crate::memory::slots::region().contains(&eip); // cheap filter first
            if let Some(site) = in_slot.then(|| registry::site_of_slot(eip)).flatten() {
                // A boosted copy faulted: report it at the original address.
                if eip == site.arch().boost_entry() {
                    regs.eip = site.address() as u32;
                }
                note(NOTE_IN_BOOST, site.address());
            }
            TrapOutcome::NotMine
        }
    }
}

#[unsafe(link_section = ".kprobes.text")]
fn note(kind: usize, address: usize) {
    FAULT_NOTE_ADDRESS.store(address, Ordering::SeqCst);
    FAULT_NOTE_KIND.store(kind, Ordering::SeqCst);
}

/// For fatal reports: which probe the failure belongs to, if any.
pub fn report_context() {
    let address = FAULT_NOTE_ADDRESS.load(Ordering::SeqCst);
    let what = match FAULT_NOTE_KIND.load(Ordering::SeqCst) {
        NOTE_IN_HANDLER => "in a handler of the kprobe",
        NOTE_IN_STEP => "while single-stepping the probed instruction of the kprobe",
        NOTE_IN_BOOST => "in the boosted copy of the instruction of the kprobe",
        _ => {
            let active = control::with(|kcb| kcb.current);
            if active.status != Status::Idle && !active.running.is_null() {
                // SAFETY: `running` was set from a `&'static Kprobe`.
                let probe = unsafe { &*active.running };
                let address = probe.addr().unwrap_or(0);
                println!("  while running a handler of the kprobe at {address:#010x} {}",
                    crate::symbols::Describe(address));
            }
            return;
        }
    };
    println!("  fault {what} at {address:#010x} {}", crate::symbols::Describe(address));
}
