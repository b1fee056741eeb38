//! Formal parameters from DWARF: name, type, size, and where each one is at its function's first instruction.
//!
//! A probe at a function's entry runs before the function's first
//! instruction: before `push %ebp; mov %esp,%ebp`, before any spill. So a
//! parameter's place must be the one that holds at that address, and the
//! debug information says what it is:
//!
//! - a location list gives, per address range, where the value is; the
//!   entry that covers the function's first byte is the answer (none: the
//!   value is optimized out there);
//! - a single location expression holds over the whole function, entry
//!   included, except that a frame base of EBP (LLVM's, with frame
//!   pointers) is only set up by the prologue: `[EBP + N]` is translated
//!   to `[ESP + N - 4]` at the entry, and only for a function whose first
//!   bytes are that standard prologue; GCC's frame base, the CFA, is
//!   ESP + 4 at the entry;
//! - `DW_OP_entry_value(reg)` is the register at the entry, exactly;
//! - a slot below the return address (`[EBP + N]`, N < 8) is the
//!   function's own frame, filled after the entry: not readable there;
//! - pieces in adjacent stack slots make one stack value (a `u64` or a
//!   `&[u8]` passed on the stack); other pieces are split values;
//! - constants, memory behind a pointer register and anything else are
//!   reported as such, never guessed.
//!
//! The kernel is compiled with frame pointers, so LLVM's frame base is
//! always EBP; test ELFs compiled by GCC use the CFA. Register numbers are
//! the i386 psABI's (0 eax, 1 ecx, 2 edx, 3 ebx, 4 esp, 5 ebp, 6 esi,
//! 7 edi).
use crate::elf::{self, Image};
use gimli::{
    AttributeValue, DebuggingInformationEntry, EndianSlice, Expression, LittleEndian, Operation, UnitOffset, constants,
};
use ksyms_table::params::{Class, Location, ParamInput, Reg, Unavailable};
use std::collections::{HashMap, HashSet};

type R<'a> = EndianSlice<'a, LittleEndian>;
type Result<T> = std::result::Result<T, String>;

fn dwarf_error(error: gimli::Error) -> String {
    format!("bad DWARF: {error}")
}

/// Every function of `wanted` (first bytes) that the image's DWARF
/// describes, with its parameters in declaration order. `None` if the
/// image has no `.debug_info`. A function described twice with different
/// parameters (identical code folded by the linker) is left out.
pub fn read_params(data: &[u8], image: &Image, wanted: &HashSet<u64>) -> Result<Option<HashMap<u64, Vec<ParamInput>>>> {
    if elf::section_data(data, ".debug_info")?.is_none() {
        return Ok(None);
    }
    let load = |id: gimli::SectionId| -> Result<R<'_>> {
        let bytes = elf::section_data(data, id.name())?.unwrap_or(&[]);
        Ok(EndianSlice::new(bytes, LittleEndian))
    };
    let dwarf = gimli::Dwarf::load(load)?;
    let mut units = Vec::new();
    let mut headers = dwarf.units();
    while let Some(header) = headers.next().map_err(dwarf_error)? {
        units.push(dwarf.unit(header).map_err(dwarf_error)?);
    }
    // Where each function's prologue ends, as the line tables mark it.
    let mut prologue_ends = Vec::new();
    for unit in &units {
        let Some(program) = unit.line_program.clone() else { continue };
        let mut rows = program.rows();
        while let Some((_, row)) = rows.next_row().map_err(dwarf_error)? {
            if row.prologue_end() {
                prologue_ends.push(row.address());
            }
        }
    }
    prologue_ends.sort_unstable();
    let reader = Reader { data, image, dwarf: &dwarf, units, prologue_ends };
    let mut found: HashMap<u64, Vec<ParamInput>> = HashMap::new();
    let mut conflicting: HashSet<u64> = HashSet::new();
    for index in 0..reader.units.len() {
        let unit = &reader.units[index];
        let mut cursor = unit.entries();
        while let Some((_, entry)) = cursor.next_dfs().map_err(dwarf_error)? {
            if entry.tag() != constants::DW_TAG_subprogram || flag(entry, constants::DW_AT_declaration) {
                continue;
            }
            let Some(low_pc) = entry.attr_value(constants::DW_AT_low_pc).map_err(dwarf_error)? else { continue };
            let Some(address) = reader.dwarf.attr_address(unit, low_pc).map_err(dwarf_error)? else { continue };
            if !wanted.contains(&address) || conflicting.contains(&address) {
                continue;
            }
            let end = match entry.attr_value(constants::DW_AT_high_pc).map_err(dwarf_error)? {
                Some(AttributeValue::Udata(length)) => address.saturating_add(length),
                Some(value) => reader.dwarf.attr_address(unit, value).map_err(dwarf_error)?.unwrap_or(address),
                None => address,
            };
            let params = reader.function_params(index, entry, address..end)?;
            match found.get(&address) {
                Some(previous) if *previous != params => {
                    found.remove(&address);
                    conflicting.insert(address);
                }
                Some(_) => {}
                None => {
                    found.insert(address, params);
                }
            }
        }
    }
    Ok(Some(found))
}

fn flag(entry: &DebuggingInformationEntry<R>, name: constants::DwAt) -> bool {
    matches!(entry.attr_value(name), Ok(Some(AttributeValue::Flag(true))))
}

/// A DIE anywhere in `.debug_info`: its unit's index and its offset there.
type DieRef = (usize, UnitOffset);

/// What the frame base of a function is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FrameBase {
    /// `DW_OP_call_frame_cfa`: ESP + 4 at the entry, on i386.
    Cfa,
    /// `DW_OP_reg5`: EBP, set up by the prologue.
    Ebp,
    /// Anything else (or none): `DW_OP_fbreg` is not translated.
    Other,
}

/// What a function's locations are read against.
#[derive(Clone, Copy, Debug)]
struct Frame {
    base: FrameBase,
    /// Whether the function starts with `push %ebp; mov %esp,%ebp`, so
    /// that after it EBP is ESP - 4 as at the entry.
    standard_prologue: bool,
    /// The function's first byte.
    entry: u64,
    /// Where its prologue ends (the line table's `prologue_end`), if the
    /// line table marks it inside the function.
    prologue_end: Option<u64>,
}

/// One piece of a location, as it is at the entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Piece {
    Register(Reg),
    /// Memory at ESP + this offset, ESP as at the entry.
    Memory(i64),
    Missing,
    Unavailable(Unavailable),
}

struct Reader<'a, 'd> {
    data: &'a [u8],
    image: &'a Image,
    dwarf: &'d gimli::Dwarf<R<'a>>,
    units: Vec<gimli::Unit<R<'a>>>,
    /// Every `prologue_end` address of the line tables, sorted.
    prologue_ends: Vec<u64>,
}

impl<'a> Reader<'a, '_> {
    /// The DIE a reference attribute of unit `unit` points to.
    fn resolve(&self, unit: usize, value: AttributeValue<R<'a>>) -> Option<DieRef> {
        match value {
            AttributeValue::UnitRef(offset) => Some((unit, offset)),
            AttributeValue::DebugInfoRef(offset) => {
                let index = self
                    .units
                    .partition_point(|u| u.header.offset().as_debug_info_offset().is_some_and(|start| start <= offset))
                    .checked_sub(1)?;
                Some((index, offset.to_unit_offset(&self.units[index].header)?))
            }
            _ => None,
        }
    }

    fn entry(&self, die: DieRef) -> Result<DebuggingInformationEntry<'_, '_, R<'a>>> {
        self.units[die.0].entry(die.1).map_err(dwarf_error)
    }

    /// Attribute `name` of `die`, or of the DIE its abstract origin (or
    /// specification) names, for a concrete instance that leaves it there.
    fn inherited(&self, die: DieRef, name: constants::DwAt) -> Result<Option<(usize, AttributeValue<R<'a>>)>> {
        let mut die = die;
        for _ in 0..8 {
            let entry = self.entry(die)?;
            if let Some(value) = entry.attr_value(name).map_err(dwarf_error)? {
                return Ok(Some((die.0, value)));
            }
            let origin = match entry.attr_value(constants::DW_AT_abstract_origin).map_err(dwarf_error)? {
                Some(origin) => Some(origin),
                None => entry.attr_value(constants::DW_AT_specification).map_err(dwarf_error)?,
            };
            match origin.and_then(|origin| self.resolve(die.0, origin)) {
                Some(next) => die = next,
                None => return Ok(None),
            }
        }
        Ok(None)
    }

    fn string(&self, unit: usize, value: AttributeValue<R<'a>>) -> Option<String> {
        let text = self.dwarf.attr_string(&self.units[unit], value).ok()?;
        Some(text.to_string_lossy().into_owned())
    }

    fn name(&self, die: DieRef) -> Result<Option<String>> {
        Ok(self.inherited(die, constants::DW_AT_name)?.and_then(|(unit, value)| self.string(unit, value)))
    }

    /// The formal parameters among the children of `die`.
    fn formal_parameters(&self, die: DieRef) -> Result<Vec<DieRef>> {
        let unit = &self.units[die.0];
        let mut tree = unit.entries_tree(Some(die.1)).map_err(dwarf_error)?;
        let root = tree.root().map_err(dwarf_error)?;
        let mut children = root.children();
        let mut params = Vec::new();
        while let Some(child) = children.next().map_err(dwarf_error)? {
            if child.entry().tag() == constants::DW_TAG_formal_parameter {
                params.push((die.0, child.entry().offset()));
            }
        }
        Ok(params)
    }

    /// The parameters of the subprogram `entry` (of unit `unit`), which
    /// starts at `address`.
    fn function_params(
        &self,
        unit: usize,
        entry: &DebuggingInformationEntry<R<'a>>,
        range: std::ops::Range<u64>,
    ) -> Result<Vec<ParamInput>> {
        let address = range.start;
        let next_end = self.prologue_ends[self.prologue_ends.partition_point(|&end| end < address)..].first();
        let frame = Frame {
            base: self.frame_base(unit, entry),
            standard_prologue: matches!(
                self.image.bytes_at(self.data, address, 3),
                Some([0x55, 0x89, 0xe5] | [0x55, 0x8b, 0xec])
            ),
            entry: address,
            prologue_end: next_end.copied().filter(|&end| end < range.end),
        };
        let concrete = self.formal_parameters((unit, entry.offset()))?;
        // An out-of-line instance of an inlined or generic function lists
        // its parameters in the abstract instance; its own children carry
        // the locations and name the abstract parameter they are.
        let origin = entry.attr_value(constants::DW_AT_abstract_origin).map_err(dwarf_error)?;
        let declared = match origin.and_then(|origin| self.resolve(unit, origin)) {
            Some(abstract_die) => self.formal_parameters(abstract_die)?,
            None => concrete.clone(),
        };
        let mut with_origin: HashMap<DieRef, DieRef> = HashMap::new();
        for &die in &concrete {
            let child = self.entry(die)?;
            if let Some(origin) = child.attr_value(constants::DW_AT_abstract_origin).map_err(dwarf_error)?
                && let Some(target) = self.resolve(die.0, origin)
            {
                with_origin.insert(target, die);
            }
        }
        let mut params = Vec::with_capacity(declared.len());
        for die in declared {
            // The concrete DIE with the location: the parameter itself, or
            // the concrete child that names it as its origin.
            let located = if concrete.contains(&die) { Some(die) } else { with_origin.get(&die).copied() };
            let name = self.name(die)?.unwrap_or_default();
            let (type_name, size, class) = match self.inherited(die, constants::DW_AT_type)? {
                Some((type_unit, value)) => match self.resolve(type_unit, value) {
                    Some(type_die) => self.describe_type(type_die, 0)?,
                    None => ("?".into(), 0, Class::Other),
                },
                None => ("void".into(), 0, Class::Other),
            };
            let location = match located {
                Some(die) => self.location(die, frame, size)?,
                None => Location::Unavailable(Unavailable::OptimizedOut),
            };
            params.push(ParamInput { name, type_name, size, location, class });
        }
        Ok(params)
    }

    fn frame_base(&self, unit: usize, entry: &DebuggingInformationEntry<R<'a>>) -> FrameBase {
        let Ok(Some(AttributeValue::Exprloc(expression))) = entry.attr_value(constants::DW_AT_frame_base) else {
            return FrameBase::Other;
        };
        match operations(expression, self.units[unit].encoding()).as_deref() {
            Some([Operation::CallFrameCFA]) => FrameBase::Cfa,
            Some([Operation::Register { register }]) if register.0 == 5 => FrameBase::Ebp,
            _ => FrameBase::Other,
        }
    }

    /// Where the parameter `die` (a concrete DIE) is at the function's
    /// first byte.
    ///
    /// A location list covers the entry with one of its ranges, or not at
    /// all. One exception: LLVM starts the range of an argument that the
    /// caller left on the stack, described from EBP, where the prologue
    /// has set EBP up, not at the entry. The prologue only pushes and
    /// moves the stack pointer; it writes no argument slot. So a list whose
    /// first range starts inside the prologue (before the line table's
    /// `prologue_end`) with a caller's stack slot gives that slot.
    fn location(&self, die: DieRef, frame: Frame, size: u32) -> Result<Location> {
        let entry = self.entry(die)?;
        let unit = &self.units[die.0];
        let address = frame.entry;
        let expression = match entry.attr_value(constants::DW_AT_location).map_err(dwarf_error)? {
            Some(AttributeValue::Exprloc(expression)) => Some(expression),
            Some(value) => match self.dwarf.attr_locations(unit, value).map_err(dwarf_error)? {
                Some(mut list) => {
                    let mut covering = None;
                    let mut first_after: Option<(u64, Expression<R<'a>>)> = None;
                    while let Some(item) = list.next().map_err(dwarf_error)? {
                        if item.range.begin <= address && address < item.range.end {
                            covering = Some(item.data);
                            break;
                        }
                        if item.range.begin > address && first_after.as_ref().is_none_or(|(b, _)| item.range.begin < *b)
                        {
                            first_after = Some((item.range.begin, item.data));
                        }
                    }
                    if covering.is_none()
                        && let Some((begin, data)) = first_after
                        && frame.prologue_end.is_some_and(|end| begin <= end)
                        && let Location::Stack(offset) = translate(data, unit.encoding(), frame, size)
                    {
                        return Ok(Location::Stack(offset));
                    }
                    covering
                }
                None => None,
            },
            None if entry.attr_value(constants::DW_AT_const_value).map_err(dwarf_error)?.is_some() => {
                return Ok(Location::Unavailable(Unavailable::Constant));
            }
            None => None,
        };
        let Some(expression) = expression else { return Ok(Location::Unavailable(Unavailable::OptimizedOut)) };
        Ok(translate(expression, unit.encoding(), frame, size))
    }

    /// A type's name, its size and its class. Typedefs and qualifiers keep
    /// their own name (`size_t`, `const char *`) and the class and size
    /// of what they name.
    fn describe_type(&self, die: DieRef, depth: usize) -> Result<(String, u32, Class)> {
        if depth > 16 {
            return Ok(("?".into(), 0, Class::Other));
        }
        let entry = self.entry(die)?;
        let own_name = match entry.attr_value(constants::DW_AT_name).map_err(dwarf_error)? {
            Some(value) => self.string(die.0, value),
            None => None,
        };
        let byte_size = entry
            .attr_value(constants::DW_AT_byte_size)
            .map_err(dwarf_error)?
            .and_then(|value| value.udata_value())
            .map(|size| size.min(u64::from(u32::MAX)) as u32);
        let target = match entry.attr_value(constants::DW_AT_type).map_err(dwarf_error)? {
            Some(value) => self.resolve(die.0, value),
            None => None,
        };
        let described = |reader: &Self| -> Result<Option<(String, u32, Class)>> {
            match target {
                Some(target) => reader.describe_type(target, depth + 1).map(Some),
                None => Ok(None),
            }
        };
        let tag = entry.tag();
        Ok(match tag {
            constants::DW_TAG_base_type => {
                let encoding = match entry.attr_value(constants::DW_AT_encoding).map_err(dwarf_error)? {
                    Some(AttributeValue::Encoding(encoding)) => Some(encoding),
                    _ => None,
                };
                let class = match encoding {
                    Some(constants::DW_ATE_signed | constants::DW_ATE_signed_char) => Class::Signed,
                    Some(
                        constants::DW_ATE_unsigned
                        | constants::DW_ATE_unsigned_char
                        | constants::DW_ATE_boolean
                        | constants::DW_ATE_UTF,
                    ) => Class::Unsigned,
                    Some(constants::DW_ATE_float) => Class::Float,
                    _ => Class::Other,
                };
                (own_name.unwrap_or_else(|| "?".into()), byte_size.unwrap_or(0), class)
            }
            constants::DW_TAG_pointer_type
            | constants::DW_TAG_reference_type
            | constants::DW_TAG_rvalue_reference_type => {
                let pointee = described(self)?;
                let char_pointee = match target {
                    Some(target) => self.is_char(target, 0)?,
                    None => false,
                };
                let name = own_name.unwrap_or_else(|| match &pointee {
                    Some((name, ..)) => format!("{name} *"),
                    None => "void *".into(),
                });
                let size = byte_size.unwrap_or(u32::from(self.units[die.0].encoding().address_size));
                (name, size, if char_pointee { Class::CharPointer } else { Class::Pointer })
            }
            constants::DW_TAG_typedef => {
                let (inner, size, class) = described(self)?.unwrap_or_else(|| ("void".into(), 0, Class::Other));
                (own_name.unwrap_or(inner), size, class)
            }
            constants::DW_TAG_const_type | constants::DW_TAG_volatile_type | constants::DW_TAG_restrict_type => {
                let qualifier = match tag {
                    constants::DW_TAG_const_type => "const",
                    constants::DW_TAG_volatile_type => "volatile",
                    _ => "restrict",
                };
                let (inner, size, class) = described(self)?.unwrap_or_else(|| ("void".into(), 0, Class::Other));
                (format!("{qualifier} {inner}"), size, class)
            }
            constants::DW_TAG_enumeration_type => {
                // The class of the integer under it; C's enum is an int.
                let class = described(self)?.map_or(Class::Signed, |(_, _, class)| class);
                (own_name.unwrap_or_else(|| "enum".into()), byte_size.unwrap_or(4), class)
            }
            _ => {
                let fallback = match tag {
                    constants::DW_TAG_structure_type => "struct",
                    constants::DW_TAG_union_type => "union",
                    constants::DW_TAG_array_type => "array",
                    constants::DW_TAG_subroutine_type => "function",
                    _ => "?",
                };
                (own_name.unwrap_or_else(|| fallback.into()), byte_size.unwrap_or(0), Class::Other)
            }
        })
    }

    /// Whether `die` is an 8-bit character type (through typedefs and
    /// qualifiers): what a `string` fetch reads through a pointer to.
    fn is_char(&self, die: DieRef, depth: usize) -> Result<bool> {
        if depth > 16 {
            return Ok(false);
        }
        let entry = self.entry(die)?;
        match entry.tag() {
            constants::DW_TAG_base_type => {
                let size =
                    entry.attr_value(constants::DW_AT_byte_size).map_err(dwarf_error)?.and_then(|v| v.udata_value());
                let encoding = entry.attr_value(constants::DW_AT_encoding).map_err(dwarf_error)?;
                Ok(size == Some(1)
                    && matches!(
                        encoding,
                        Some(AttributeValue::Encoding(
                            constants::DW_ATE_unsigned_char
                                | constants::DW_ATE_signed_char
                                | constants::DW_ATE_unsigned
                        ))
                    ))
            }
            constants::DW_TAG_typedef
            | constants::DW_TAG_const_type
            | constants::DW_TAG_volatile_type
            | constants::DW_TAG_restrict_type => match entry.attr_value(constants::DW_AT_type).map_err(dwarf_error)? {
                Some(value) => match self.resolve(die.0, value) {
                    Some(target) => self.is_char(target, depth + 1),
                    None => Ok(false),
                },
                None => Ok(false),
            },
            _ => Ok(false),
        }
    }
}

/// The operations of `expression`, if they all parse.
fn operations<'a>(expression: Expression<R<'a>>, encoding: gimli::Encoding) -> Option<Vec<Operation<R<'a>>>> {
    let mut ops = Vec::new();
    let mut iter = expression.operations(encoding);
    while let Some(op) = iter.next().ok()? {
        ops.push(op);
    }
    Some(ops)
}

/// Where the location `expression` puts a value of `size` bytes at the
/// function's first instruction (`frame`: how to read its frame base).
fn translate(expression: Expression<R>, encoding: gimli::Encoding, frame: Frame, size: u32) -> Location {
    let Some(ops) = operations(expression, encoding) else {
        return Location::Unavailable(Unavailable::Unsupported);
    };
    // Split at DW_OP_piece: (the piece's operations, its size in bytes).
    let mut pieces: Vec<(Piece, Option<u64>)> = Vec::new();
    let mut start = 0;
    for (at, op) in ops.iter().enumerate() {
        if let Operation::Piece { size_in_bits, bit_offset } = *op {
            let piece = if bit_offset.is_some() || size_in_bits % 8 != 0 {
                Piece::Unavailable(Unavailable::Unsupported)
            } else {
                piece(&ops[start..at], encoding, frame, size_in_bits / 8)
            };
            pieces.push((piece, Some(size_in_bits / 8)));
            start = at + 1;
        }
    }
    if start < ops.len() || pieces.is_empty() {
        pieces.push((piece(&ops[start..], encoding, frame, u64::from(size)), None));
    }
    let location = match pieces.as_slice() {
        [(piece, covered)] if covered.is_none_or(|bytes| bytes >= u64::from(size)) => match *piece {
            Piece::Register(reg) => Location::Register(reg),
            Piece::Memory(offset) => stack(offset),
            Piece::Missing => Location::Unavailable(Unavailable::OptimizedOut),
            Piece::Unavailable(why) => Location::Unavailable(why),
        },
        _ => {
            // Memory pieces that follow each other from the first byte are
            // one value in consecutive stack slots; anything else is split.
            let mut next = None;
            let mut contiguous = true;
            for (piece, bytes) in &pieces {
                match (*piece, *bytes) {
                    (Piece::Memory(offset), Some(bytes)) if next.is_none_or(|n| n == offset) => {
                        next = Some(offset + bytes as i64);
                    }
                    _ => contiguous = false,
                }
            }
            match (contiguous, pieces.first()) {
                (true, Some((Piece::Memory(first), _))) => stack(*first),
                _ => Location::Unavailable(Unavailable::Split),
            }
        }
    };
    match location {
        Location::Register(_) | Location::Stack(_) if size > 8 => Location::Unavailable(Unavailable::TooLarge),
        Location::Register(_) if size > 4 => Location::Unavailable(Unavailable::Split),
        other => other,
    }
}

/// A stack location at ESP + `offset` at the entry: only above the return
/// address ([ESP]) is it the caller's, filled before the call.
fn stack(offset: i64) -> Location {
    match i32::try_from(offset) {
        Ok(offset) if offset >= 4 => Location::Stack(offset),
        Ok(_) => Location::Unavailable(Unavailable::InFrame),
        Err(_) => Location::Unavailable(Unavailable::Unsupported),
    }
}

/// One piece's operations (of `bytes` bytes), as a place at the entry.
fn piece(ops: &[Operation<R>], encoding: gimli::Encoding, frame: Frame, bytes: u64) -> Piece {
    // [EBP + n] after the standard prologue is [ESP + n - 4] at the entry.
    let from_ebp = |offset: i64| {
        if frame.standard_prologue { Piece::Memory(offset - 4) } else { Piece::Unavailable(Unavailable::Unsupported) }
    };
    match ops {
        [] => Piece::Missing,
        [Operation::Register { register }] => match Reg::from_dwarf(register.0) {
            Some(reg) => Piece::Register(reg),
            None => Piece::Unavailable(Unavailable::Unsupported),
        },
        [Operation::FrameOffset { offset }] => match frame.base {
            FrameBase::Cfa => Piece::Memory(4 + offset),
            FrameBase::Ebp => from_ebp(*offset),
            FrameBase::Other => Piece::Unavailable(Unavailable::Unsupported),
        },
        [Operation::RegisterOffset { register, offset, .. }] if register.0 == 5 => from_ebp(*offset),
        [Operation::RegisterOffset { register, offset, .. }] if register.0 == 4 => Piece::Memory(*offset),
        [Operation::CallFrameCFA] => Piece::Memory(4),
        [Operation::CallFrameCFA, Operation::PlusConstant { value }] => Piece::Memory(4 + *value as i64),
        [Operation::EntryValue { expression }, Operation::StackValue] => {
            match operations(Expression(*expression), encoding).as_deref() {
                Some([Operation::Register { register }]) => match Reg::from_dwarf(register.0) {
                    Some(reg) => Piece::Register(reg),
                    None => Piece::Unavailable(Unavailable::Unsupported),
                },
                _ => Piece::Unavailable(Unavailable::Unsupported),
            }
        }
        // LLVM's `reg & mask` for a narrow value kept in a wider register:
        // the register itself when no mask clears a bit of the value.
        [Operation::RegisterOffset { register, offset: 0, .. }, masks @ .., Operation::StackValue]
            if !masks.is_empty() && masks.len() % 2 == 0 =>
        {
            // A one-byte value masked to its lowest bit is LLVM's `i1`, a
            // `bool` its caller zero-extended: the byte is the value.
            let full = match bytes {
                1 if matches!(masks, [Operation::UnsignedConstant { value: 1 }, Operation::And]) => 1,
                8.. => u64::MAX,
                _ => (1u64 << (8 * bytes)) - 1,
            };
            let keeps_value = masks.chunks(2).all(
                |pair| matches!(pair, [Operation::UnsignedConstant { value }, Operation::And] if value & full == full),
            );
            match Reg::from_dwarf(register.0) {
                Some(reg) if keeps_value && bytes <= 4 => Piece::Register(reg),
                _ => Piece::Unavailable(Unavailable::Unsupported),
            }
        }
        [Operation::ImplicitValue { .. }] => Piece::Unavailable(Unavailable::Constant),
        [.., Operation::StackValue] => {
            // A value computed from registers or memory is not stored
            // anywhere as it is; one computed from constants only is a constant.
            let reads = ops.iter().any(|op| {
                matches!(
                    op,
                    Operation::Register { .. }
                        | Operation::RegisterOffset { .. }
                        | Operation::FrameOffset { .. }
                        | Operation::CallFrameCFA
                        | Operation::EntryValue { .. }
                        | Operation::Deref { .. }
                )
            });
            Piece::Unavailable(if reads { Unavailable::Unsupported } else { Unavailable::Constant })
        }
        _ => Piece::Unavailable(Unavailable::Unsupported),
    }
}

#[cfg(test)]
mod tests {
    //! The translation of location expressions that GCC does not emit
    //! (the kernel's LLVM ones: an EBP frame base, register masks, stack
    //! pieces), byte by byte.
    use super::*;

    const ENCODING: gimli::Encoding = gimli::Encoding { address_size: 4, format: gimli::Format::Dwarf32, version: 4 };

    fn frame(base: FrameBase, standard_prologue: bool) -> Frame {
        Frame { base, standard_prologue, entry: 0x1000, prologue_end: None }
    }

    fn at_entry(bytes: &[u8], frame: Frame, size: u32) -> Location {
        translate(Expression(EndianSlice::new(bytes, LittleEndian)), ENCODING, frame, size)
    }

    const LLVM: Frame = Frame { base: FrameBase::Ebp, standard_prologue: true, entry: 0x1000, prologue_end: None };
    // DW_OP_fbreg, DW_OP_breg5 (ebp), DW_OP_breg4 (esp), DW_OP_piece, DW_OP_reg0.
    const FBREG: u8 = 0x91;
    const BREG5: u8 = 0x75;
    const BREG4: u8 = 0x74;
    const PIECE: u8 = 0x93;
    const REG0: u8 = 0x50;
    const CONSTU: u8 = 0x10;
    const AND: u8 = 0x1a;
    const STACK_VALUE: u8 = 0x9f;

    #[test]
    fn ebp_slots_are_esp_slots_at_the_entry_after_a_standard_prologue() {
        // [ebp+8] is the first argument: [esp+4] before `push %ebp`.
        assert_eq!(at_entry(&[FBREG, 8], LLVM, 4), Location::Stack(4));
        assert_eq!(at_entry(&[BREG5, 12], LLVM, 4), Location::Stack(8));
        // The return address and the function's own frame are no argument.
        assert_eq!(at_entry(&[FBREG, 4], LLVM, 4), Location::Unavailable(Unavailable::InFrame));
        assert_eq!(at_entry(&[FBREG, 0x70], LLVM, 4), Location::Unavailable(Unavailable::InFrame)); // -16
        // Without the prologue EBP is the caller's: not translated.
        let odd = frame(FrameBase::Ebp, false);
        assert_eq!(at_entry(&[FBREG, 8], odd, 4), Location::Unavailable(Unavailable::Unsupported));
        // ESP-relative is ESP at the entry; the CFA is ESP + 4.
        assert_eq!(at_entry(&[BREG4, 8], LLVM, 4), Location::Stack(8));
        assert_eq!(at_entry(&[FBREG, 0], frame(FrameBase::Cfa, false), 4), Location::Stack(4));
        assert_eq!(
            at_entry(&[FBREG, 8], frame(FrameBase::Other, true), 4),
            Location::Unavailable(Unavailable::Unsupported)
        );
    }

    #[test]
    fn pieces_in_consecutive_slots_are_one_value() {
        // A `&[u8]`: [ebp+8] and [ebp+12], 4 bytes each.
        let pair = [BREG5, 8, PIECE, 4, BREG5, 12, PIECE, 4];
        assert_eq!(at_entry(&pair, LLVM, 8), Location::Stack(4));
        // Not consecutive, or a register and a slot: split.
        let gap = [BREG5, 8, PIECE, 4, BREG5, 16, PIECE, 4];
        assert_eq!(at_entry(&gap, LLVM, 8), Location::Unavailable(Unavailable::Split));
        let mixed = [REG0, PIECE, 4, BREG5, 12, PIECE, 4];
        assert_eq!(at_entry(&mixed, LLVM, 8), Location::Unavailable(Unavailable::Split));
        // Half of it missing.
        assert_eq!(at_entry(&[PIECE, 4, REG0 + 3, PIECE, 4], LLVM, 8), Location::Unavailable(Unavailable::Split));
        // One piece that covers the value is the value.
        assert_eq!(at_entry(&[REG0 + 1, PIECE, 4], LLVM, 4), Location::Register(Reg::Ecx));
    }

    #[test]
    fn registers_masks_constants_and_sizes() {
        assert_eq!(at_entry(&[REG0 + 2], LLVM, 4), Location::Register(Reg::Edx));
        // An 8-byte value cannot be in one register; 12 bytes fit no type.
        assert_eq!(at_entry(&[REG0], LLVM, 8), Location::Unavailable(Unavailable::Split));
        assert_eq!(at_entry(&[FBREG, 8], LLVM, 12), Location::Unavailable(Unavailable::TooLarge));
        // `edx & 0xff` of a byte is dl; `& 1` of a bool is its byte.
        assert_eq!(
            at_entry(&[BREG5 - 3, 0, CONSTU, 0xff, 0x01, AND, STACK_VALUE], LLVM, 1),
            Location::Register(Reg::Edx)
        );
        assert_eq!(at_entry(&[BREG5 - 3, 0, CONSTU, 1, AND, STACK_VALUE], LLVM, 1), Location::Register(Reg::Edx));
        // A mask that clears bits of the value is a computed value.
        assert_eq!(
            at_entry(&[BREG5 - 3, 0, CONSTU, 0x0f, AND, STACK_VALUE], LLVM, 1),
            Location::Unavailable(Unavailable::Unsupported)
        );
        // entry_value(ecx) is ecx at the entry.
        assert_eq!(at_entry(&[0xa3, 1, REG0 + 1, STACK_VALUE], LLVM, 4), Location::Register(Reg::Ecx));
        // lit5, stack_value: a constant.
        assert_eq!(at_entry(&[0x35, STACK_VALUE], LLVM, 4), Location::Unavailable(Unavailable::Constant));
        // Memory behind a pointer register: not translated.
        assert_eq!(at_entry(&[BREG5 - 4, 0], LLVM, 4), Location::Unavailable(Unavailable::Unsupported));
        // An empty expression: nowhere.
        assert_eq!(at_entry(&[], LLVM, 4), Location::Unavailable(Unavailable::OptimizedOut));
    }
}
