//! Whether a probe may be jump-optimized, and the detour's copy of the code
//! the jump displaces (registration time only).
//!
//! An optimized probe replaces the instructions at its address with a
//! 5-byte `jmp rel32` to a detour buffer, as Linux's optprobes do
//! (`arch/x86/kernel/kprobes/opt.c`). That is safe only where nothing can
//! run the displaced bytes as they are any more, so [`analyze`] applies
//! Linux's conditions (`can_optimize`), over the whole function:
//!
//! - the jump's five bytes cover whole instructions and lie inside the
//!   function;
//! - every displaced instruction can run, relocated, in the detour (what a
//!   boosted probe could run), and only the last may transfer control;
//! - no direct jump or call anywhere in the function targets the inside of
//!   the range (it would land in the middle of the `jmp`);
//! - the function has no indirect jump (a jump table), whose targets are
//!   unknown and could be inside the range.
//!
//! Whether other probes lie in the range, and whether the probes at the
//! address allow it (no post or fault handlers), is the engine's to check.
use crate::decode::{Fixup, Insn, MAX_INSN_LEN, NOP_INSN, decode_one};
use crate::relocate::relocate;
use core::ops::Range;
use iced_x86::{Decoder, DecoderOptions, FlowControl};

/// The length of the jump that replaces the probed instructions.
pub const JUMP_LEN: usize = 5;

/// The most instructions a jump can displace (five one-byte ones).
pub const MAX_DISPLACED: usize = JUMP_LEN;

/// The longest relocated copy of the displaced instructions, with the jump
/// back: four one-byte instructions and a 15-byte one, or a relocated
/// branch at the end (a `jcc rel8` grows to `jcc rel32` plus a jump).
pub const MAX_DISPLACED_COPY: usize = JUMP_LEN - 1 + MAX_INSN_LEN + JUMP_LEN;

/// Why a probe cannot be jump-optimized.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OptimizeRefusal {
    /// The jump would not fit inside the function.
    PastFunctionEnd,
    /// The displaced instruction at `at` cannot run in the detour: it could
    /// not be boosted, or it transfers control before the last.
    Unrelocatable {
        /// Its address.
        at: usize,
    },
    /// The jump or call at `from` targets the inside of the range.
    JumpIntoRange {
        /// The branch's address.
        from: usize,
    },
    /// The function has an indirect jump at `at`, whose targets are unknown.
    IndirectJump {
        /// Its address.
        at: usize,
    },
    /// The instruction at `at` does not decode (so the function's jumps
    /// cannot all be known), or `at` is not an instruction boundary.
    Undecodable {
        /// Its address.
        at: usize,
    },
}

/// The instructions a jump at `address` displaces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Displaced {
    /// The probed address.
    pub address: usize,
    /// The instructions, in order (`count` of them).
    pub insns: [Insn; MAX_DISPLACED],
    /// How many instructions.
    pub count: usize,
    /// Their total length, at least [`JUMP_LEN`]: where the jump back goes
    /// is `address + length`.
    pub length: usize,
}

impl Displaced {
    /// The displaced range of the original code.
    pub fn range(&self) -> Range<usize> {
        self.address..self.address + self.length
    }

    /// The copy of the displaced instructions relocated to run at `base`,
    /// ending in a jump back to `address + length` (or, for a final
    /// branch, to wherever it goes): `(bytes, len)`.
    pub fn relocated(&self, base: usize) -> ([u8; MAX_DISPLACED_COPY], usize) {
        let mut code = [0xcc; MAX_DISPLACED_COPY];
        let mut at = 0;
        let mut original = self.address;
        for insn in &self.insns[..self.count - 1] {
            code[at..at + insn.length].copy_from_slice(&insn.bytes[..insn.length]);
            at += insn.length;
            original += insn.length;
        }
        let last = relocate(&self.insns[self.count - 1], original, base + at);
        code[at..at + last.len].copy_from_slice(&last.bytes[..last.len]);
        (code, at + last.len)
    }

    /// The original byte at `address`, if the jump displaced it.
    pub fn original_byte(&self, address: usize) -> Option<u8> {
        let mut start = self.address;
        for insn in &self.insns[..self.count] {
            if (start..start + insn.length).contains(&address) {
                return Some(insn.bytes[address - start]);
            }
            start += insn.length;
        }
        None
    }

    /// Where in the original code the copy's byte `offset` came from (for
    /// presenting a fault in the copy at the original instruction).
    pub fn original_of(&self, offset: usize) -> usize {
        let mut start = 0;
        let mut original = self.address;
        for insn in &self.insns[..self.count] {
            if offset < start + insn.length {
                break;
            }
            start += insn.length;
            original += insn.length;
        }
        original.min(self.address + self.length - self.insns[self.count - 1].length)
    }
}

/// Reads the original bytes at `ip` into a window that ends at `end`.
fn window(ip: usize, end: usize, read_original: &impl Fn(usize) -> u8) -> ([u8; MAX_INSN_LEN], usize) {
    let mut bytes = [0u8; MAX_INSN_LEN];
    let available = end.saturating_sub(ip).min(MAX_INSN_LEN);
    for (offset, byte) in bytes[..available].iter_mut().enumerate() {
        *byte = read_original(ip + offset);
    }
    (bytes, available)
}

/// What a walk of the function already knows, so [`analyze`] need not
/// decode all of it again for every probe (`InstructionStarts`).
pub struct Facts<'a, const WORDS: usize>(pub &'a crate::decode::InstructionStarts<WORDS>);

/// Linux's `can_optimize` for a probe at `address` in `function`, over the
/// original bytes `read_original` gives (armed breakpoints and jumps
/// undone). `facts`, a complete walk of the function, answers the
/// whole-function questions at once (which addresses start instructions,
/// which are branch targets, whether it jumps indirectly); without it the
/// function is decoded once here. Registration time only; allocates
/// nothing.
pub fn analyze<const WORDS: usize>(
    address: usize,
    function: Range<usize>,
    facts: Option<Facts<'_, WORDS>>,
    read_original: impl Fn(usize) -> u8,
) -> Result<Displaced, OptimizeRefusal> {
    if address + JUMP_LEN > function.end {
        return Err(OptimizeRefusal::PastFunctionEnd);
    }
    let facts = facts.filter(|facts| facts.0.function() == function && facts.0.complete());
    if facts.as_ref().is_some_and(|facts| !facts.0.is_start(address)) {
        return Err(OptimizeRefusal::Undecodable { at: address });
    }
    let displaced = displaced_at(address, &function, &read_original)?;
    let inside = address + 1..address + displaced.length;
    if let Some(Facts(walk)) = facts
        && walk.indirect_jump().is_none()
        && !walk.targets_inside(inside.clone())
    {
        return Ok(displaced);
    }
    // No walk to ask, or it knows of a problem: find the first one by
    // address by decoding the whole function, so the reason given never
    // depends on whether a walk was at hand.
    scan(&function, &inside, &read_original)?;
    Ok(displaced)
}

/// The instructions a jump at `address` would displace, each checked.
fn displaced_at(
    address: usize,
    function: &Range<usize>,
    read_original: &impl Fn(usize) -> u8,
) -> Result<Displaced, OptimizeRefusal> {
    let mut displaced = Displaced { address, insns: [NOP_INSN; MAX_DISPLACED], count: 0, length: 0 };
    while displaced.length < JUMP_LEN {
        let ip = address + displaced.length;
        let (bytes, available) = window(ip, function.end, read_original);
        let insn = decode_one(&bytes[..available], ip).map_err(|_| OptimizeRefusal::Undecodable { at: ip })?;
        if !insn.fixup.boostable() {
            return Err(OptimizeRefusal::Unrelocatable { at: ip });
        }
        displaced.insns[displaced.count] = insn;
        displaced.count += 1;
        displaced.length += insn.length;
        if transfers_control(insn.fixup) && displaced.length < JUMP_LEN {
            // Control leaves here, and the bytes after it up to the end of
            // the jump belong to other code (reached by a jump, or padding).
            return Err(OptimizeRefusal::Unrelocatable { at: ip });
        }
    }
    if address + displaced.length > function.end {
        return Err(OptimizeRefusal::PastFunctionEnd);
    }
    Ok(displaced)
}

/// Decodes the whole function: refuses an undecodable instruction, an
/// indirect jump, or a direct branch into `inside`.
fn scan(
    function: &Range<usize>,
    inside: &Range<usize>,
    read_original: &impl Fn(usize) -> u8,
) -> Result<(), OptimizeRefusal> {
    let mut ip = function.start;
    while ip < function.end {
        let (bytes, available) = window(ip, function.end, read_original);
        let insn = Decoder::with_ip(32, &bytes[..available], ip as u64, DecoderOptions::NONE).decode();
        if insn.is_invalid() {
            return Err(OptimizeRefusal::Undecodable { at: ip });
        }
        match insn.flow_control() {
            FlowControl::IndirectBranch => return Err(OptimizeRefusal::IndirectJump { at: ip }),
            FlowControl::UnconditionalBranch | FlowControl::ConditionalBranch | FlowControl::Call
                if inside.contains(&(insn.near_branch_target() as usize)) =>
            {
                return Err(OptimizeRefusal::JumpIntoRange { from: ip });
            }
            _ => {}
        }
        ip += insn.len();
    }
    Ok(())
}

/// Whether an instruction of this class may send control elsewhere than
/// the next instruction (then it must be the last one displaced).
fn transfers_control(fixup: Fixup) -> bool {
    !matches!(fixup, Fixup::Plain | Fixup::PushFlags | Fixup::RepeatedString)
}
