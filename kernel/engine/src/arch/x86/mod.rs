//! The i386 implementation of the architecture interface.
//!
//! - [`prepare`]: decode and classify the instruction at a probe address
//!   (registration time, with iced-x86), copy it into an instruction slot.
//! - [`arm`] / [`disarm`]: write or restore the `int3` byte.
//! - [`setup_single_step`] / [`resume_after_single_step`]: the trap-path
//!   halves of running the copy out of line, and the fix-ups afterwards.
//! - [`trampoline`]: the kretprobe return trampoline.
pub mod cpu;
pub use probe_engine_core::decode;
pub mod regs;
pub mod slot;
pub mod step;
pub mod trampoline;

pub use decode::{Fixup, Insn};
pub use slot::{ArchSite, prepare, release};
pub use step::{StepProgress, StepState, resume_after_single_step, setup_boost, setup_single_step};

pub use regs::{FRAME_SIZE, PtRegs};

use crate::host::{PatchError, text_poke};

/// What a trap hook did with a trap.
#[must_use]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TrapOutcome {
    /// Dealt with; resume the (possibly modified) frame.
    Handled,
    /// Not this handler's business; try the next one.
    NotMine,
}

/// The breakpoint opcode.
pub const BREAKPOINT_INSTRUCTION: u8 = 0xcc;

/// Writes `int3` over the first byte of the probed instruction.
pub fn arm(site: &ArchSite) -> Result<(), PatchError> {
    // SAFETY: one byte at an instruction boundary (checked at `prepare`)
    // becomes int3; every other instruction stays intact, and a task that
    // is preempted before this instruction will trap on it and be handled.
    unsafe { text_poke(site.address, &[BREAKPOINT_INSTRUCTION]) }
}

/// Restores the original first byte of the probed instruction.
pub fn disarm(site: &ArchSite) -> Result<(), PatchError> {
    // SAFETY: puts back exactly the byte `prepare` saved from this address.
    unsafe { text_poke(site.address, &site.insn.bytes[..1]) }
}
