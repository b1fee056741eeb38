//! A recorded event as the `trace` file shows it.
use core::fmt::{self, Write};

use crate::command::ProbeDefinition;
use crate::eval::{Symbolizer, write_symbol};
use crate::types::FetchType;

/// What Linux shows for a string that could not be read.
pub const FAULT_STRING: &str = "(fault)";

/// Reads `N` bytes of the record at `at`, zeros past its end.
fn bytes_at<const N: usize>(record: &[u8], at: usize) -> [u8; N] {
    let mut bytes = [0u8; N];
    for (i, byte) in bytes.iter_mut().enumerate() {
        *byte = record.get(at + i).copied().unwrap_or(0);
    }
    bytes
}

fn u32_at(record: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes_at(record, at))
}

/// Writes bytes as text: valid UTF-8 as is, other bytes as U+FFFD.
fn write_bytes(out: &mut impl Write, bytes: &[u8]) -> fmt::Result {
    for chunk in bytes.utf8_chunks() {
        out.write_str(chunk.valid())?;
        if !chunk.invalid().is_empty() {
            out.write_char(char::REPLACEMENT_CHARACTER)?;
        }
    }
    Ok(())
}

/// Writes an instruction address as the trace's `seq_print_ip_sym`:
/// `0` for 0, `[unknown/kretprobe'd]` for the kretprobe trampoline, else
/// `name+0xOFF/0xSIZE` (`with_offset`) or `name`, or `0x%08x` when no
/// symbol contains it and no offset is wanted.
pub fn write_ip(out: &mut impl Write, ip: u32, with_offset: bool, symbols: &(impl Symbolizer + ?Sized)) -> fmt::Result {
    if ip == 0 {
        return out.write_char('0');
    }
    if symbols.is_kretprobe_trampoline(ip) {
        return out.write_str("[unknown/kretprobe'd]");
    }
    if with_offset {
        return write_symbol(out, ip, symbols);
    }
    match symbols.symbolize(ip) {
        Some(s) if !s.name.is_empty() => out.write_str(s.name),
        _ => write!(out, "0x{ip:08x}"),
    }
}

/// Writes one element of type `ty` stored at `at` (Linux's print_type_*).
fn write_value(
    out: &mut impl Write,
    ty: FetchType,
    record: &[u8],
    at: usize,
    symbols: &(impl Symbolizer + ?Sized),
) -> fmt::Result {
    match ty {
        FetchType::U8 => write!(out, "{}", bytes_at::<1>(record, at)[0]),
        FetchType::U16 => write!(out, "{}", u16::from_le_bytes(bytes_at(record, at))),
        FetchType::U32 => write!(out, "{}", u32_at(record, at)),
        FetchType::U64 => write!(out, "{}", u64::from_le_bytes(bytes_at(record, at))),
        FetchType::S8 => write!(out, "{}", bytes_at::<1>(record, at)[0] as i8),
        FetchType::S16 => write!(out, "{}", i16::from_le_bytes(bytes_at(record, at))),
        FetchType::S32 => write!(out, "{}", i32::from_le_bytes(bytes_at(record, at))),
        FetchType::S64 => write!(out, "{}", i64::from_le_bytes(bytes_at(record, at))),
        FetchType::X8 => write!(out, "0x{:x}", bytes_at::<1>(record, at)[0]),
        FetchType::X16 => write!(out, "0x{:x}", u16::from_le_bytes(bytes_at(record, at))),
        FetchType::X32 => write!(out, "0x{:x}", u32_at(record, at)),
        FetchType::X64 => write!(out, "0x{:x}", u64::from_le_bytes(bytes_at(record, at))),
        FetchType::Char => write!(out, "'{}'", char::from(bytes_at::<1>(record, at)[0])),
        FetchType::Symbol => write_symbol(out, u32_at(record, at), symbols),
        FetchType::String | FetchType::UString | FetchType::SymStr => {
            let loc = u32_at(record, at);
            let len = (loc >> 16) as usize;
            let start = (loc & 0xffff) as usize;
            let Some(text) = record.get(start..).filter(|_| len > 0) else {
                return out.write_str(FAULT_STRING);
            };
            let text = &text[..text.len().min(len)];
            let end = text.iter().position(|&b| b == 0).unwrap_or(text.len());
            out.write_char('"')?;
            write_bytes(out, &text[..end])?;
            out.write_char('"')
        }
    }
}

impl ProbeDefinition {
    /// Writes a record's arguments as the trace line shows them (Linux's
    /// `trace_probe_print_args`): ` name=value` for each, numbers in
    /// decimal (`u`, `s`) or `0x` hex (`x`), `'c'` for `char`,
    /// `sym+0x12/0x40` for `symbol`, strings in double quotes or
    /// `(fault)`, arrays as `{a,b,c}`.
    pub fn format_args(
        &self,
        record: &[u8],
        symbols: &(impl Symbolizer + ?Sized),
        out: &mut impl Write,
    ) -> fmt::Result {
        // Offsets as `arg_offsets` gives them, without its allocation: a
        // fatal report prints records where nothing may allocate.
        let mut offset = self.header_size();
        for arg in self.args() {
            let at = offset;
            offset += arg.size();
            write!(out, " {}=", arg.name())?;
            let ty = arg.fetch_type();
            if arg.array_len() == 0 {
                write_value(out, ty, record, at, symbols)?;
                continue;
            }
            out.write_char('{')?;
            for i in 0..arg.array_len() as usize {
                if i > 0 {
                    out.write_char(',')?;
                }
                write_value(out, ty, record, at + i * ty.size(), symbols)?;
            }
            out.write_char('}')?;
        }
        Ok(())
    }

    /// Writes a record as the trace line shows the event, after the
    /// task/CPU/timestamp columns and without the newline:
    /// `myprobe: (checksum+0x0/0x40) len=0x10`, or for a return probe
    /// `myretprobe: (caller+0x1b/0x30 <- checksum) arg1=0x3`.
    pub fn format_event(
        &self,
        record: &[u8],
        symbols: &(impl Symbolizer + ?Sized),
        out: &mut impl Write,
    ) -> fmt::Result {
        write!(out, "{}: (", self.event())?;
        let ip = u32_at(record, 8);
        if self.kind().is_return() {
            write_ip(out, u32_at(record, 12), true, symbols)?;
            out.write_str(" <- ")?;
            write_ip(out, ip, false, symbols)?;
        } else {
            write_ip(out, ip, true, symbols)?;
        }
        out.write_char(')')?;
        self.format_args(record, symbols, out)
    }
}
