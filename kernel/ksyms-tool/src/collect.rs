//! Which .symtab entries become table entries, with what size and flags.
//!
//! The table lists code only: functions (STT_FUNC) and asm labels
//! (STT_NOTYPE) in executable sections, without the linker script's
//! `__*_start`/`__*_end` markers and assembler-local `.L`/`$` names. Labels
//! have no ELF size, so each reaches to the next symbol (or the end of its
//! section, or of the function it sits in); a symbol that starts inside a
//! sized symbol is marked nested, so address lookups report the enclosing
//! function. One entry is kept per (address, demangled name).
use crate::demangle::demangle;
use crate::elf::{ElfSymbol, Section};
use ksyms_table::{Flags, Input};
use std::collections::HashMap;

const STT_NOTYPE: u8 = 0;
const STT_FUNC: u8 = 2;
const STB_GLOBAL: u8 = 1;
const STB_WEAK: u8 = 2;

/// A linker-script marker such as `__text_start` or `__kprobes_text_end`:
/// an address, not code.
fn is_marker(name: &str) -> bool {
    let Some(rest) = name.strip_prefix("__") else { return false };
    let Some(middle) = rest.strip_suffix("_start").or_else(|| rest.strip_suffix("_end")) else { return false };
    middle.chars().all(|c| c.is_alphanumeric() || c == '_')
}

/// A symbol that passed the filter, before sizing.
struct Candidate<'a> {
    address: u64,
    size: u64,
    name: &'a str,
    flags: Flags,
}

/// The table's entries for an image's sections and symbols, in no
/// particular order (the writer sorts them).
pub fn collect(sections: &[Section], symbols: &[ElfSymbol]) -> Vec<Input> {
    // Per section, in order of first appearance, each in .symtab order.
    let mut by_section: Vec<(usize, Vec<Candidate>)> = Vec::new();
    for symbol in symbols {
        let Some(index) = symbol.section else { continue };
        let section = &sections[index];
        let name = symbol.name.as_str();
        let wanted = (symbol.kind == STT_FUNC || symbol.kind == STT_NOTYPE)
            && !name.is_empty()
            && section.executable
            && !section.nobits
            && !name.starts_with(".L")
            && !name.starts_with('$')
            && !(symbol.kind == STT_NOTYPE && is_marker(name));
        if !wanted {
            continue;
        }
        let mut flags = Flags::empty();
        if symbol.kind == STT_FUNC {
            flags = flags | Flags::FUNC;
        }
        if symbol.bind == STB_GLOBAL || symbol.bind == STB_WEAK {
            flags = flags | Flags::GLOBAL;
        }
        let candidate = Candidate { address: symbol.value, size: symbol.size, name, flags };
        match by_section.iter_mut().find(|(i, _)| *i == index) {
            Some((_, items)) => items.push(candidate),
            None => by_section.push((index, vec![candidate])),
        }
    }

    let mut kept: Vec<Input> = Vec::new();
    let mut position: HashMap<(u32, String), usize> = HashMap::new();
    for (index, items) in &by_section {
        let section_end = sections[*index].address + sections[*index].size;
        let mut starts: Vec<u64> = items.iter().map(|c| c.address).collect();
        starts.sort_unstable();
        starts.dedup();
        let mut sized: Vec<(u64, u64)> =
            items.iter().filter(|c| c.size > 0).map(|c| (c.address, c.address + c.size)).collect();
        sized.sort_unstable();
        // Running maximum of sized ends, to find an enclosing range quickly.
        let reach: Vec<u64> = sized
            .iter()
            .scan(0, |best, &(_, end)| {
                *best = end.max(*best);
                Some(*best)
            })
            .collect();
        for candidate in items {
            // The furthest-reaching sized symbol that starts strictly before this one.
            let before = sized.partition_point(|&(start, _)| start < candidate.address);
            let enclosing_end = if before > 0 { reach[before - 1] } else { 0 };
            let nested = enclosing_end > candidate.address;
            let mut size = candidate.size as i128;
            if size == 0 {
                let next = starts.partition_point(|&start| start <= candidate.address);
                let mut end = starts.get(next).copied().unwrap_or(section_end);
                if nested {
                    end = end.min(enclosing_end);
                }
                size = end as i128 - candidate.address as i128;
            }
            let (Ok(address), Ok(size)) = (u32::try_from(candidate.address), u32::try_from(size)) else { continue };
            if size == 0 {
                continue;
            }
            let flags = if nested { candidate.flags | Flags::NESTED } else { candidate.flags };
            let entry = Input { address, size, name: demangle(candidate.name), flags };
            let key = (address, entry.name.clone());
            match position.get(&key) {
                None => {
                    position.insert(key, kept.len());
                    kept.push(entry);
                }
                // Duplicates (same address and name): keep the most telling one.
                Some(&at) => {
                    let rank = |e: &Input| (e.flags.without(Flags::NESTED).0, e.size);
                    if rank(&entry) > rank(&kept[at]) {
                        kept[at] = entry;
                    }
                }
            }
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::is_marker;

    #[test]
    fn markers() {
        assert!(is_marker("__text_start"));
        assert!(is_marker("__kprobes_text_end"));
        assert!(is_marker("___end"));
        assert!(!is_marker("__end"));
        assert!(!is_marker("__start"));
        assert!(!is_marker("_text_start"));
        assert!(!is_marker("__text_started"));
        assert!(!is_marker("__a.b_end"));
    }
}
