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
    /// EFLAGS as the probed code had them; only TF and IF are read back
    /// (the step's own changes are to those two).
    pub saved_flags: u32,
}

/// Sends the trapped code to single-step the slot copy of `site`.
#[unsafe(link_section = ".kprobes.text")]
pub fn setup_single_step(frame: &mut PtRegs, site: &ArchSite) -> StepState {
    let saved_flags = frame.eflags;
    frame.eflags = (frame.eflags | EFLAGS_TF) & !EFLAGS_IF;
    frame.eip = site.single_step_entry() as u32;
    StepState { saved_flags }
}

/// The copy of `site`'s instruction faulted (single-stepped or boosted):
/// makes the frame look as if the original instruction faulted — EIP at the
/// probe address, TF and IF as the probed code had them (`step`, or `None`
/// for a boosted copy, which runs with the probed code's own flags).
#[unsafe(link_section = ".kprobes.text")]
pub fn present_fault_at_original(frame: &mut PtRegs, site: &ArchSite, step: Option<StepState>) {
    frame.eip = site.address as u32;
    if let Some(step) = step {
        frame.eflags = (frame.eflags & !(EFLAGS_TF | EFLAGS_IF)) | (step.saved_flags & (EFLAGS_TF | EFLAGS_IF));
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

/// What to write over the word the stepped instruction pushed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum StackRepair {
    /// Nothing was pushed, or nothing to repair.
    None,
    /// A `call`: the return address, as the original instruction's.
    ReturnAddress(u32),
    /// `pushfd`: TF and IF, as the probed code had them.
    Flags,
}

/// The single-step repair of one site, worked out from its [`Fixup`] at
/// registration, so the `#DB` half of a hit tests a few fields instead of
/// classifying the instruction again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StepPlan {
    /// Added to EIP (wrapping): from the slot back to the original code for
    /// slot-relative results, 0 for absolute targets (`ret`, `jmp`/`call`
    /// through a register or memory).
    eip_delta: u32,
    /// A `rep` string instruction: EIP still at the copy means step again.
    repeats: bool,
    stack: StackRepair,
    /// The EFLAGS bits that go back to the probed code's (TF, and IF unless
    /// the instruction decided IF itself).
    restored_flags: u32,
    /// The EFLAGS bits then set (IF for the emulated `sti`).
    set_flags: u32,
}

impl StepPlan {
    /// Whether the `#DB` half is only the EIP delta and the flags: no stack
    /// repair and no `rep` iterations (what the assembly lanes apply; the
    /// others take the Rust path).
    pub fn is_simple(&self) -> bool {
        self.stack == StackRepair::None && !self.repeats
    }
}

/// Where the assembly lanes find a site's single-step copy and plan
/// (checked by `offset_of!`).
pub(crate) mod layout {
    use super::super::slot::ArchSite;
    use super::StepPlan;
    use core::mem::offset_of;
    /// `ArchSite::slot`: the single-step copy.
    pub const SLOT: usize = offset_of!(ArchSite, slot);
    /// `StepPlan::eip_delta`.
    pub const EIP_DELTA: usize = offset_of!(ArchSite, step) + offset_of!(StepPlan, eip_delta);
    /// `StepPlan::restored_flags`.
    pub const RESTORED_FLAGS: usize = offset_of!(ArchSite, step) + offset_of!(StepPlan, restored_flags);
    /// `StepPlan::set_flags`.
    pub const SET_FLAGS: usize = offset_of!(ArchSite, step) + offset_of!(StepPlan, set_flags);
}

impl StepPlan {
    /// The plan for `insn`, probed at `address`, stepped in `slot`.
    pub fn new(insn: &super::decode::Insn, address: usize, slot: usize) -> StepPlan {
        let fixup = insn.fixup;
        StepPlan {
            eip_delta: if fixup.slot_relative() { (address as u32).wrapping_sub(slot as u32) } else { 0 },
            repeats: fixup == Fixup::RepeatedString,
            stack: match fixup {
                _ if fixup.pushes_return_address() => StackRepair::ReturnAddress((address + insn.length) as u32),
                Fixup::PushFlags => StackRepair::Flags,
                _ => StackRepair::None,
            },
            restored_flags: match fixup {
                Fixup::InterruptFlagWriter | Fixup::EnableInterrupts => EFLAGS_TF,
                _ => EFLAGS_TF | EFLAGS_IF,
            },
            set_flags: if fixup == Fixup::EnableInterrupts { EFLAGS_IF } else { 0 },
        }
    }
}

/// Repairs the frame after the copy of `site` was single-stepped, from the
/// site's precomputed [`StepPlan`].
#[unsafe(link_section = ".kprobes.text")]
#[inline(always)]
pub fn resume_after_single_step(frame: &mut PtRegs, site: &ArchSite, state: StepState) -> StepProgress {
    let plan = &site.step;
    if plan.repeats && frame.eip as usize == site.single_step_entry() {
        return StepProgress::Again;
    }
    let stack_top = frame.esp as *mut u32;
    match plan.stack {
        StackRepair::None => {}
        // SAFETY: the call just pushed its return address at ESP.
        StackRepair::ReturnAddress(next) => unsafe { stack_top.write(next) },
        // SAFETY: pushfd just pushed EFLAGS at ESP.
        StackRepair::Flags => unsafe {
            stack_top
                .write((stack_top.read() & !(EFLAGS_TF | EFLAGS_IF)) | (state.saved_flags & (EFLAGS_TF | EFLAGS_IF)))
        },
    }
    // Wrapping: a target below the slot (a backward branch, a call to
    // lower text) makes `eip - slot` negative.
    frame.eip = frame.eip.wrapping_add(plan.eip_delta);
    frame.eflags = (frame.eflags & !plan.restored_flags) | (state.saved_flags & plan.restored_flags) | plan.set_flags;
    StepProgress::Finished
}
