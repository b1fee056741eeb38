//! Function parameters by name, as Linux's BTF arguments: what a
//! [`SymbolResolver`](crate::SymbolResolver) says about a function's
//! parameters, and how a fetch reads one.
//!
//! Linux (6.x, `CONFIG_PROBE_EVENTS_BTF_ARGS`) lets a probe at a
//! function's entry or exit name the function's parameters: a bare
//! `NAME` fetch argument, `NAME=PARAM`, `$arg*` for all of them, and
//! `$argN` rewritten to the Nth parameter; the type defaults from the
//! parameter's. Where Linux knows the ABI (an argument register), this
//! crate is told by the resolver where each parameter is at the
//! function's first instruction (a register or a stack slot, from the
//! kernel's DWARF), or that it cannot be read there.
use alloc::vec::Vec;

use crate::eval::{Memory, Regs};
use crate::register::Register;
use crate::types::FetchType;

/// Where a parameter is at its function's first instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Place {
    /// In a register (its low bytes, for a smaller value).
    Register(Register),
    /// In memory at the stack pointer plus this offset, the stack pointer
    /// as at the entry (4: the first cdecl argument, above the return
    /// address).
    Stack(i32),
}

impl Place {
    /// The parameter's value, `size` bytes (at most 8) read at this place
    /// and zero-extended: the register's low bytes, or memory at the
    /// stack slot (0 if it cannot be read). `regs` must be those of the
    /// function's entry.
    pub fn read(self, size: u8, regs: &(impl Regs + ?Sized), memory: &(impl Memory + ?Sized)) -> u64 {
        let size = usize::from(size.min(8));
        match self {
            Place::Register(reg) => {
                let value = u64::from(regs.get(reg));
                if size >= 4 { value } else { value & ((1u64 << (8 * size)) - 1) }
            }
            Place::Stack(offset) => {
                let mut bytes = [0u8; 8];
                let addr = regs.get(Register::Sp).wrapping_add(offset as u32);
                match memory.read(addr, &mut bytes[..size]) {
                    Ok(()) => u64::from_le_bytes(bytes),
                    Err(_) => 0,
                }
            }
        }
    }
}

/// What kind of value a parameter is: decides its default fetch type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ParamClass {
    /// A signed integer (or an enum over one).
    Signed,
    /// An unsigned integer, a `bool`, a `char` (or an enum over one).
    Unsigned,
    /// A pointer or reference.
    Pointer,
    /// A pointer to 8-bit characters: a `string` type reads what it
    /// points to (Linux's `char *`).
    CharPointer,
    /// A floating-point number.
    Float,
    /// Anything else (a structure, a tuple, a slice reference).
    Other,
}

/// One parameter of a function.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Param<'a> {
    /// Its name (empty for an unnamed one, which cannot be named).
    pub name: &'a str,
    /// Its type's name, for listings.
    pub type_name: &'a str,
    /// Bytes of its value.
    pub size: u32,
    /// Where it is at the function's entry; `None` if it cannot be read
    /// there (optimized out, split, too large, not yet stored).
    pub place: Option<Place>,
    /// What kind of value it is.
    pub class: ParamClass,
}

impl Param<'_> {
    /// The fetch type an argument naming this parameter gets without a
    /// `:TYPE` (Linux's `fetch_type_from_btf_type`): integers by sign and
    /// size, pointers `x32`; other values of 1, 2 or 8 bytes `x8`, `x16`,
    /// `x64` (Linux leaves those at its default `x32`, which would cut an
    /// 8-byte value), the rest `x32`.
    pub fn default_type(&self) -> FetchType {
        let by_size = |one, two, four, eight| match self.size {
            1 => one,
            2 => two,
            8 => eight,
            _ => four,
        };
        match self.class {
            ParamClass::Signed => by_size(FetchType::S8, FetchType::S16, FetchType::S32, FetchType::S64),
            ParamClass::Unsigned => by_size(FetchType::U8, FetchType::U16, FetchType::U32, FetchType::U64),
            ParamClass::Pointer | ParamClass::CharPointer => FetchType::X32,
            ParamClass::Float | ParamClass::Other => {
                by_size(FetchType::X8, FetchType::X16, FetchType::X32, FetchType::X64)
            }
        }
    }

    /// Bytes a fetch loads (at most 8: no fetch type is wider).
    pub fn load_size(&self) -> u8 {
        self.size.min(8) as u8
    }
}

/// What a resolver knows about a function's parameters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ParamLookup<'a> {
    /// No parameter information at all (Linux without BTF): names and
    /// `$arg*` are refused with "BTF is not available or not supported".
    Unsupported,
    /// Information, but none for this function (Linux's "No BTF entry for
    /// this probe point").
    NoEntry,
    /// The function's parameters, in declaration order (possibly none).
    Params(Vec<Param<'a>>),
}

/// What the entry handler of a return probe saves in one slot for its
/// arguments: a `$argN` by the calling convention, or a parameter from
/// where it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EntrySource {
    /// Function argument N (0-based), as `$argN` reads it at the entry.
    Arg(u32),
    /// A parameter: `size` bytes at `place`, zero-extended.
    Param {
        /// Where it is at the entry.
        place: Place,
        /// Bytes read (at most 8).
        size: u8,
    },
}
