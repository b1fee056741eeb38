//! Post-link step: embeds a kernel image's function symbols into its own `.ksyms` table, in place.
//!
//! Backtraces and symbol-based probes need name → address and address →
//! name+offset/size at run time, under every boot path (GRUB's Multiboot2
//! ISO and QEMU's `-kernel`), and no loader hands the kernel its ELF
//! symbols. So after linking, this tool reads the image's own .symtab,
//! demangles the Rust names, and writes a table (sorted by address, with a
//! hash index by name; the format of the `ksyms-table` crate, which the
//! kernel reads with the same code) into the bytes of the `probe_kernel_ksyms`
//! static, whose size is fixed at link time. Nothing moves, so the patched
//! file is the very image that was linked.
//!
//! It also fills a second static, `probe_kernel_params` (the format of
//! `ksyms_table::params`): for every function of the symbol table that
//! the image's DWARF describes, its formal parameters (name, type, size)
//! and where each one is at the function's first instruction, read from
//! `.debug_info` and the location lists (kernel/ksyms-tool/src/dwarf.rs).
//! Probe definitions name parameters through it (`p demo::checksum seed`).
//! A table too large for its static is left marked so, with the size it
//! needed (the tool says so on stderr; probes then have no parameters by
//! name); an image without DWARF keeps its table unfilled.
//!
//! ```text
//! ksyms-tool [--dump | --dump-params] KERNEL.elf...
//! ```
//!
//! boot/run.sh runs it on every kernel image before booting. It is
//! idempotent (the tables depend only on .symtab and the DWARF, which it
//! never changes) and leaves the file untouched when both are already
//! current. `--dump` prints the symbol table it would write (address, size,
//! `*` for a nested label, name) instead of writing it; `--dump-params`
//! prints the parameter table (address, then each parameter's name, type,
//! size and place at the entry).
mod collect;
mod demangle;
mod dwarf;
mod elf;
#[cfg(test)]
mod tests;

use ksyms_table::layout::{MAGIC_EMPTY, MAGIC_FILLED, MAGIC_FORMAT1, header};
use ksyms_table::params::{
    FunctionInput, Location, PARAMS_EMPTY, PARAMS_FILLED, PARAMS_TOO_SMALL, ParamsBuildError, build_params,
    too_small_marker,
};
use ksyms_table::{BuildError, Flags, Input, build, preference_order};
use std::collections::HashSet;
use std::fs;
use std::io::{Seek, SeekFrom, Write};
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut mode = Mode::Write;
    let mut paths = Vec::new();
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--dump" => mode = Mode::DumpSymbols,
            "--dump-params" => mode = Mode::DumpParams,
            _ => paths.push(arg),
        }
    }
    if paths.is_empty() {
        eprintln!("usage: ksyms-tool [--dump | --dump-params] KERNEL.elf...");
        return ExitCode::from(2);
    }
    for path in &paths {
        if let Err(message) = run(path, mode) {
            eprintln!("ksyms-tool: {path}: {message}");
            return ExitCode::from(1);
        }
    }
    ExitCode::SUCCESS
}

/// What the tool does with an image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// Fill its tables.
    Write,
    /// Print the symbol table instead.
    DumpSymbols,
    /// Print the parameter table instead.
    DumpParams,
}

/// Fills (or prints) the tables of the image at `path`.
fn run(path: &str, mode: Mode) -> Result<(), String> {
    let data = fs::read(path).map_err(|e| e.to_string())?;
    let image = elf::parse(&data)?;
    let (offset, size) = image.table;
    let current = &data[offset..offset + size];
    let magic = current.get(..8).unwrap_or(&[]);
    // A format-1 table (an image patched by an older tool) is rewritten.
    if magic != MAGIC_EMPTY && magic != MAGIC_FILLED && magic != MAGIC_FORMAT1 {
        return Err(format!(
            "the table at file offset {offset:#x} has magic {:?}, not KSYMNONE, KSYMTAB2 or KSYMTAB1",
            String::from_utf8_lossy(magic)
        ));
    }
    let capacity =
        current.get(header::CAPACITY..header::CAPACITY + 4).map_or(0, |b| u32::from_le_bytes(b.try_into().unwrap()));
    if capacity as usize != size {
        return Err(format!("the table's capacity field says {capacity} bytes but its symbol/section is {size} bytes"));
    }
    let mut entries = collect::collect(&image.sections, &image.symbols);
    if mode == Mode::DumpParams {
        let functions = parameters(&data, &image, &entries)?.unwrap_or_default();
        std::io::stdout().write_all(dump_params(&functions, &entries).as_bytes()).map_err(|e| e.to_string())?;
        return Ok(());
    }
    if mode == Mode::DumpSymbols {
        entries.sort_by(preference_order);
        let mut out = String::new();
        for entry in &entries {
            let nested = if entry.flags.contains(Flags::NESTED) { '*' } else { ' ' };
            out.push_str(&format!("{:08x} {:6x} {nested}{}\n", entry.address, entry.size, entry.name));
        }
        std::io::stdout().write_all(out.as_bytes()).map_err(|e| e.to_string())?;
        return Ok(());
    }
    let table = build(&entries, size).map_err(|error| match error {
        BuildError::TooSmall { needed, count } => format!(
            "the symbol table needs {needed} bytes ({count} symbols) but .ksyms holds only {size}; \
             raise CAPACITY in kernel/symbols.rs to at least {needed} ({} KiB)",
            needed.div_ceil(1024)
        ),
        other => other.to_string(),
    })?;
    let mut writes = vec![(offset, table)];
    if let Some(params) = params_table(path, &data, &image, &entries)? {
        writes.push(params);
    }
    let changed: Vec<&(usize, Vec<u8>)> =
        writes.iter().filter(|(offset, bytes)| data[*offset..*offset + bytes.len()] != bytes[..]).collect();
    if !changed.is_empty() {
        let mut file = fs::OpenOptions::new().write(true).open(path).map_err(|e| e.to_string())?;
        for (offset, bytes) in changed {
            file.seek(SeekFrom::Start(*offset as u64))
                .and_then(|_| file.write_all(bytes))
                .map_err(|e| e.to_string())?;
        }
    }
    Ok(())
}

/// The functions of `entries` (the symbol table's) that the image's DWARF
/// describes, with their parameters; `None` without DWARF.
fn parameters(data: &[u8], image: &elf::Image, entries: &[Input]) -> Result<Option<Vec<FunctionInput>>, String> {
    let wanted: HashSet<u64> =
        entries.iter().filter(|e| !e.flags.contains(Flags::NESTED)).map(|e| u64::from(e.address)).collect();
    let Some(found) = dwarf::read_params(data, image, &wanted)? else { return Ok(None) };
    let mut functions: Vec<FunctionInput> = found
        .into_iter()
        .filter_map(|(address, params)| Some(FunctionInput { address: u32::try_from(address).ok()?, params }))
        .collect();
    functions.sort_by_key(|f| f.address);
    Ok(Some(functions))
}

/// The parameter table to write, as (file offset, bytes): `None` if the
/// image has no parameter static or no DWARF to fill it from.
fn params_table(
    path: &str,
    data: &[u8],
    image: &elf::Image,
    entries: &[Input],
) -> Result<Option<(usize, Vec<u8>)>, String> {
    let Some((offset, size)) = image.params else { return Ok(None) };
    let current = &data[offset..offset + size];
    let magic = current.get(..8).unwrap_or(&[]);
    if magic != PARAMS_EMPTY && magic != PARAMS_FILLED && magic != PARAMS_TOO_SMALL {
        return Err(format!(
            "the parameter table at file offset {offset:#x} has magic {:?}, not KPARNONE, KPARAMS1 or KPARFULL",
            String::from_utf8_lossy(magic)
        ));
    }
    let capacity = current
        .get(ksyms_table::params::header::CAPACITY..ksyms_table::params::header::CAPACITY + 4)
        .map_or(0, |b| u32::from_le_bytes(b.try_into().unwrap()));
    if capacity as usize != size {
        return Err(format!("the parameter table's capacity field says {capacity} bytes but its static is {size}"));
    }
    let Some(functions) = parameters(data, image, entries)? else { return Ok(None) };
    let table = match build_params(&functions, size) {
        Ok(table) => table,
        Err(ParamsBuildError::TooSmall { needed }) => {
            eprintln!(
                "ksyms-tool: {path}: the parameter table needs {needed} bytes but probe_kernel_params holds only \
                 {size}; it is left marked too small (no parameters by name): raise PARAMS_CAPACITY in \
                 kernel/symbols.rs to at least {needed} ({} KiB)",
                needed.div_ceil(1024)
            );
            too_small_marker(size, needed)
        }
        Err(other) => return Err(other.to_string()),
    };
    Ok(Some((offset, table)))
}

/// The parameter table as text: per function, `ADDRESS NAME` and a line
/// per parameter (`name: type, size, place`).
fn dump_params(functions: &[FunctionInput], entries: &[Input]) -> String {
    let mut out = String::new();
    for function in functions {
        let name = entries.iter().find(|e| e.address == function.address).map_or("?", |e| e.name.as_str());
        out.push_str(&format!("{:08x} {name}\n", function.address));
        for param in &function.params {
            let place = match param.location {
                Location::Register(reg) => format!("%{}", reg.name()),
                Location::Stack(offset) => format!("[esp+{offset}]"),
                Location::Unavailable(why) => format!("unavailable: {}", why.reason()),
            };
            out.push_str(&format!(
                "    {}: {} ({} bytes, {:?}) {place}\n",
                param.name, param.type_name, param.size, param.class
            ));
        }
    }
    out
}
