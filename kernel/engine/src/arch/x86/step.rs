//! Running a probed instruction out of line, and repairing what the
//! different address broke (the trap-path half; decisions come from `decode`).
//!
//! Single-step: EIP goes to the slot copy with TF set and IF clear, so the
//! copy runs alone and traps right after. Then, from the [`Fixup`] decided at
//! registration:
//! - EIP is moved back from the slot to the original code, unless the
//!   instruction jumped to an absolute target (`ret`, `jmp`/`call` through a
//!   register or memory);
//! - a `call` pushed a return address into the slot: it becomes the address
//!   after the original instruction;
//! - `pushfd` pushed TF set and IF clear: they become the original code's;
//! - TF and IF go back to what the probed code had, except that `popfd`
//!   and `cli` keep the IF they produced, and `sti` (stepped as a `nop`)
//!   sets it;
//! - a `rep` string instruction traps after every iteration with EIP still
//!   at the copy: it is simply stepped again.
//!
//! Boost: EIP goes to the relocated version, which ends in a jump back; no
//! trap follows.
use super::decode::Fixup;
use super::slot::ArchSite;
use crate::arch::imp::PtRegs;
use crate::arch::imp::cpu::{EFLAGS_IF, EFLAGS_TF};

/// What the trap path keeps between the breakpoint and the single-step trap.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StepState {
    /// TF and IF as the probed code had them.
    pub saved_flags: u32,
}

/// Sends the trapped code to single-step the slot copy of `site`.
#[unsafe(link_section = ".kprobes.text")]
pub fn setup_single_step(frame: &mut PtRegs, site: &ArchSite) -> StepState {
    let saved_flags = frame.eflags & (EFLAGS_TF | EFLAGS_IF);
    frame.eflags = (frame.eflags | EFLAGS_TF) & !EFLAGS_IF;
    frame.eip = site.single_step_entry() as u32;
    StepState { saved_flags }
}

/// Sends the trapped code to the boosted version of `site` (no trap after).
#[unsafe(link_section = ".kprobes.text")]
pub fn setup_boost(frame: &mut PtRegs, site: &ArchSite) {
    frame.eip = site.boost_entry() as u32;
}

/// The copy of `site`'s instruction faulted (single-stepped or boosted):
/// makes the frame look as if the original instruction faulted — EIP at the
/// probe address, TF and IF as the probed code had them (`step`, or `None`
/// for a boosted copy, which runs with the probed code's own flags).
#[unsafe(link_section = ".kprobes.text")]
pub fn present_fault_at_original(frame: &mut PtRegs, site: &ArchSite, step: Option<StepState>) {
    frame.eip = site.address as u32;
    if let Some(step) = step {
        frame.eflags = (frame.eflags & !(EFLAGS_TF | EFLAGS_IF)) | step.saved_flags;
    }
}

/// Whether the single-step finished the instruction.
#[must_use]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StepProgress {
    /// Done; the frame now continues in the original code.
    Finished,
    /// A `rep` string instruction has iterations left; step again.
    Again,
}

/// Repairs the frame after the copy of `site` was single-stepped.
#[unsafe(link_section = ".kprobes.text")]
pub fn resume_after_single_step(frame: &mut PtRegs, site: &ArchSite, state: StepState) -> StepProgress {
    let fixup = site.insn.fixup;
    if fixup == Fixup::RepeatedString && frame.eip as usize == site.single_step_entry() {
        return StepProgress::Again;
    }
    let stack_top = frame.esp as *mut u32;
    if fixup.pushes_return_address() {
        // SAFETY: the call just pushed its return address at ESP.
        unsafe { stack_top.write(site.next_address() as u32) };
    }
    if fixup == Fixup::PushFlags {
        // SAFETY: pushfd just pushed EFLAGS at ESP.
        unsafe { stack_top.write((stack_top.read() & !(EFLAGS_TF | EFLAGS_IF)) | state.saved_flags) };
    }
    if fixup.slot_relative() {
        // Wrapping: a target below the slot (a backward branch, a call to
        // lower text) makes `eip - slot` negative.
        frame.eip = frame.eip.wrapping_sub(site.single_step_entry() as u32).wrapping_add(site.address as u32);
    }
    frame.eflags = (frame.eflags & !EFLAGS_TF) | (state.saved_flags & EFLAGS_TF);
    match fixup {
        Fixup::InterruptFlagWriter => {}
        Fixup::EnableInterrupts => frame.eflags |= EFLAGS_IF,
        _ => frame.eflags = (frame.eflags & !EFLAGS_IF) | (state.saved_flags & EFLAGS_IF),
    }
    StepProgress::Finished
}
