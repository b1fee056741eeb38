//! The console's file tree: the Linux paths a kprobes user reads and
//! writes, each backed by the kernel's own state, with Linux's names and
//! formats.
//!
//! - `/proc/kallsyms`: every function symbol, `ADDRESS T NAME`.
//! - `/sys/kernel/debug/kprobes/list`: every registered probe, whoever
//!   registered it (Rust code or the console), as Linux prints it:
//!   `ADDRESS  k|r|j  SYMBOL+0xOFFSET    [DISABLED][OPTIMIZED]`, plus this
//!   engine's `[BOOSTED]`.
//! - `/sys/kernel/debug/kprobes/blacklist`: the functions no probe may go
//!   in (the engine's trap path and what it reaches), `0xSTART-0xEND\tNAME`.
//!
//! Reading builds the whole text at once (task context: the heap is
//! fine); writing hands the bytes `echo` wrote to the file. Errors are
//! Linux's errno names with their `strerror` texts, as `sh` prints them.
//! There are no user-made files: the tree is fixed by the kernel.
pub mod events;
pub mod sh;
pub mod trace;

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::{self, Write};

/// Why a file operation failed, as the Linux errno a shell would report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Errno {
    /// `ENOENT`.
    NoEntry,
    /// `ENOTDIR`.
    NotDirectory,
    /// `EISDIR`.
    IsDirectory,
    /// `EACCES`: the file cannot be written (or read).
    PermissionDenied,
    /// `EINVAL`.
    Invalid,
    /// `EBUSY`.
    Busy,
    /// `EEXIST`.
    Exists,
    /// `E2BIG`.
    TooBig,
    /// `ENOMEM`.
    NoMemory,
    /// `EILSEQ`.
    IllegalSequence,
    /// `EOPNOTSUPP`.
    NotSupported,
    /// `EPERM` (Linux's filter parser returns it for some malformed filters).
    NotPermitted,
    /// `ESRCH` (Linux's filter parser: an unclosed quote).
    NoSuchProcess,
    /// `ERANGE`.
    OutOfRange,
}

impl Errno {
    /// The symbolic name (`ENOENT`).
    pub fn name(self) -> &'static str {
        match self {
            Errno::NoEntry => "ENOENT",
            Errno::NotDirectory => "ENOTDIR",
            Errno::IsDirectory => "EISDIR",
            Errno::PermissionDenied => "EACCES",
            Errno::Invalid => "EINVAL",
            Errno::Busy => "EBUSY",
            Errno::Exists => "EEXIST",
            Errno::TooBig => "E2BIG",
            Errno::NoMemory => "ENOMEM",
            Errno::IllegalSequence => "EILSEQ",
            Errno::NotSupported => "EOPNOTSUPP",
            Errno::NotPermitted => "EPERM",
            Errno::NoSuchProcess => "ESRCH",
            Errno::OutOfRange => "ERANGE",
        }
    }
}

impl fmt::Display for Errno {
    /// `strerror`'s text, as a shell prints it.
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(match self {
            Errno::NoEntry => "No such file or directory",
            Errno::NotDirectory => "Not a directory",
            Errno::IsDirectory => "Is a directory",
            Errno::PermissionDenied => "Permission denied",
            Errno::Invalid => "Invalid argument",
            Errno::Busy => "Device or resource busy",
            Errno::Exists => "File exists",
            Errno::TooBig => "Argument list too long",
            Errno::NoMemory => "Cannot allocate memory",
            Errno::IllegalSequence => "Invalid or incomplete multibyte or wide character",
            Errno::NotSupported => "Operation not supported",
            Errno::NotPermitted => "Operation not permitted",
            Errno::NoSuchProcess => "No such process",
            Errno::OutOfRange => "Numerical result out of range",
        })
    }
}

/// Writes to a file: `(data, append)`.
type Writer = fn(&str, bool) -> Result<(), Errno>;

/// A file: how it is read and, if it can be, written.
struct File {
    path: &'static str,
    read: fn(&mut String),
    /// `None`: read-only.
    write: Option<Writer>,
}

/// Every file there is.
static FILES: &[File] = &[
    File { path: "/proc/kallsyms", read: kallsyms, write: None },
    File { path: "/sys/kernel/debug/kprobes/list", read: kprobe_list, write: None },
    File { path: "/sys/kernel/debug/kprobes/blacklist", read: blacklist, write: None },
    File { path: "/sys/kernel/debug/kprobes/enabled", read: kprobes_enabled, write: Some(write_kprobes_enabled) },
    File {
        path: "/sys/kernel/tracing/kprobe_events",
        read: events::read_kprobe_events,
        write: Some(events::write_kprobe_events),
    },
    File { path: "/sys/kernel/tracing/kprobe_profile", read: events::read_kprobe_profile, write: None },
    File {
        path: "/sys/kernel/tracing/dynamic_events",
        read: events::read_dynamic_events,
        write: Some(events::write_dynamic_events),
    },
    File {
        path: "/sys/kernel/tracing/events/enable",
        read: events::read_all_enable,
        write: Some(events::write_all_enable),
    },
    File { path: "/sys/kernel/tracing/error_log", read: events::read_error_log, write: Some(events::write_error_log) },
    File { path: "/sys/kernel/tracing/trace", read: trace::read_trace, write: Some(trace::write_trace) },
    File { path: "/sys/kernel/tracing/trace_pipe", read: trace::read_trace_pipe, write: None },
    File { path: "/sys/kernel/tracing/tracing_on", read: trace::read_tracing_on, write: Some(trace::write_tracing_on) },
    File {
        path: "/sys/kernel/tracing/buffer_size_kb",
        read: trace::read_buffer_size_kb,
        write: Some(trace::write_buffer_size_kb),
    },
    File {
        path: "/sys/kernel/tracing/options/overwrite",
        read: trace::read_overwrite,
        write: Some(trace::write_overwrite),
    },
];

/// The consuming reader's file (the shell streams it at the console).
pub const TRACE_PIPE: &str = "/sys/kernel/tracing/trace_pipe";

/// Where the tracing files are (event files are relative to it).
const TRACING: &str = "/sys/kernel/tracing/";

/// Every file's path now: the fixed ones and the defined events'.
fn all_paths() -> Vec<String> {
    let mut paths: Vec<String> = FILES.iter().map(|file| String::from(file.path)).collect();
    paths.extend(events::paths().into_iter().map(|path| alloc::format!("{TRACING}{path}")));
    paths
}

/// What a path names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// A directory (one or more files lie below it).
    Directory,
    /// A file.
    File,
}

/// `path` made absolute against `cwd` and normalized: no `.`, `..` or
/// empty components, `/` for the root. `..` of the root is the root.
pub fn resolve(cwd: &str, path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    let start = if path.starts_with('/') { "" } else { cwd };
    for part in start.split('/').chain(path.split('/')) {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            part => parts.push(part),
        }
    }
    let mut out = String::new();
    for part in &parts {
        out.push('/');
        out.push_str(part);
    }
    if out.is_empty() {
        out.push('/');
    }
    out
}

/// What the absolute, normalized `path` names, if anything.
pub fn kind(path: &str) -> Option<Kind> {
    let paths = all_paths();
    if paths.iter().any(|file| file == path) {
        return Some(Kind::File);
    }
    paths.iter().any(|file| is_below(file, path)).then_some(Kind::Directory)
}

/// Whether `file` lies below the directory `path`.
fn is_below(file: &str, path: &str) -> bool {
    path == "/" || file.strip_prefix(path).is_some_and(|rest| rest.starts_with('/'))
}

/// The entries of the directory `path` (absolute, normalized), sorted.
pub fn list(path: &str) -> Result<Vec<(String, Kind)>, Errno> {
    match kind(path) {
        None => return Err(Errno::NoEntry),
        Some(Kind::File) => return Err(Errno::NotDirectory),
        Some(Kind::Directory) => {}
    }
    let prefix_len = if path == "/" { 1 } else { path.len() + 1 };
    let mut entries: Vec<(String, Kind)> = Vec::new();
    for file in all_paths().iter().filter(|file| is_below(file, path)) {
        let rest = &file[prefix_len..];
        let entry = match rest.split_once('/') {
            Some((directory, _)) => (String::from(directory), Kind::Directory),
            None => (String::from(rest), Kind::File),
        };
        if !entries.contains(&entry) {
            entries.push(entry);
        }
    }
    entries.sort_unstable();
    Ok(entries)
}

/// The contents of the file `path` (absolute, normalized).
pub fn read(path: &str) -> Result<String, Errno> {
    let mut text = String::new();
    if let Some(file) = path.strip_prefix(TRACING).and_then(events::event_file) {
        events::read_event_file(&file, &mut text);
        return Ok(text);
    }
    let file = find(path)?;
    (file.read)(&mut text);
    Ok(text)
}

/// Writes `data` to the file `path`: `append` for `>>`, else as `>`.
pub fn write(path: &str, data: &str, append: bool) -> Result<(), Errno> {
    if let Some(file) = path.strip_prefix(TRACING).and_then(events::event_file) {
        return events::write_event_file(&file, data);
    }
    let file = find(path)?;
    file.write.ok_or(Errno::PermissionDenied)?(data, append)
}

fn find(path: &str) -> Result<&'static File, Errno> {
    match FILES.iter().find(|file| file.path == path) {
        Some(file) => Ok(file),
        None if kind(path) == Some(Kind::Directory) => Err(Errno::IsDirectory),
        None => Err(Errno::NoEntry),
    }
}

/// A switch file's contents, written (`tracing_on`, `enable`, ...): `1`
/// or `0`, blanks around it allowed, anything else `EINVAL`.
pub(crate) fn parse_switch(data: &str) -> Result<bool, Errno> {
    match data.trim_ascii() {
        "1" => Ok(true),
        "0" => Ok(false),
        _ => Err(Errno::Invalid),
    }
}

/// A switch file's contents, read.
pub(crate) fn switch_text(on: bool) -> &'static str {
    if on { "1\n" } else { "0\n" }
}

/// `/sys/kernel/debug/kprobes/enabled`: `1` while registered probes are
/// armed, `0` while all are disarmed.
fn kprobes_enabled(out: &mut String) {
    out.push_str(switch_text(crate::kprobes::kprobes_armed()));
}

/// `/sys/kernel/debug/kprobes/enabled`, written: `0` disarms every probe,
/// `1` arms them again, each keeping its own enabled state (Linux's
/// `arm_all_kprobes`/`disarm_all_kprobes`; like Linux's, the file takes
/// `0`/`1`, `n`/`y` and `N`/`Y`).
fn write_kprobes_enabled(data: &str, _append: bool) -> Result<(), Errno> {
    let armed = match data.trim_ascii() {
        "y" | "Y" => true,
        "n" | "N" => false,
        other => parse_switch(other)?,
    };
    crate::kprobes::set_kprobes_armed(armed).map_err(|_| Errno::Busy)
}

/// `/proc/kallsyms`: `ADDRESS T NAME` for every function, by address.
fn kallsyms(out: &mut String) {
    let mut symbols: Vec<(usize, &'static str)> = Vec::new();
    symbols.extend(crate::symbols::iter().map(|symbol| (symbol.address, symbol.name)));
    symbols.sort_unstable();
    for (address, name) in symbols {
        let _ = writeln!(out, "{address:08x} T {name}");
    }
}

/// `/sys/kernel/debug/kprobes/list`, in Linux's format (`report_probe`).
fn kprobe_list(out: &mut String) {
    use crate::kprobes::KprobeFlags;
    let mut probes = Vec::new();
    // Collected first: the engine holds its registration lock meanwhile.
    let listed = crate::kprobes::for_each_probe(|probe, address, kind| probes.push((address, kind, probe.flags())));
    if let Err(error) = listed {
        let _ = writeln!(out, "(the probe list cannot be read here: {error})");
        return;
    }
    for (address, kind, flags) in probes {
        let _ = write!(out, "{address:08x}  {}  ", kind.letter());
        match crate::symbols::lookup_address(address) {
            Some(symbol) => {
                let _ = write!(out, "{}+{:#x}", symbol.name, symbol.offset);
            }
            None => {
                let _ = write!(out, "{address:#x}");
            }
        }
        out.push_str("    ");
        for (flag, name) in [
            (KprobeFlags::DISABLED, "[DISABLED]"),
            (KprobeFlags::OPTIMIZED, "[OPTIMIZED]"),
            (KprobeFlags::BOOSTED, "[BOOSTED]"),
        ] {
            if flags.contains(flag) {
                out.push_str(name);
            }
        }
        out.push('\n');
    }
}

/// `/sys/kernel/debug/kprobes/blacklist`: `0xSTART-0xEND\tNAME` per
/// function, as Linux prints its blacklist.
fn blacklist(out: &mut String) {
    for &start in crate::kprobes::blacklisted_functions() {
        match crate::symbols::lookup_address(start) {
            Some(symbol) => {
                let _ = writeln!(out, "{start:#010x}-{:#010x}\t{}", start + symbol.size, symbol.name);
            }
            None => {
                let _ = writeln!(out, "{start:#010x}-{start:#010x}\t?");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test_case]
    fn paths_resolve_as_a_shell_resolves_them() {
        assert_eq!(resolve("/", "sys/kernel"), "/sys/kernel");
        assert_eq!(resolve("/sys/kernel", "debug/./kprobes/"), "/sys/kernel/debug/kprobes");
        assert_eq!(resolve("/sys/kernel/debug", ".."), "/sys/kernel");
        assert_eq!(resolve("/sys", "../../.."), "/");
        assert_eq!(resolve("/sys", "/proc//kallsyms"), "/proc/kallsyms");
        assert_eq!(resolve("/", ""), "/");
    }

    #[test_case]
    fn the_tree_has_its_directories_and_files() {
        assert_eq!(kind("/"), Some(Kind::Directory));
        assert_eq!(kind("/sys/kernel/debug"), Some(Kind::Directory));
        assert_eq!(kind("/proc/kallsyms"), Some(Kind::File));
        assert_eq!(kind("/proc/kall"), None);
        assert_eq!(kind("/sy"), None);
        let names = |path| list(path).unwrap().into_iter().map(|(name, _)| name).collect::<Vec<_>>();
        assert_eq!(names("/"), ["proc", "sys"]);
        assert_eq!(names("/sys/kernel/debug/kprobes"), ["blacklist", "enabled", "list"]);
        assert_eq!(
            names("/sys/kernel/tracing"),
            [
                "buffer_size_kb",
                "dynamic_events",
                "error_log",
                "events",
                "kprobe_events",
                "kprobe_profile",
                "options",
                "trace",
                "trace_pipe",
                "tracing_on"
            ]
        );
        assert_eq!(kind("/sys/kernel/tracing/kprobe_events"), Some(Kind::File));
        assert_eq!(list("/proc/kallsyms"), Err(Errno::NotDirectory));
        assert_eq!(list("/nope"), Err(Errno::NoEntry));
        assert_eq!(read("/sys").unwrap_err(), Errno::IsDirectory);
        assert_eq!(write("/proc/kallsyms", "x", false), Err(Errno::PermissionDenied));
    }

    #[test_case]
    fn kallsyms_lists_functions_by_address() {
        let text = read("/proc/kallsyms").unwrap();
        let mut last = 0;
        let mut lines = 0;
        for line in text.lines() {
            let (address, rest) = line.split_once(' ').expect("ADDRESS T NAME");
            let address = usize::from_str_radix(address, 16).expect("hex address");
            assert!(address >= last && rest.starts_with("T "), "{line}");
            last = address;
            lines += 1;
        }
        assert!(lines > 100, "{lines} symbols");
        let checksum = crate::demo::checksum as *const () as usize;
        assert!(text.contains(&alloc::format!("{checksum:08x} T probe_kernel::demo::checksum\n")));
    }
}
