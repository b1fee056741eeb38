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
//! ```text
//! ksyms-tool [--dump] KERNEL.elf...
//! ```
//!
//! boot/run.sh runs it on every kernel image before booting. It is
//! idempotent (the table depends only on .symtab, which it never changes)
//! and leaves the file untouched when the table is already current. `--dump`
//! prints the table it would write (address, size, `*` for a nested label,
//! name) instead of writing it.
mod collect;
mod demangle;
mod elf;

use ksyms_table::layout::{MAGIC_EMPTY, MAGIC_FILLED, MAGIC_FORMAT1, header};
use ksyms_table::{BuildError, Flags, build, preference_order};
use std::fs;
use std::io::{Seek, SeekFrom, Write};
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut dump = false;
    let mut paths = Vec::new();
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--dump" => dump = true,
            _ => paths.push(arg),
        }
    }
    if paths.is_empty() {
        eprintln!("usage: ksyms-tool [--dump] KERNEL.elf...");
        return ExitCode::from(2);
    }
    for path in &paths {
        if let Err(message) = run(path, dump) {
            eprintln!("ksyms-tool: {path}: {message}");
            return ExitCode::from(1);
        }
    }
    ExitCode::SUCCESS
}

/// Fills (or with `dump`, prints) the table of the image at `path`.
fn run(path: &str, dump: bool) -> Result<(), String> {
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
    if dump {
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
    if table != current {
        let mut file = fs::OpenOptions::new().write(true).open(path).map_err(|e| e.to_string())?;
        file.seek(SeekFrom::Start(offset as u64)).and_then(|_| file.write_all(&table)).map_err(|e| e.to_string())?;
    }
    Ok(())
}
