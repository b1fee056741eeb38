//! The boosted copy of a probed instruction: relocated to run elsewhere.
//!
//! A boosted probe runs a copy of its instruction in a slot and then jumps
//! straight back, with no single-step trap. The copy runs at another
//! address, so relative branches are re-encoded (`jmp`/`jcc` as rel32 to
//! the original target) and `call rel32` becomes `push <original return
//! address>; jmp target`, so the stacked return address is the true one.
//! Everything else is copied as it is, followed by `jmp` to the next
//! original instruction.
use crate::decode::{Fixup, Insn, MAX_INSN_LEN};

/// The longest relocated copy: an instruction and the jump back.
pub const MAX_RELOCATED_LEN: usize = MAX_INSN_LEN + 5;

/// A relocated copy: `bytes[..len]` is the code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Relocated {
    /// The code, padded with `int3`.
    pub bytes: [u8; MAX_RELOCATED_LEN],
    /// How many bytes are code.
    pub len: usize,
}

fn rel32(next_instruction: usize, target: u32) -> [u8; 4] {
    target.wrapping_sub(next_instruction as u32).to_le_bytes()
}

/// Appends `jmp rel32 target` at `code[at..]`, for code placed at `base`.
fn jump(code: &mut [u8], at: usize, base: usize, target: u32) -> usize {
    code[at] = 0xe9;
    code[at + 1..at + 5].copy_from_slice(&rel32(base + at + 5, target));
    at + 5
}

/// The boosted version of `insn` (originally at `address`) to run at `base`.
pub fn relocate(insn: &Insn, address: usize, base: usize) -> Relocated {
    let mut code = [0xcc; MAX_RELOCATED_LEN];
    let next = (address + insn.length) as u32;
    let len = match insn.fixup {
        Fixup::RelativeJump { target } => jump(&mut code, 0, base, target),
        Fixup::ConditionalJump { target, condition } => {
            code[0] = 0x0f;
            code[1] = 0x80 | condition;
            code[2..6].copy_from_slice(&rel32(base + 6, target));
            jump(&mut code, 6, base, next)
        }
        Fixup::RelativeCall { target } => {
            code[0] = 0x68; // push imm32: the original return address
            code[1..5].copy_from_slice(&next.to_le_bytes());
            jump(&mut code, 5, base, target)
        }
        _ => {
            code[..insn.length].copy_from_slice(&insn.bytes[..insn.length]);
            jump(&mut code, insn.length, base, next)
        }
    };
    Relocated { bytes: code, len }
}
