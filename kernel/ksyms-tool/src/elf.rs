//! What the tool needs from a kernel image: its sections, its .symtab and where the tables lie.
//!
//! The images are ELF32 little-endian (i686); the `object` crate parses
//! them, and this module turns its view into the few plain facts the table
//! is computed from, so the rest of the tool knows nothing of ELF.
use ksyms_table::layout::{TABLE_SECTION, TABLE_SYMBOL};
use ksyms_table::params::PARAMS_SYMBOL;
use object::elf::{self, FileHeader32};
use object::read::elf::{FileHeader, SectionHeader, Sym};
use object::{Endianness, SectionIndex};

/// A section, as far as the table cares.
#[derive(Clone, Debug)]
pub struct Section {
    /// Its first address.
    pub address: u64,
    /// Its size in memory.
    pub size: u64,
    /// Whether it holds code (SHF_EXECINSTR).
    pub executable: bool,
    /// Whether it has no bytes in the file (SHT_NOBITS).
    pub nobits: bool,
    /// Where its bytes start in the file.
    pub offset: u64,
}

/// A .symtab entry.
#[derive(Clone, Debug)]
pub struct ElfSymbol {
    /// The raw (mangled) name.
    pub name: String,
    /// st_value.
    pub value: u64,
    /// st_size.
    pub size: u64,
    /// STT_FUNC (else STT_NOTYPE or another type).
    pub kind: u8,
    /// STB_GLOBAL, STB_WEAK or STB_LOCAL.
    pub bind: u8,
    /// The index of the section it is defined in; `None` for undefined,
    /// absolute and other special symbols.
    pub section: Option<usize>,
}

/// A parsed image.
pub struct Image {
    /// Every section, by index.
    pub sections: Vec<Section>,
    /// Every .symtab entry.
    pub symbols: Vec<ElfSymbol>,
    /// Where the table's bytes lie in the file: (offset, length).
    pub table: (usize, usize),
    /// Where the parameter table's bytes lie in the file, if the image
    /// has one (`probe_kernel_params`).
    pub params: Option<(usize, usize)>,
}

impl Image {
    /// `len` bytes of the image `data` at virtual address `address`, if a
    /// section with file bytes holds them all.
    pub fn bytes_at<'a>(&self, data: &'a [u8], address: u64, len: usize) -> Option<&'a [u8]> {
        let section = self.sections.iter().find(|s| {
            !s.nobits && s.address != 0 && s.address <= address && address + len as u64 <= s.address + s.size
        })?;
        let start = usize::try_from(section.offset + (address - section.address)).ok()?;
        data.get(start..start.checked_add(len)?)
    }
}

/// Why an image cannot take a table.
pub type Error = String;

/// Reads `data`, the whole image file.
pub fn parse(data: &[u8]) -> Result<Image, Error> {
    let header = FileHeader32::<Endianness>::parse(data).map_err(|e| format!("not an ELF32 file: {e}"))?;
    let endian = header.endian().map_err(|e| e.to_string())?;
    if endian != Endianness::Little {
        return Err("not a little-endian ELF file".into());
    }
    let table = header.sections(endian, data).map_err(|e| format!("bad section headers: {e}"))?;
    if table.is_empty() {
        return Err("no section headers".into());
    }
    let mut sections = Vec::with_capacity(table.len());
    let mut table_section = None;
    for (index, section) in table.enumerate() {
        let nobits = section.sh_type(endian) == elf::SHT_NOBITS;
        sections.push(Section {
            address: section.sh_addr(endian).into(),
            size: section.sh_size(endian).into(),
            executable: section.sh_flags(endian).0 & elf::SHF_EXECINSTR.0 != 0,
            nobits,
            offset: section.sh_offset(endian).into(),
        });
        if table_section.is_none() && table.section_name(endian, section) == Ok(TABLE_SECTION.as_bytes()) {
            if nobits {
                return Err(format!("{TABLE_SECTION} is NOBITS; its static must not be all zeros"));
            }
            table_section = Some((index, section.sh_offset(endian) as usize, section.sh_size(endian) as usize));
        }
    }

    let symtab = table.symbols(endian, data, elf::SHT_SYMTAB).map_err(|e| format!("bad .symtab: {e}"))?;
    if symtab.is_empty() {
        return Err("no .symtab (was the image stripped?)".into());
    }
    let strings = symtab.strings();
    let mut symbols = Vec::with_capacity(symtab.len());
    for symbol in symtab.iter() {
        let name = symbol.name(endian, strings).map_err(|e| format!("bad symbol name: {e}"))?;
        let shndx = symbol.st_shndx(endian);
        symbols.push(ElfSymbol {
            name: String::from_utf8_lossy(name).into_owned(),
            value: symbol.st_value(endian).into(),
            size: symbol.st_size(endian).into(),
            kind: symbol.st_type().0,
            bind: symbol.st_bind().0,
            section: shndx.index().map(usize::from).filter(|&i| i < sections.len()),
        });
    }

    let params = match find_symbol_static(&table, endian, &sections, &symbols, PARAMS_SYMBOL) {
        Ok(place) => Some(place),
        Err(None) => None,
        Err(Some(message)) => return Err(message),
    };
    let table = match table_section {
        Some((_, offset, size)) => (offset, size),
        None => find_symbol_static(&table, endian, &sections, &symbols, TABLE_SYMBOL).map_err(|error| {
            error.unwrap_or_else(|| {
                format!("no {TABLE_SECTION} section and no {TABLE_SYMBOL} symbol: is kernel/symbols.rs linked in?")
            })
        })?,
    };
    for (what, place) in [("table", Some(table)), ("parameter table", params)] {
        let Some((offset, size)) = place else { continue };
        if offset.checked_add(size).is_none_or(|end| end > data.len()) {
            return Err(format!("the {what} at file offset {offset:#x} runs past the end of the file"));
        }
    }
    Ok(Image { sections, symbols, table, params })
}

/// (file offset, size) of the static exported as `name`, found by its
/// symbol: `Err(None)` if there is no such symbol, `Err(Some(why))` if
/// there is one but its bytes are not in the file.
fn find_symbol_static(
    table: &object::read::elf::SectionTable<FileHeader32<Endianness>>,
    endian: Endianness,
    sections: &[Section],
    symbols: &[ElfSymbol],
    name: &str,
) -> Result<(usize, usize), Option<Error>> {
    let symbol = symbols.iter().find(|s| s.name == name && s.section.is_some_and(|i| i > 0)).ok_or(None)?;
    let index = symbol.section.unwrap_or(0);
    let section = &sections[index];
    if section.nobits {
        return Err(Some(format!("{name} lies in a NOBITS section")));
    }
    let inside = section.address <= symbol.value && symbol.value + symbol.size <= section.address + section.size;
    if !inside {
        return Err(Some(format!("{name} lies outside its section")));
    }
    let header = table.section(SectionIndex(index)).map_err(|e| Some(e.to_string()))?;
    let offset = u64::from(header.sh_offset(endian)) + symbol.value - section.address;
    Ok((offset as usize, symbol.size as usize))
}

/// The bytes of every section, by name, for the DWARF reader: `None` for
/// a section the image does not have.
pub fn section_data<'a>(data: &'a [u8], name: &str) -> Result<Option<&'a [u8]>, Error> {
    let header = FileHeader32::<Endianness>::parse(data).map_err(|e| format!("not an ELF32 file: {e}"))?;
    let endian = header.endian().map_err(|e| e.to_string())?;
    let table = header.sections(endian, data).map_err(|e| format!("bad section headers: {e}"))?;
    match table.section_by_name(endian, name.as_bytes()) {
        Some((_, section)) if section.sh_type(endian) != elf::SHT_NOBITS => {
            section.data(endian, data).map(Some).map_err(|_| format!("{name} runs past the end of the file"))
        }
        _ => Ok(None),
    }
}
