//! The int3-guarded multi-byte text patch (Linux's `text_poke_bp`,
//! `arch/x86/kernel/alternative.c`): one instruction of up to 15 bytes
//! replaced by another single instruction of the same length, while other
//! CPUs and preempted tasks may be executing it.
//!
//! Writing several bytes is not atomic for a CPU fetching them, so the
//! instruction is never visible half old, half new:
//!
//! 1. `int3` over the first byte, then sync every CPU: from now on no CPU
//!    starts the instruction, every one that gets there traps;
//! 2. the tail (bytes 1..), then sync: nobody executes those bytes, since
//!    the only instruction boundary among them is the guarded first byte;
//! 3. the new first byte, then sync: every CPU now fetches the new
//!    instruction whole.
//!
//! A CPU (or task) that hits the guard `int3` meanwhile is sent to the NEW
//! instruction's semantics: [`guarded_resume`], which the `int3` handler
//! asks before it looks up probe sites (one load and compare), moves it to
//! an out-of-line copy of the new instruction in an instruction slot,
//! relocated with the engine's boost relocation (`jmp`/`jcc` rel32 to the
//! original target, `call rel32` as `push` of the original return address
//! and `jmp`) and followed by a `jmp` back to `address + len`. That is one
//! mechanism for every instruction the relocation handles, where emulating
//! `jmp` and `call` (as Linux does for its own patch sites) would cover
//! only those and not, say, the `mov eax, imm32` that a toggled constant
//! is. The copy runs with the trapped code's own flags, like a boosted
//! probe's; a task may be preempted inside it, so its slot is freed after
//! the last sync only when no task or CPU may resume there, else it waits
//! as garbage.
//!
//! Decided before anything is written (never on the trap path): the old
//! instruction decodes at an instruction boundary of its function, the new
//! bytes decode as exactly one instruction of the same length, and it can
//! run relocated out of line (the engine's boostable classes).
use super::BREAKPOINT_INSTRUCTION;
use super::decode::{self, Refusal};
use crate::error::{KprobeError, TextPokeError};
use crate::host::text_poke;
use crate::quiesce::text_poke_sync;
use crate::slots;
use core::ops::Range;
use core::sync::atomic::{AtomicUsize, Ordering};
use probe_engine_core::relocate::relocate;

/// Where a `text_poke_bp` has stopped, for [`text_poke_bp`]'s observer
/// (tests hold the patch there and call the code under it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TextPokeStage {
    /// The first byte is `int3` and every CPU has seen it; the tail is
    /// still the old instruction's.
    Guarded,
    /// The tail is the new instruction's, the first byte still `int3`.
    TailWritten,
}

/// The guarded address while a patch is in progress, else 0.
pub(crate) static GUARDED: AtomicUsize = AtomicUsize::new(0);
/// Where a hit on the guard resumes: the out-of-line copy.
static RESUME: AtomicUsize = AtomicUsize::new(0);
/// Hits on a guard `int3`, ever (for tests and the shell).
static GUARD_HITS: AtomicUsize = AtomicUsize::new(0);

/// Trap path, before the site lookup: if the `int3` at `address` is the
/// guard of a patch in progress, where the trapped code resumes (the
/// out-of-line copy of the new instruction). O(1).
#[unsafe(link_section = ".kprobes.text")]
#[inline(always)]
pub fn guarded_resume(address: usize) -> Option<usize> {
    // Acquire: RESUME was stored before GUARDED (release), both before the
    // int3 was written.
    if GUARDED.load(Ordering::Acquire) != address || address == 0 {
        return None;
    }
    GUARD_HITS.fetch_add(1, Ordering::Relaxed);
    Some(RESUME.load(Ordering::Acquire))
}

/// How many times code hit the guard `int3` of a patch in progress.
pub fn guard_hits() -> usize {
    GUARD_HITS.load(Ordering::Relaxed)
}

/// Replaces the instruction at `address` (an instruction boundary of
/// `function`, whose original bytes `read_original` gives) by `new`, one
/// instruction of the same length, guarded by `int3` as the module docs
/// say. `observe` runs after stages 1 and 2 (in task context, interrupts
/// on). The caller holds the registration lock, has checked `address` as
/// a probe address (text, blacklist) and that no probe site lies in the
/// instruction; `slot_in_use` is `Host::task_may_resume_in`.
pub fn text_poke_bp(
    address: usize,
    new: &[u8],
    function: Range<usize>,
    read_original: impl Fn(usize) -> u8,
    slot_in_use: impl Fn(Range<usize>) -> bool,
    observe: &mut dyn FnMut(TextPokeStage),
) -> Result<(), TextPokeError> {
    let old = decode::decode_in_function(address, function, read_original).map_err(|refusal| {
        TextPokeError::Address(match refusal {
            Refusal::Invalid => KprobeError::InvalidInstruction,
            Refusal::NotBoundary => KprobeError::NotInstructionBoundary,
            Refusal::Unsupported(why) => KprobeError::UnsupportedInstruction(why),
        })
    })?;
    let insn = match decode::decode_one(new, address) {
        Ok(insn) if insn.length == new.len() => insn,
        Ok(insn) => return Err(TextPokeError::NotOneInstruction { decoded: insn.length }),
        Err(Refusal::Invalid | Refusal::NotBoundary) => return Err(TextPokeError::NotOneInstruction { decoded: 0 }),
        Err(Refusal::Unsupported(why)) => return Err(TextPokeError::NotRelocatable(why)),
    };
    if old.length != insn.length {
        return Err(TextPokeError::LengthMismatch { old: old.length, new: insn.length });
    }
    if !insn.fixup.boostable() {
        return Err(TextPokeError::NotRelocatable(
            "its out-of-line copy would need a single-step fix-up (indirect call, loop/jecxz, cli/sti/popf)",
        ));
    }
    let slot = slots::allocate(slots::Kind::Instruction, &slot_in_use).ok_or(TextPokeError::NoSlot)?;
    let copy = relocate(&insn, address, slot);
    // SAFETY: the slot was just allocated to us; nothing executes it yet.
    unsafe { slots::write(slot, &copy.bytes[..copy.len]) };
    RESUME.store(slot, Ordering::Release);
    GUARDED.store(address, Ordering::Release);

    // The address lies in kernel text (checked by the caller), so no poke
    // below can be refused.
    // SAFETY: stage 1 writes int3 over an instruction boundary (decoded
    // above); a CPU that reaches it traps and is sent to the copy.
    unsafe { text_poke(address, &[BREAKPOINT_INSTRUCTION]) }.expect("patch address left kernel text");
    text_poke_sync();
    observe(TextPokeStage::Guarded);
    if new.len() > 1 {
        // SAFETY: stage 2 writes bytes no CPU executes: every CPU has seen
        // the guard (the sync above), and the only instruction boundary in
        // the old instruction is its guarded first byte.
        unsafe { text_poke(address + 1, &new[1..]) }.expect("patch address left kernel text");
        text_poke_sync();
    }
    observe(TextPokeStage::TailWritten);
    // SAFETY: stage 3 completes the new instruction, whose tail every CPU
    // has seen (the sync above): it is never fetched half old, half new.
    unsafe { text_poke(address, &new[..1]) }.expect("patch address left kernel text");
    text_poke_sync();

    // Every CPU has left any trap on the guard (the sync above), and none
    // can hit it again; what may remain is code inside the copy.
    GUARDED.store(0, Ordering::Release);
    slots::free(slot, slot_in_use);
    Ok(())
}
