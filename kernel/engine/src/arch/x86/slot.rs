//! Instruction slots for probed instructions: what goes into one.
//!
//! Each slot holds two versions of the probed instruction:
//!
//! ```text
//!   slot + 0:   the original bytes, unchanged      (single-stepped with TF;
//!               relative targets are fixed up afterwards from EIP)
//!   slot + 16:  the boosted version: the instruction relocated to run at
//!               this address, followed by `jmp` back to the next original
//!               instruction — no trap needed
//! ```
//!
//! Relocation for boosting: `jmp`/`jcc` are re-encoded with rel32 to the
//! original target; `call rel32` becomes `push <original return>; jmp target`,
//! so the stacked return address is the true one.
use super::decode::{Fixup, Insn, MAX_INSN_LEN, Refusal};
use crate::slots::{self, SLOT_SIZE};
use core::ops::Range;
use probe_engine_core::relocate::{MAX_RELOCATED_LEN, relocate};

const NOP: u8 = 0x90;

/// Offset of the boosted version inside a slot.
pub const BOOST_OFFSET: usize = 16;
const _: () = assert!(BOOST_OFFSET >= MAX_INSN_LEN && BOOST_OFFSET + MAX_RELOCATED_LEN <= SLOT_SIZE);

/// Everything the trap path needs to know about one probed address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArchSite {
    /// The probed address.
    pub address: usize,
    /// The decoded original instruction.
    pub insn: Insn,
    /// The slot's address.
    pub slot: usize,
    /// The single-step repair, worked out from `insn` once, here.
    pub step: super::step::StepPlan,
}

impl ArchSite {
    /// Where the single-step copy starts.
    pub fn single_step_entry(&self) -> usize {
        self.slot
    }

    /// Where the boosted version starts.
    pub fn boost_entry(&self) -> usize {
        self.slot + BOOST_OFFSET
    }

    /// The address after the original instruction.
    pub fn next_address(&self) -> usize {
        self.address + self.insn.length
    }

    /// The first byte of the original instruction (what an armed
    /// breakpoint covers).
    pub fn original_first_byte(&self) -> u8 {
        self.insn.bytes[0]
    }

    /// Whether the instruction may run boosted (a relocated copy and a jump
    /// back, no single-step trap).
    pub fn boostable(&self) -> bool {
        self.insn.fixup.boostable()
    }

    /// The slot's bytes.
    pub fn slot_range(&self) -> Range<usize> {
        self.slot..self.slot + SLOT_SIZE
    }
}

/// Why `prepare` failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PrepareError {
    /// The instruction cannot be probed.
    Refused(Refusal),
    /// Every slot is taken.
    NoSlot,
}

/// `pause` (`rep nop`), and the 2-byte `nop` (`xchg ax, ax`) its single-step copy runs.
const PAUSE: [u8; 2] = [0xf3, 0x90];
const TWO_BYTE_NOP: [u8; 2] = [0x66, 0x90];

/// Takes a slot for `insn`, the instruction decoded at `address` (from its
/// original bytes: armed breakpoints undone), and fills it. Registration
/// time only.
pub fn prepare(
    address: usize,
    insn: Result<Insn, Refusal>,
    slot_in_use: impl Fn(Range<usize>) -> bool,
) -> Result<ArchSite, PrepareError> {
    let insn = insn.map_err(PrepareError::Refused)?;
    let slot = slots::allocate(slots::Kind::Instruction, slot_in_use).ok_or(PrepareError::NoSlot)?;
    let boosted = relocate(&insn, address, slot + BOOST_OFFSET);
    let mut image = [0xcc; SLOT_SIZE];
    image[..insn.length].copy_from_slice(&insn.bytes[..insn.length]);
    if insn.fixup == Fixup::EnableInterrupts {
        image[..insn.length].fill(NOP); // emulated: see `Fixup::EnableInterrupts`
    }
    if insn.bytes[..insn.length] == PAUSE {
        // `pause` is a `nop` with a spin-loop hint, but QEMU's TCG leaves
        // the CPU loop right after it and loses the single-step trap, so
        // the step would run on into the slot's padding: step the 2-byte
        // `nop` instead (the boosted copy keeps the real `pause`).
        image[..PAUSE.len()].copy_from_slice(&TWO_BYTE_NOP);
    }
    image[BOOST_OFFSET..BOOST_OFFSET + boosted.len].copy_from_slice(&boosted.bytes[..boosted.len]);
    // SAFETY: the slot was just allocated to us; nobody executes it yet.
    unsafe { slots::write(slot, &image) };
    Ok(ArchSite { address, insn, slot, step: super::step::StepPlan::new(&insn, address, slot) })
}

/// Gives the slot back (it is reused only once no task can be running in it).
pub fn release(site: &ArchSite, slot_in_use: impl Fn(Range<usize>) -> bool) {
    slots::free(site.slot, slot_in_use);
}
