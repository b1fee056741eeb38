//! The i386 implementation of the architecture interface.
//!
//! - [`prepare`]: decode and classify the instruction at a probe address
//!   (registration time, with iced-x86), copy it into an instruction slot.
//! - [`arm`] / [`disarm`]: write or restore the `int3` byte.
//! - [`setup_single_step`] / [`resume_after_single_step`]: the trap-path
//!   halves of running the copy out of line, and the fix-ups afterwards.
//! - [`trampoline`]: the kretprobe return trampoline.
//! - [`text_poke_bp`]: the int3-guarded patch of one instruction.
pub mod cpu;
pub mod fastpath;
pub mod jprobe;
pub(crate) mod lane;
pub mod optprobe;
pub use probe_engine_core::decode;
pub mod regs;
pub mod slot;
pub mod step;
pub mod text_poke_bp;
pub mod trampoline;

pub use decode::{Fixup, Insn};
pub use slot::{ArchSite, prepare, release};
pub use step::{StepProgress, StepState, present_fault_at_original, resume_after_single_step, setup_single_step};

pub use regs::{CallingConvention, FRAME_SIZE, PtRegs, regs_get_kernel_argument};

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

/// The probed address an `int3` trap came from: the trap leaves EIP after
/// the one-byte `int3`.
#[unsafe(link_section = ".kprobes.text")]
#[inline(always)]
pub fn breakpoint_address(regs: &PtRegs) -> usize {
    regs.ip() - 1
}

/// Whether `address` (mapped code) holds a breakpoint instruction now.
#[unsafe(link_section = ".kprobes.text")]
#[inline(always)]
pub fn is_breakpoint(address: usize) -> bool {
    // SAFETY: callers pass the address an int3 trapped at: mapped code.
    unsafe { core::ptr::read_volatile(address as *const u8) == BREAKPOINT_INSTRUCTION }
}

/// Whether a debug trap, with this debug status (DR6), is a single-step's.
#[unsafe(link_section = ".kprobes.text")]
#[inline(always)]
pub fn is_single_step(debug_status: u32) -> bool {
    debug_status & cpu::DR6_SINGLE_STEP != 0
}

/// Where a function's return address is stacked, seen from a probe on its
/// first instruction: a kernel-mode trap on i386 pushes no ESP/SS, so the
/// slot is exactly where the interrupted ESP points.
#[unsafe(link_section = ".kprobes.text")]
#[inline(always)]
pub fn return_slot(regs: &PtRegs) -> usize {
    regs.sp()
}

/// In the kretprobe trampoline: the return slot of the call that just
/// returned with a plain `ret` (ESP is just above it).
#[unsafe(link_section = ".kprobes.text")]
#[inline(always)]
pub fn returned_slot(regs: &PtRegs) -> usize {
    regs.sp().wrapping_sub(4)
}

/// How much further than a plain `ret` a callee that pops its own
/// arguments (`ret imm16`) can leave ESP.
pub const MAX_CALLEE_POP: usize = 0xffff;

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
