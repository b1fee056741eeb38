//! What tracefs shows of a definition: its `kprobe_events` line, the
//! record layout, and the event's `format` file.
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::{self, Write};

use crate::command::{ProbeDefinition, ProbeKind, ProbeLocation};

/// Bytes of the common header every trace record starts with:
/// `common_type` (u16), `common_flags` (u8), `common_preempt_count` (u8),
/// `common_pid` (i32).
pub const COMMON_HEADER_SIZE: usize = 8;

/// One field of an event's record, as its `format` file lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Field {
    /// The C type (`unsigned long`, `u32`, `__data_loc char[]`, `u8[4]`).
    pub c_type: String,
    /// The field's name.
    pub name: String,
    /// Byte offset in the record.
    pub offset: usize,
    /// Size in bytes.
    pub size: usize,
    /// Whether the format file calls it signed.
    pub signed: bool,
}

impl Field {
    fn new(c_type: &str, name: &str, offset: usize, size: usize, signed: bool) -> Field {
        Field { c_type: c_type.into(), name: name.into(), offset, size, signed }
    }

    /// The field's line in a `format` file (without the newline): an array
    /// type shows its brackets after the name, and Linux's probe events
    /// leave their length out (`u8 name[]`).
    pub fn format_line(&self) -> String {
        let mut line = String::new();
        let signed = u8::from(self.signed);
        let (ty, name_suffix) = match self.c_type.find('[') {
            Some(open) if !self.c_type.starts_with("__data_loc") => (&self.c_type[..open], "[]"),
            _ => (self.c_type.as_str(), ""),
        };
        // Writing to a String cannot fail.
        let _ = write!(
            line,
            "\tfield:{ty} {}{name_suffix};\toffset:{};\tsize:{};\tsigned:{signed};",
            self.name, self.offset, self.size
        );
        line
    }
}

impl ProbeDefinition {
    /// Bytes of the record before the arguments: the common header, then
    /// `__probe_ip` (4), or for a return probe `__probe_func` and
    /// `__probe_ret_ip` (4 each).
    pub fn header_size(&self) -> usize {
        COMMON_HEADER_SIZE + if self.kind().is_return() { 8 } else { 4 }
    }

    /// Each argument's byte offset in the record. Arguments are packed in
    /// order, without alignment, as in Linux.
    pub fn arg_offsets(&self) -> Vec<usize> {
        let mut offset = self.header_size();
        self.args()
            .iter()
            .map(|arg| {
                let at = offset;
                offset += arg.size();
                at
            })
            .collect()
    }

    /// Bytes of the record's fixed part (header and arguments); strings
    /// follow it in the dynamic area.
    pub fn fixed_size(&self) -> usize {
        self.header_size() + self.args().iter().map(|a| a.size()).sum::<usize>()
    }

    /// The event's fields after the common ones, in record order.
    pub fn fields(&self) -> Vec<Field> {
        let mut fields = Vec::new();
        if self.kind().is_return() {
            fields.push(Field::new("unsigned long", "__probe_func", COMMON_HEADER_SIZE, 4, false));
            fields.push(Field::new("unsigned long", "__probe_ret_ip", COMMON_HEADER_SIZE + 4, 4, false));
        } else {
            fields.push(Field::new("unsigned long", "__probe_ip", COMMON_HEADER_SIZE, 4, false));
        }
        for (arg, offset) in self.args().iter().zip(self.arg_offsets()) {
            let ty = arg.fetch_type();
            fields.push(Field::new(&arg.field_type(), arg.name(), offset, arg.size(), ty.is_signed()));
        }
        fields
    }

    /// The event's `print fmt` (Linux's `__set_print_fmt`), e.g.
    /// `"(%lx) len=0x%x", REC->__probe_ip, REC->len`.
    pub fn print_fmt(&self) -> String {
        let mut out = String::new();
        let (head, values) = if self.kind().is_return() {
            ("(%lx <- %lx)", ", REC->__probe_func, REC->__probe_ret_ip")
        } else {
            ("(%lx)", ", REC->__probe_ip")
        };
        out.push('"');
        out.push_str(head);
        for arg in self.args() {
            let conv = arg.fetch_type().print_fmt();
            let _ = write!(out, " {}=", arg.name());
            if arg.array_len() > 0 {
                out.push('{');
                for i in 0..arg.array_len() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(conv);
                }
                out.push('}');
            } else {
                out.push_str(conv);
            }
        }
        out.push('"');
        out.push_str(values);
        for arg in self.args() {
            let string = arg.fetch_type().is_string();
            if arg.array_len() > 0 {
                for i in 0..arg.array_len() {
                    if string {
                        let _ = write!(out, ", __get_str({}[{i}])", arg.name());
                    } else {
                        let _ = write!(out, ", REC->{}[{i}]", arg.name());
                    }
                }
            } else if string {
                let _ = write!(out, ", __get_str({})", arg.name());
            } else {
                let _ = write!(out, ", REC->{}", arg.name());
            }
        }
        out
    }

    /// The event's `format` file, `id` being its event type number: name,
    /// ID, the common fields, a blank line, the event's fields, a blank
    /// line and the `print fmt`. Every line ends in a newline.
    pub fn format_file(&self, id: u32) -> String {
        let mut out = String::new();
        let _ = write!(out, "name: {}\nID: {id}\nformat:\n", self.event());
        let common = [
            Field::new("unsigned short", "common_type", 0, 2, false),
            Field::new("unsigned char", "common_flags", 2, 1, false),
            Field::new("unsigned char", "common_preempt_count", 3, 1, false),
            Field::new("int", "common_pid", 4, 4, true),
        ];
        for field in &common {
            out.push_str(&field.format_line());
            out.push('\n');
        }
        out.push('\n');
        for field in self.fields() {
            out.push_str(&field.format_line());
            out.push('\n');
        }
        let _ = write!(out, "\nprint fmt: {}\n", self.print_fmt());
        out
    }
}

/// The definition as reading `kprobe_events` (or `dynamic_events`) shows
/// it, without the newline: `p:kprobes/myprobe checksum len=%ax`. A
/// kretprobe shows `r` (and its `MAXACTIVE`, if set) however it was
/// written; an address shows as `0x` and 8 hex digits (Linux hashes it
/// unless booted with `no_hash_pointers`); an offset in decimal.
impl fmt::Display for ProbeDefinition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind() {
            ProbeKind::Kprobe => f.write_char('p')?,
            ProbeKind::Kretprobe => {
                f.write_char('r')?;
                if self.maxactive() > 0 {
                    write!(f, "{}", self.maxactive())?;
                }
            }
            ProbeKind::FunctionEntry | ProbeKind::FunctionExit => f.write_char('f')?,
        }
        write!(f, ":{}/{}", self.group(), self.event())?;
        match self.location() {
            ProbeLocation::Address(address) => write!(f, " 0x{address:08x}")?,
            ProbeLocation::Symbol { symbol, offset } if *offset != 0 => write!(f, " {symbol}+{offset}")?,
            ProbeLocation::Symbol { symbol, .. } => write!(f, " {symbol}")?,
        }
        if self.kind() == ProbeKind::FunctionExit {
            f.write_str("%return")?;
        }
        for arg in self.args() {
            write!(f, " {}={}", arg.name(), arg.text())?;
        }
        Ok(())
    }
}
