//! Why a registration (or enable/disable) was refused.
//!
//! Every refusal leaves the engine exactly as it was.
use core::fmt;

/// One error type for the whole probe API; each variant says what is wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KprobeError {
    /// Neither an address nor a symbol was given.
    NoLocation,
    /// Both an address and a symbol were given.
    AddressAndSymbol,
    /// No function has this name.
    UnknownSymbol,
    /// The offset lies at or beyond the end of the function.
    OffsetPastFunction {
        /// The function's size in bytes.
        size: usize,
    },
    /// The address is not in kernel text.
    OutsideKernelText,
    /// The address is in no known function, so its instruction boundaries
    /// cannot be checked.
    NotInFunction,
    /// The address falls inside an instruction of its function.
    NotInstructionBoundary,
    /// The address is part of the engine's own trap path (or the trap entry
    /// code), which cannot be probed.
    Blacklisted,
    /// The instruction cannot be run out of line; the text says why.
    UnsupportedInstruction(&'static str),
    /// The bytes at the address do not decode as an instruction.
    InvalidInstruction,
    /// This probe is already registered.
    AlreadyRegistered,
    /// This probe is not registered.
    NotRegistered,
    /// A fixed table is full (probe sites, instruction slots, instances).
    TableFull(&'static str),
    /// Called from a probe handler, where the registry may be in use.
    InProbeHandler,
    /// Called with interrupts off (interrupt context, or code that disabled
    /// them), where the interrupted code may hold the registry's or the
    /// heap's lock.
    InterruptsDisabled,
    /// The entry probe of a kretprobe or jprobe was passed to a plain-kprobe
    /// function; register or unregister its owner instead.
    NotAPlainKprobe,
    /// Return probes and jprobes go on a function's first instruction.
    NotFunctionEntry,
    /// A jprobe is already registered at this address (one per address).
    JprobeExists,
    /// A kretprobe asked for more private data than an instance holds.
    DataTooLarge {
        /// The most an instance holds ([`MAX_DATA_SIZE`](super::MAX_DATA_SIZE)).
        max: usize,
    },
}

impl fmt::Display for KprobeError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            KprobeError::NoLocation => write!(f, "no address or symbol given"),
            KprobeError::AddressAndSymbol => write!(f, "both an address and a symbol given"),
            KprobeError::UnknownSymbol => write!(f, "no such symbol"),
            KprobeError::OffsetPastFunction { size } => write!(f, "offset past the function's end ({size:#x} bytes)"),
            KprobeError::OutsideKernelText => write!(f, "address outside kernel text"),
            KprobeError::NotInFunction => write!(f, "address in no known function"),
            KprobeError::NotInstructionBoundary => write!(f, "not an instruction boundary"),
            KprobeError::Blacklisted => write!(f, "address in the probe engine's own trap path"),
            KprobeError::UnsupportedInstruction(why) => write!(f, "instruction cannot be probed: {why}"),
            KprobeError::InvalidInstruction => write!(f, "invalid instruction"),
            KprobeError::AlreadyRegistered => write!(f, "probe already registered"),
            KprobeError::NotRegistered => write!(f, "probe not registered"),
            KprobeError::TableFull(what) => write!(f, "no free {what}"),
            KprobeError::InProbeHandler => write!(f, "not allowed from a probe handler"),
            KprobeError::InterruptsDisabled => write!(f, "not allowed with interrupts off or in interrupt context"),
            KprobeError::NotAPlainKprobe => {
                write!(f, "this kprobe belongs to a kretprobe or jprobe; use that probe's own functions")
            }
            KprobeError::NotFunctionEntry => write!(f, "must be at a function's first instruction"),
            KprobeError::JprobeExists => write!(f, "a jprobe is already registered at this address"),
            KprobeError::DataTooLarge { max } => write!(f, "private data larger than {max} bytes"),
        }
    }
}

/// Why [`text_poke_bp`](crate::text_poke_bp) refused a patch. Every refusal
/// leaves the text exactly as it was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TextPokeError {
    /// The address fails a check a probe there would fail too (outside
    /// kernel text, in no function, the engine's trap path, not an
    /// instruction boundary, an instruction that does not decode), or the
    /// call came from a probe handler or with interrupts off.
    Address(KprobeError),
    /// A probe is registered inside the instruction: unregister it first.
    ProbeSite,
    /// The new bytes are not exactly one instruction: the first one they
    /// hold is `decoded` bytes long (0: they do not decode).
    NotOneInstruction {
        /// The length of the first instruction the bytes hold.
        decoded: usize,
    },
    /// The new instruction's length differs from the old one's.
    LengthMismatch {
        /// The instruction at the address now.
        old: usize,
        /// The new bytes.
        new: usize,
    },
    /// The new instruction cannot run as a relocated copy out of line,
    /// which is what a CPU that hits the guard executes; the text says why.
    NotRelocatable(&'static str),
    /// Every instruction slot is taken.
    NoSlot,
}

impl fmt::Display for TextPokeError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            TextPokeError::Address(error) => write!(f, "{error}"),
            TextPokeError::ProbeSite => write!(f, "a probe is registered inside the instruction"),
            TextPokeError::NotOneInstruction { decoded: 0 } => write!(f, "the new bytes do not decode"),
            TextPokeError::NotOneInstruction { decoded } => {
                write!(f, "the new bytes are not one instruction (the first is {decoded} bytes)")
            }
            TextPokeError::LengthMismatch { old, new } => {
                write!(f, "the new instruction is {new} bytes, the old one {old}")
            }
            TextPokeError::NotRelocatable(why) => write!(f, "the new instruction cannot run out of line: {why}"),
            TextPokeError::NoSlot => write!(f, "no free instruction slots"),
        }
    }
}
