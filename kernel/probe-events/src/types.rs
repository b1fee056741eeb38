//! Fetch types: how an argument's value is stored and shown.
use crate::num::{kstrtoul, simple_strtoul};

/// The type of a fetch argument (`FETCHARG:TYPE`), Linux's table for i386.
/// A bitfield type (`b<width>@<offset>/<container>`) is stored as the
/// unsigned type of its container ([`Bitfield`] says which bits).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FetchType {
    /// `u8`, shown in decimal.
    U8,
    /// `u16`, shown in decimal.
    U16,
    /// `u32`, shown in decimal.
    U32,
    /// `u64`, shown in decimal.
    U64,
    /// `s8`, shown in signed decimal.
    S8,
    /// `s16`, shown in signed decimal.
    S16,
    /// `s32`, shown in signed decimal.
    S32,
    /// `s64`, shown in signed decimal.
    S64,
    /// `x8`, shown as `0x..`.
    X8,
    /// `x16`, shown as `0x..`.
    X16,
    /// `x32`, shown as `0x..`: the default type on i386.
    X32,
    /// `x64`, shown as `0x..`.
    X64,
    /// `char`: one byte shown as a character in quotes.
    Char,
    /// `string`: a NUL-terminated kernel string, stored after the fixed
    /// fields and located by a 32-bit `__data_loc`.
    String,
    /// `ustring`: like `string`, read from user memory.
    UString,
    /// `symstr`: the value's `symbol+offset/size` text, stored as a string.
    SymStr,
    /// `symbol`: an address stored as `u32`, shown as `symbol+offset/size`.
    Symbol,
}

impl FetchType {
    /// Every named type, in Linux's table order.
    pub const ALL: [FetchType; 17] = [
        FetchType::String,
        FetchType::UString,
        FetchType::SymStr,
        FetchType::U8,
        FetchType::U16,
        FetchType::U32,
        FetchType::U64,
        FetchType::S8,
        FetchType::S16,
        FetchType::S32,
        FetchType::S64,
        FetchType::X8,
        FetchType::X16,
        FetchType::X32,
        FetchType::X64,
        FetchType::Char,
        FetchType::Symbol,
    ];

    /// The type of an argument that names none: `x32`, i386's `unsigned long`.
    pub const DEFAULT: FetchType = FetchType::X32;

    /// The type's name in a definition.
    pub const fn name(self) -> &'static str {
        match self {
            FetchType::U8 => "u8",
            FetchType::U16 => "u16",
            FetchType::U32 => "u32",
            FetchType::U64 => "u64",
            FetchType::S8 => "s8",
            FetchType::S16 => "s16",
            FetchType::S32 => "s32",
            FetchType::S64 => "s64",
            FetchType::X8 => "x8",
            FetchType::X16 => "x16",
            FetchType::X32 => "x32",
            FetchType::X64 => "x64",
            FetchType::Char => "char",
            FetchType::String => "string",
            FetchType::UString => "ustring",
            FetchType::SymStr => "symstr",
            FetchType::Symbol => "symbol",
        }
    }

    /// Bytes the value takes in the record (a string's `__data_loc` is 4).
    pub const fn size(self) -> usize {
        match self {
            FetchType::U8 | FetchType::S8 | FetchType::X8 | FetchType::Char => 1,
            FetchType::U16 | FetchType::S16 | FetchType::X16 => 2,
            FetchType::U64 | FetchType::S64 | FetchType::X64 => 8,
            FetchType::U32
            | FetchType::S32
            | FetchType::X32
            | FetchType::String
            | FetchType::UString
            | FetchType::SymStr
            | FetchType::Symbol => 4,
        }
    }

    /// Whether the `format` file calls the field signed (Linux marks the
    /// string types signed).
    pub const fn is_signed(self) -> bool {
        matches!(
            self,
            FetchType::S8
                | FetchType::S16
                | FetchType::S32
                | FetchType::S64
                | FetchType::String
                | FetchType::UString
                | FetchType::SymStr
        )
    }

    /// Whether the value is a string stored in the record's dynamic area.
    pub const fn is_string(self) -> bool {
        matches!(self, FetchType::String | FetchType::UString | FetchType::SymStr)
    }

    /// The printf conversion in the event's `print fmt` (quotes escaped).
    pub const fn print_fmt(self) -> &'static str {
        match self {
            FetchType::U8 | FetchType::U16 | FetchType::U32 => "%u",
            FetchType::U64 => "%Lu",
            FetchType::S8 | FetchType::S16 | FetchType::S32 => "%d",
            FetchType::S64 => "%Ld",
            FetchType::X8 | FetchType::X16 | FetchType::X32 => "0x%x",
            FetchType::X64 => "0x%Lx",
            FetchType::Char => "'%c'",
            FetchType::String | FetchType::UString | FetchType::SymStr => "\\\"%s\\\"",
            FetchType::Symbol => "%pS",
        }
    }

    /// The field's type in the event's `format` file.
    pub const fn field_type(self) -> &'static str {
        match self {
            FetchType::U8 | FetchType::X8 | FetchType::Char => "u8",
            FetchType::U16 | FetchType::X16 => "u16",
            FetchType::U32 | FetchType::X32 | FetchType::Symbol => "u32",
            FetchType::U64 | FetchType::X64 => "u64",
            FetchType::S8 => "s8",
            FetchType::S16 => "s16",
            FetchType::S32 => "s32",
            FetchType::S64 => "s64",
            FetchType::String | FetchType::UString | FetchType::SymStr => "__data_loc char[]",
        }
    }

    /// Linux's type lookup (`find_fetch_type`): a name from the table, or
    /// for a name starting with `b` the unsigned type of the container
    /// size after its `/` (8, 16, 32 or 64). `None` asks for the default.
    pub fn lookup(name: Option<&str>) -> Option<FetchType> {
        let Some(name) = name else {
            return Some(FetchType::DEFAULT);
        };
        if name.starts_with('b') {
            let slash = name.find('/')?;
            return match kstrtoul(&name.as_bytes()[slash + 1..], 0).ok()? {
                8 => Some(FetchType::U8),
                16 => Some(FetchType::U16),
                32 => Some(FetchType::U32),
                64 => Some(FetchType::U64),
                _ => None,
            };
        }
        FetchType::ALL.iter().copied().find(|t| t.name() == name)
    }
}

/// The bits a bitfield type keeps: the stored value (of its container's
/// size) is shifted left by `lshift`, then right by `rshift`, both in the
/// container's width, as Linux does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Bitfield {
    /// Bits in the field (`b<width>@...`).
    pub width: u32,
    /// Bit offset of the field in its container (`@<offset>/...`).
    pub offset: u32,
    /// The container's size in bytes.
    pub container: u8,
    /// The left shift that drops the bits above the field.
    pub lshift: u8,
    /// The right shift that drops the bits below it and aligns it.
    pub rshift: u8,
}

impl Bitfield {
    /// Parses `b<width>@<offset>/...` for a container type already found by
    /// [`FetchType::lookup`]. `None` when Linux refuses it (a zero width, no
    /// `@`, no offset digits, no `/`, or a field past the container).
    pub fn parse(spec: &str, container: FetchType) -> Option<Bitfield> {
        let bytes = spec.as_bytes();
        let after_b = bytes.get(1..)?;
        let (width, used) = simple_strtoul(after_b, 0);
        if width == 0 || after_b.get(used) != Some(&b'@') {
            return None;
        }
        let after_at = &after_b[used + 1..];
        let (offset, used) = simple_strtoul(after_at, 0);
        if used == 0 || after_at.get(used) != Some(&b'/') {
            return None;
        }
        // Linux computes in unsigned long: the sum may wrap, the shifts are
        // kept as bytes.
        let bits = 8 * container.size() as u32;
        let end = width.wrapping_add(offset);
        let field = Bitfield {
            width,
            offset,
            container: container.size() as u8,
            lshift: bits.wrapping_sub(end) as u8,
            rshift: bits.wrapping_sub(width) as u8,
        };
        if bits < end { None } else { Some(field) }
    }

    /// Keeps the field's bits of a stored container value.
    pub fn apply(&self, value: u64) -> u64 {
        let bits = 8 * u32::from(self.container);
        let mask = if bits >= 64 { u64::MAX } else { (1u64 << bits) - 1 };
        let shift = |v: u64, by: u8, left: bool| {
            if u32::from(by) >= bits {
                0
            } else if left {
                (v << by) & mask
            } else {
                (v & mask) >> by
            }
        };
        shift(shift(value & mask, self.lshift, true), self.rshift, false)
    }
}
