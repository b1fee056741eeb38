//! The parameter table: each function's formal parameters, where they are at its first instruction.
//!
//! Probe definitions may name a function's parameters (`p demo::checksum
//! seed`, `$arg*`), as Linux's do from BTF. This kernel has DWARF instead:
//! the post-link tool (kernel/ksyms-tool) reads `.debug_info` and the
//! location lists, and writes for every function of the symbol table its
//! parameters (name, type name, size, a class that decides the default
//! fetch type) and where each one is when the function is entered: a
//! register, a stack slot (an offset from ESP at the entry), or why it
//! cannot be located there. The kernel reads the table in place, without
//! allocating, with the same code as the tool's tests.
//!
//! ```text
//! header, 48 bytes:
//!   0  magic[8]       PARAMS_EMPTY as compiled, PARAMS_FILLED once written,
//!                     PARAMS_TOO_SMALL if the tool's table did not fit
//!   8  capacity u32   total table bytes (set by the compiler)
//!  12  count u32      functions
//!  16  functions u32  offset of the functions (always 48)
//!  20  params u32     offset of the parameters (= functions + 12 * count)
//!  24  param_count u32
//!  28  strings u32    offset of the strings (= params + 24 * param_count)
//!  32  strings_len u32
//!  36  used u32       bytes in use, header included (= strings + strings_len)
//!  40  checksum u32   Adler-32 of bytes [48, used)
//!  44  needed u32     PARAMS_TOO_SMALL: the bytes the table needed; else 0
//! function, 12 bytes (sorted by address, each address once):
//!   0  address u32    the function's first byte
//!   4  first u32      index of its first parameter
//!   8  count u16      its parameters, in declaration order
//!  10  reserved u16   zero
//! parameter, 24 bytes:
//!   0  name u32       offset of the name in the strings (empty: unnamed)
//!   4  name_len u16
//!   6  type_len u16
//!   8  type u32       offset of the type's name in the strings
//!  12  size u32       bytes of the value
//!  16  location u8    0 register, 1 stack, 2 unavailable
//!  17  detail u8      register: its DWARF number (0 eax .. 7 edi);
//!                     unavailable: the reason (`Unavailable`); stack: 0
//!  18  class u8       `Class`
//!  19  reserved u8    zero
//!  20  offset i32     stack: the offset from ESP at the entry ([ESP] is
//!                     the return address, so cdecl's first argument is 4)
//! strings: UTF-8, each distinct string once; bytes after `used` are zero.
//! ```
//!
//! The parameters of function `i` are `[first, first + count)`, and the
//! functions' ranges follow each other in address order from 0, so the
//! parameters are exactly the functions' ranges laid end to end.
use crate::adler32;
use core::fmt;

/// The magic of a parameter table nobody filled (the image as compiled).
pub const PARAMS_EMPTY: [u8; 8] = *b"KPARNONE";
/// The magic of a parameter table the post-link tool wrote.
pub const PARAMS_FILLED: [u8; 8] = *b"KPARAMS1";
/// The magic the post-link tool leaves when the table did not fit: the
/// header's `needed` says how many bytes it would take, and there are no
/// parameters.
pub const PARAMS_TOO_SMALL: [u8; 8] = *b"KPARFULL";
/// The exported name of the kernel's parameter table static.
pub const PARAMS_SYMBOL: &str = "probe_kernel_params";

/// Bytes of the header.
pub const HEADER_SIZE: usize = 48;
/// Bytes of one function.
pub const FUNCTION_SIZE: usize = 12;
/// Bytes of one parameter.
pub const PARAM_SIZE: usize = 24;
/// The longest name or type name a parameter can carry (a u16 length).
pub const MAX_STRING_LEN: usize = 0xffff;
/// The most parameters one function can have (a u16 count).
pub const MAX_PARAMS: usize = 0xffff;

/// Byte offsets of the header's fields.
pub mod header {
    /// magic[8].
    pub const MAGIC: usize = 0;
    /// capacity u32.
    pub const CAPACITY: usize = 8;
    /// count u32.
    pub const COUNT: usize = 12;
    /// functions u32.
    pub const FUNCTIONS: usize = 16;
    /// params u32.
    pub const PARAMS: usize = 20;
    /// param_count u32.
    pub const PARAM_COUNT: usize = 24;
    /// strings u32.
    pub const STRINGS: usize = 28;
    /// strings_len u32.
    pub const STRINGS_LEN: usize = 32;
    /// used u32.
    pub const USED: usize = 36;
    /// checksum u32.
    pub const CHECKSUM: usize = 40;
    /// needed u32.
    pub const NEEDED: usize = 44;
}

const _: () = assert!(header::NEEDED + 4 == HEADER_SIZE);

/// An i386 register, by its DWARF number (the System V i386 psABI's).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reg {
    /// 0.
    Eax,
    /// 1.
    Ecx,
    /// 2.
    Edx,
    /// 3.
    Ebx,
    /// 4.
    Esp,
    /// 5.
    Ebp,
    /// 6.
    Esi,
    /// 7.
    Edi,
}

impl Reg {
    /// Every register, by DWARF number.
    pub const ALL: [Reg; 8] = [Reg::Eax, Reg::Ecx, Reg::Edx, Reg::Ebx, Reg::Esp, Reg::Ebp, Reg::Esi, Reg::Edi];

    /// The register DWARF numbers `number`, if it is one of the eight
    /// general registers.
    pub const fn from_dwarf(number: u16) -> Option<Reg> {
        if (number as usize) < Reg::ALL.len() { Some(Reg::ALL[number as usize]) } else { None }
    }

    /// Its DWARF number.
    pub const fn dwarf(self) -> u8 {
        self as u8
    }

    /// Its name as a probe definition writes it (`eax`; Linux's `%ax`).
    pub const fn name(self) -> &'static str {
        match self {
            Reg::Eax => "eax",
            Reg::Ecx => "ecx",
            Reg::Edx => "edx",
            Reg::Ebx => "ebx",
            Reg::Esp => "esp",
            Reg::Ebp => "ebp",
            Reg::Esi => "esi",
            Reg::Edi => "edi",
        }
    }
}

/// Why a parameter cannot be fetched at its function's entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Unavailable {
    /// No location covers the function's first instruction (the value is
    /// optimized out, or not yet anywhere the debug information says).
    OptimizedOut,
    /// Its pieces lie in different places (say a `u64` in two registers).
    Split,
    /// Larger than 8 bytes: no fetch type holds it.
    TooLarge,
    /// Described only by a slot in the function's own frame, which the
    /// function fills after its entry (a register argument spilled).
    InFrame,
    /// A constant: the compiler knows its value and keeps it nowhere.
    Constant,
    /// A location expression this table does not translate (for instance
    /// memory that a register points to, or a frame base without the
    /// standard `push %ebp; mov %esp,%ebp` prologue).
    Unsupported,
}

impl Unavailable {
    /// Every reason, by its number in the table.
    pub const ALL: [Unavailable; 6] = [
        Unavailable::OptimizedOut,
        Unavailable::Split,
        Unavailable::TooLarge,
        Unavailable::InFrame,
        Unavailable::Constant,
        Unavailable::Unsupported,
    ];

    /// The reason in a few words, for listings.
    pub const fn reason(self) -> &'static str {
        match self {
            Unavailable::OptimizedOut => "optimized out at the entry",
            Unavailable::Split => "split across registers or slots",
            Unavailable::TooLarge => "larger than 8 bytes",
            Unavailable::InFrame => "only in the function's frame, after the entry",
            Unavailable::Constant => "a constant, stored nowhere",
            Unavailable::Unsupported => "a location this table does not translate",
        }
    }

    #[cfg(feature = "alloc")]
    fn number(self) -> u8 {
        self as u8
    }
}

/// Where a parameter is at its function's first instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Location {
    /// In a register (its low bytes, for a smaller value).
    Register(Reg),
    /// In memory at ESP + the offset, ESP as at the entry (so 4 is the
    /// first cdecl argument, just above the return address).
    Stack(i32),
    /// Nowhere a probe at the entry can read it.
    Unavailable(Unavailable),
}

/// What kind of value a parameter is: decides its default fetch type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Class {
    /// A signed integer (or an enum over one).
    Signed,
    /// An unsigned integer, `bool`, `char` (or an enum over one).
    Unsigned,
    /// A pointer or reference.
    Pointer,
    /// A pointer to 8-bit characters (`*const u8`, `&u8`, C's `char *`):
    /// a `string` type reads the text it points to.
    CharPointer,
    /// A floating-point number.
    Float,
    /// Anything else: a structure, union, array, tuple.
    Other,
}

impl Class {
    /// Every class, by its number in the table.
    pub const ALL: [Class; 6] =
        [Class::Signed, Class::Unsigned, Class::Pointer, Class::CharPointer, Class::Float, Class::Other];

    #[cfg(feature = "alloc")]
    fn number(self) -> u8 {
        self as u8
    }
}

/// One parameter, as the table describes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Param<'a> {
    /// Its name (empty for an unnamed parameter, such as Rust's `_`).
    pub name: &'a str,
    /// Its type's name as the debug information gives it (`u32`, `&[u8]`,
    /// `*const u8`, `unsigned int`).
    pub type_name: &'a str,
    /// Bytes of its value.
    pub size: u32,
    /// Where it is at the function's entry.
    pub location: Location,
    /// What kind of value it is.
    pub class: Class,
}

/// Why a parameter table cannot be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParamsInvalid {
    /// The image as compiled: the post-link step did not run.
    Empty,
    /// The post-link step's table did not fit: it needed this many bytes.
    TooSmall(u32),
    /// No known magic.
    BadMagic,
    /// The capacity field differs from the bytes the table occupies.
    CapacityMismatch,
    /// The header's offsets and lengths do not describe one table.
    InconsistentHeader,
    /// The bytes after `used`, or a reserved field, are not zero.
    NonzeroPadding,
    /// The body does not match its checksum.
    ChecksumMismatch,
    /// Functions are not sorted by address, or an address repeats.
    NotSorted,
    /// The functions' parameter ranges do not lay end to end.
    BadRange,
    /// A parameter's string lies outside the strings or is not UTF-8, or
    /// a field holds a value no writer writes.
    BadParam,
}

impl ParamsInvalid {
    /// A short description, for the kernel's boot message.
    pub const fn reason(self) -> &'static str {
        match self {
            ParamsInvalid::Empty => "not filled (the post-link step did not run)",
            ParamsInvalid::TooSmall(_) => "did not fit its static",
            ParamsInvalid::BadMagic => "bad magic",
            ParamsInvalid::CapacityMismatch => "capacity differs from this kernel's",
            ParamsInvalid::InconsistentHeader => "inconsistent header",
            ParamsInvalid::NonzeroPadding => "padding not zero",
            ParamsInvalid::ChecksumMismatch => "checksum mismatch",
            ParamsInvalid::NotSorted => "functions not sorted by address",
            ParamsInvalid::BadRange => "parameter ranges do not match the functions",
            ParamsInvalid::BadParam => "a parameter with a bad field",
        }
    }
}

impl fmt::Display for ParamsInvalid {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            ParamsInvalid::TooSmall(needed) => write!(f, "did not fit its static (it needs {needed} bytes)"),
            other => f.write_str(other.reason()),
        }
    }
}

/// The little-endian u32 at `offset` of `bytes`, or 0 outside them.
fn word(bytes: &[u8], offset: usize) -> u32 {
    match offset.checked_add(4).and_then(|end| bytes.get(offset..end)) {
        Some(&[a, b, c, d]) => u32::from_le_bytes([a, b, c, d]),
        _ => 0,
    }
}

fn half(bytes: &[u8], offset: usize) -> u16 {
    match offset.checked_add(2).and_then(|end| bytes.get(offset..end)) {
        Some(&[a, b]) => u16::from_le_bytes([a, b]),
        _ => 0,
    }
}

/// A filled parameter table whose header passed the constant-time checks.
#[derive(Clone, Copy)]
pub struct ParamTable<'a> {
    bytes: &'a [u8],
    functions: &'a [[u8; FUNCTION_SIZE]],
    params: &'a [[u8; PARAM_SIZE]],
    strings: &'a [u8],
}

impl<'a> ParamTable<'a> {
    /// The table in `bytes` (all of its capacity), if it has been filled
    /// and its header is consistent. Constant time; see
    /// [`ParamTable::validate`] for the body.
    pub fn parse(bytes: &'a [u8]) -> Result<ParamTable<'a>, ParamsInvalid> {
        let magic = bytes.first_chunk::<8>().copied();
        if magic == Some(PARAMS_EMPTY) {
            return Err(ParamsInvalid::Empty);
        }
        if magic == Some(PARAMS_TOO_SMALL) {
            return Err(ParamsInvalid::TooSmall(word(bytes, header::NEEDED)));
        }
        if magic != Some(PARAMS_FILLED) || bytes.len() < HEADER_SIZE {
            return Err(ParamsInvalid::BadMagic);
        }
        if word(bytes, header::CAPACITY) as usize != bytes.len() {
            return Err(ParamsInvalid::CapacityMismatch);
        }
        let field = |offset| word(bytes, offset) as usize;
        let (count, functions, params) = (field(header::COUNT), field(header::FUNCTIONS), field(header::PARAMS));
        let (param_count, strings, strings_len) =
            (field(header::PARAM_COUNT), field(header::STRINGS), field(header::STRINGS_LEN));
        let used = field(header::USED);
        let after = |start: usize, items: usize, size: usize| items.checked_mul(size)?.checked_add(start);
        let layout_ok = functions == HEADER_SIZE
            && after(functions, count, FUNCTION_SIZE) == Some(params)
            && after(params, param_count, PARAM_SIZE) == Some(strings)
            && strings.checked_add(strings_len) == Some(used)
            && used <= bytes.len();
        if !layout_ok {
            return Err(ParamsInvalid::InconsistentHeader);
        }
        // In range: HEADER_SIZE <= params <= strings <= used <= len.
        let (functions, _) = bytes[HEADER_SIZE..params].as_chunks();
        let (params_bytes, _) = bytes[params..strings].as_chunks();
        Ok(ParamTable { bytes, functions, params: params_bytes, strings: &bytes[strings..used] })
    }

    /// [`ParamTable::parse`] and [`ParamTable::validate`].
    pub fn open(bytes: &'a [u8]) -> Result<ParamTable<'a>, ParamsInvalid> {
        let table = ParamTable::parse(bytes)?;
        table.validate()?;
        Ok(table)
    }

    /// The full check, linear in the table's size: padding, checksum,
    /// order, ranges, and every parameter's fields and strings. Any changed
    /// byte of a table the writer built makes it fail.
    pub fn validate(&self) -> Result<(), ParamsInvalid> {
        let used =
            HEADER_SIZE + self.functions.len() * FUNCTION_SIZE + self.params.len() * PARAM_SIZE + self.strings.len();
        if word(self.bytes, header::NEEDED) != 0 || self.bytes[used..].iter().any(|&byte| byte != 0) {
            return Err(ParamsInvalid::NonzeroPadding);
        }
        if adler32(&self.bytes[HEADER_SIZE..used]) != word(self.bytes, header::CHECKSUM) {
            return Err(ParamsInvalid::ChecksumMismatch);
        }
        let mut next_first = 0usize;
        let mut previous: Option<u32> = None;
        for function in self.functions {
            let address = word(function, 0);
            if previous.is_some_and(|p| p >= address) {
                return Err(ParamsInvalid::NotSorted);
            }
            previous = Some(address);
            if word(function, 4) as usize != next_first || half(function, 10) != 0 {
                return Err(ParamsInvalid::BadRange);
            }
            next_first += usize::from(half(function, 8));
        }
        if next_first != self.params.len() {
            return Err(ParamsInvalid::BadRange);
        }
        for raw in self.params {
            if self.decode(raw).is_none() {
                return Err(ParamsInvalid::BadParam);
            }
        }
        Ok(())
    }

    /// How many functions the table describes.
    pub fn count(&self) -> usize {
        self.functions.len()
    }

    /// The parameters of the function that starts at `address`, if the
    /// table describes one there (a function without parameters gives an
    /// empty list). Binary search; no allocation.
    pub fn params_of(&self, address: usize) -> Option<Params<'a>> {
        let index = self.functions.binary_search_by_key(&address, |f| word(f, 0) as usize).ok()?;
        Some(self.function(index))
    }

    /// Every function the table describes, by address: its address and
    /// parameters.
    pub fn iter(&self) -> impl Iterator<Item = (usize, Params<'a>)> + use<'a> {
        let table = *self;
        (0..self.functions.len()).map(move |index| (word(&table.functions[index], 0) as usize, table.function(index)))
    }

    fn function(&self, index: usize) -> Params<'a> {
        let function = &self.functions[index];
        let (first, count) = (word(function, 4) as usize, usize::from(half(function, 8)));
        let raw = first.checked_add(count).and_then(|end| self.params.get(first..end)).unwrap_or(&[]);
        Params { table: *self, raw }
    }

    /// The string at `offset`, `len` bytes, if it lies in the strings and is text.
    fn string(&self, offset: u32, len: u16) -> Option<&'a str> {
        let start = offset as usize;
        let bytes = self.strings.get(start..start.checked_add(usize::from(len))?)?;
        core::str::from_utf8(bytes).ok()
    }

    /// A parameter's fields, if every one is a value the writer writes.
    fn decode(&self, raw: &[u8; PARAM_SIZE]) -> Option<Param<'a>> {
        let name = self.string(word(raw, 0), half(raw, 4))?;
        let type_name = self.string(word(raw, 8), half(raw, 6))?;
        let (kind, detail, class, reserved) = (raw[16], raw[17], raw[18], raw[19]);
        let offset = word(raw, 20) as i32;
        let location = match kind {
            0 if offset == 0 => Location::Register(Reg::from_dwarf(u16::from(detail))?),
            1 if detail == 0 => Location::Stack(offset),
            2 if offset == 0 => Location::Unavailable(*Unavailable::ALL.get(usize::from(detail))?),
            _ => return None,
        };
        let class = *Class::ALL.get(usize::from(class))?;
        if reserved != 0 {
            return None;
        }
        Some(Param { name, type_name, size: word(raw, 12), location, class })
    }
}

/// One function's parameters, in declaration order: a view into the table.
#[derive(Clone, Copy)]
pub struct Params<'a> {
    table: ParamTable<'a>,
    raw: &'a [[u8; PARAM_SIZE]],
}

impl<'a> Params<'a> {
    /// How many parameters the function has.
    pub fn len(&self) -> usize {
        self.raw.len()
    }

    /// Whether it has none.
    pub fn is_empty(&self) -> bool {
        self.raw.is_empty()
    }

    /// Parameter `index` (0-based); `None` past the end or for a
    /// parameter whose bytes are damaged (only in an unvalidated table).
    pub fn get(&self, index: usize) -> Option<Param<'a>> {
        self.table.decode(self.raw.get(index)?)
    }

    /// The parameters in order (a damaged one, only possible in an
    /// unvalidated table, is skipped).
    pub fn iter(&self) -> impl Iterator<Item = Param<'a>> + use<'a> {
        let params = *self;
        params.raw.iter().filter_map(move |raw| params.table.decode(raw))
    }
}

impl fmt::Debug for Params<'_> {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

#[cfg(feature = "alloc")]
pub use writer::{FunctionInput, ParamInput, ParamsBuildError, build_params, too_small_marker};

#[cfg(feature = "alloc")]
mod writer {
    use super::*;
    use alloc::collections::BTreeMap;
    use alloc::string::String;
    use alloc::vec;
    use alloc::vec::Vec;

    /// One parameter to put in a table.
    #[derive(Clone, Debug, PartialEq, Eq)]
    pub struct ParamInput {
        /// Its name (empty: unnamed); cut to [`MAX_STRING_LEN`] bytes.
        pub name: String,
        /// Its type's name; cut to [`MAX_STRING_LEN`] bytes.
        pub type_name: String,
        /// Bytes of its value.
        pub size: u32,
        /// Where it is at the function's entry.
        pub location: Location,
        /// What kind of value it is.
        pub class: Class,
    }

    /// One function to put in a table.
    #[derive(Clone, Debug, PartialEq, Eq)]
    pub struct FunctionInput {
        /// Its first byte.
        pub address: u32,
        /// Its parameters, in declaration order (at most [`MAX_PARAMS`]).
        pub params: Vec<ParamInput>,
    }

    /// Why [`build_params`] could not build a table.
    #[derive(Clone, Debug, PartialEq, Eq)]
    pub enum ParamsBuildError {
        /// The table needs `needed` bytes, more than the capacity given.
        TooSmall {
            /// Bytes the table needs, header included.
            needed: usize,
        },
        /// Two functions at this address, or one with too many parameters.
        BadFunction(u32),
    }

    impl fmt::Display for ParamsBuildError {
        fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
            match self {
                ParamsBuildError::TooSmall { needed } => write!(f, "the parameter table needs {needed} bytes"),
                ParamsBuildError::BadFunction(address) => {
                    write!(f, "function {address:#x} is listed twice or has too many parameters")
                }
            }
        }
    }

    /// `text` cut to at most [`MAX_STRING_LEN`] bytes, on a character boundary.
    fn stored(text: &str) -> &str {
        let mut end = text.len().min(MAX_STRING_LEN);
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        &text[..end]
    }

    /// The table holding `functions` (in any order), as exactly `capacity`
    /// bytes, zero-padded.
    pub fn build_params(functions: &[FunctionInput], capacity: usize) -> Result<Vec<u8>, ParamsBuildError> {
        let mut sorted: Vec<&FunctionInput> = functions.iter().collect();
        sorted.sort_by_key(|f| f.address);
        for pair in sorted.windows(2) {
            if pair[0].address == pair[1].address {
                return Err(ParamsBuildError::BadFunction(pair[0].address));
            }
        }
        if let Some(f) = sorted.iter().find(|f| f.params.len() > MAX_PARAMS) {
            return Err(ParamsBuildError::BadFunction(f.address));
        }
        // Each distinct string once, in order of first use.
        let mut strings: Vec<u8> = Vec::new();
        let mut at: BTreeMap<&str, u32> = BTreeMap::new();
        fn intern<'s>(text: &'s str, strings: &mut Vec<u8>, at: &mut BTreeMap<&'s str, u32>) -> u32 {
            *at.entry(text).or_insert_with(|| {
                let offset = strings.len() as u32;
                strings.extend_from_slice(text.as_bytes());
                offset
            })
        }
        let param_count: usize = sorted.iter().map(|f| f.params.len()).sum();
        let params_at = HEADER_SIZE + sorted.len() * FUNCTION_SIZE;
        let strings_at = params_at + param_count * PARAM_SIZE;
        let mut body: Vec<u8> = vec![0; strings_at];
        let mut index = 0usize;
        for (n, function) in sorted.iter().enumerate() {
            let f = HEADER_SIZE + n * FUNCTION_SIZE;
            body[f..f + 4].copy_from_slice(&function.address.to_le_bytes());
            body[f + 4..f + 8].copy_from_slice(&(index as u32).to_le_bytes());
            body[f + 8..f + 10].copy_from_slice(&(function.params.len() as u16).to_le_bytes());
            for param in &function.params {
                let p = params_at + index * PARAM_SIZE;
                let (name, type_name) = (stored(&param.name), stored(&param.type_name));
                let name_at = intern(name, &mut strings, &mut at);
                let type_at = intern(type_name, &mut strings, &mut at);
                let (kind, detail, offset) = match param.location {
                    Location::Register(reg) => (0u8, reg.dwarf(), 0i32),
                    Location::Stack(offset) => (1, 0, offset),
                    Location::Unavailable(why) => (2, why.number(), 0),
                };
                body[p..p + 4].copy_from_slice(&name_at.to_le_bytes());
                body[p + 4..p + 6].copy_from_slice(&(name.len() as u16).to_le_bytes());
                body[p + 6..p + 8].copy_from_slice(&(type_name.len() as u16).to_le_bytes());
                body[p + 8..p + 12].copy_from_slice(&type_at.to_le_bytes());
                body[p + 12..p + 16].copy_from_slice(&param.size.to_le_bytes());
                body[p + 16] = kind;
                body[p + 17] = detail;
                body[p + 18] = param.class.number();
                body[p + 20..p + 24].copy_from_slice(&offset.to_le_bytes());
                index += 1;
            }
        }
        let used = strings_at + strings.len();
        if used > capacity || capacity > u32::MAX as usize {
            return Err(ParamsBuildError::TooSmall { needed: used });
        }
        let mut table = body;
        table.extend_from_slice(&strings);
        table.resize(capacity, 0);
        let checksum = adler32(&table[HEADER_SIZE..used]);
        table[..8].copy_from_slice(&PARAMS_FILLED);
        let fields = [
            (header::CAPACITY, capacity),
            (header::COUNT, sorted.len()),
            (header::FUNCTIONS, HEADER_SIZE),
            (header::PARAMS, params_at),
            (header::PARAM_COUNT, param_count),
            (header::STRINGS, strings_at),
            (header::STRINGS_LEN, strings.len()),
            (header::USED, used),
            (header::CHECKSUM, checksum as usize),
        ];
        for (offset, value) in fields {
            table[offset..offset + 4].copy_from_slice(&(value as u32).to_le_bytes());
        }
        Ok(table)
    }

    /// What the post-link tool writes when the table does not fit: a header
    /// that says so and how many bytes it `needed`, then zeros.
    pub fn too_small_marker(capacity: usize, needed: usize) -> Vec<u8> {
        let mut table = vec![0u8; capacity.max(HEADER_SIZE)];
        table[..8].copy_from_slice(&PARAMS_TOO_SMALL);
        table[header::CAPACITY..header::CAPACITY + 4].copy_from_slice(&(capacity as u32).to_le_bytes());
        table[header::NEEDED..header::NEEDED + 4]
            .copy_from_slice(&(needed.min(u32::MAX as usize) as u32).to_le_bytes());
        table.truncate(capacity.max(HEADER_SIZE));
        table
    }
}
