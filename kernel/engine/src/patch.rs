//! Patching one kernel instruction while other code may run it: the
//! public face of the architecture's int3-guarded `text_poke_bp`.
//!
//! The patch is checked as a probe address is (kernel text, a function,
//! not the engine's trap path, an instruction boundary), refused where a
//! probe is registered inside the instruction, and done under the
//! registration lock, so probes and patches never interleave. Registration
//! time only: task context, interrupts on, never from a probe handler.
use crate::arch::imp::text_poke_bp as arch;
pub use crate::arch::imp::text_poke_bp::TextPokeStage;
use crate::error::TextPokeError;
use crate::probe::Kprobe;
use crate::registry;

/// Replaces the instruction at `address` by `new`, one instruction of the
/// same length (up to 15 bytes), safely while any task or CPU executes it:
/// `int3` over the first byte, sync every CPU, the tail, sync, the first
/// byte, sync (Linux's `text_poke_bp`). Code that reaches the instruction
/// meanwhile runs the new one (an out-of-line copy). On error nothing
/// changed.
///
/// ```ignore
/// // `mov eax, 222` over a 5-byte `mov eax, 111`.
/// probe_engine::text_poke_bp(my_function as *const (), &[0xb8, 222, 0, 0, 0])?;
/// ```
pub fn text_poke_bp(address: *const (), new: &[u8]) -> Result<(), TextPokeError> {
    text_poke_bp_observed(address, new, &mut |_| {})
}

/// [`text_poke_bp`], calling `observe` at each stage where the patch is
/// half done ([`TextPokeStage`]: the guard `int3` in place, then the tail
/// written too), in task context with the registration lock held. For
/// tests: code called from `observe` hits the guard.
pub fn text_poke_bp_observed(
    address: *const (),
    new: &[u8],
    observe: &mut dyn FnMut(TextPokeStage),
) -> Result<(), TextPokeError> {
    let _registry = registry::lock().map_err(TextPokeError::Address)?;
    let (address, function) = registry::resolve(&Kprobe::new().address(address)).map_err(TextPokeError::Address)?;
    if (address..address + new.len().max(1))
        .any(|byte| registry::lookup(byte).is_some() || crate::optimize::jump_covering(byte).is_some())
    {
        return Err(TextPokeError::ProbeSite);
    }
    arch::text_poke_bp(address, new, function, registry::original_byte, registry::slot_in_use, observe)?;
    // The text changed: what registration cached of it is stale.
    registry::forget_decoded_text();
    Ok(())
}

/// How many times code hit the guard `int3` of a patch in progress (and
/// was sent to the new instruction).
pub fn text_poke_bp_guard_hits() -> usize {
    arch::guard_hits()
}
