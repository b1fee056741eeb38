//! The `shell` mode: define, list and remove probes at run time from the
//! console (the serial port, or the keyboard and screen).
//!
//! Probes written in Rust are `static`s; probes typed at the console are
//! built on the heap at registration time (never on a trap path) and handed
//! to the engine as `'static`. Input alone must never exhaust the kernel, so
//! nothing leaks: a refused probe is freed at once, a removed one as soon as
//! it is unregistered, and after any line the heap is back where it was.
//! Each probe counts its hits; `list` shows counts, misses and flags.
//!
//! Input is read strictly: a line is one command and its words, and every
//! word that does not fit (unknown, extra, a malformed number, an offset on
//! a return probe) is answered with an error and nothing is done. Every
//! error line starts with the command word and `": "` (`console: ` for a
//! line refused as a whole: too long, or an invalid byte).
use crate::console::{LINE_MAX, LineEditor, LineError};
use crate::history::History;
use crate::kprobes::{
    Kprobe, KprobeError, Kretprobe, KretprobeInstance, PreAction, PtRegs, disable_kprobe, enable_kprobe,
    register_kprobe, register_kretprobe, regs_return_value, unregister_kprobe, unregister_kretprobe,
};
use crate::tracefs::sh::Redirect;
use crate::tracefs::{Errno, Kind};
use crate::{print, println};
use alloc::boxed::Box;
use alloc::string::String;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// Probes the shell can hold at once.
pub const MAX_SHELL_PROBES: usize = 16;

/// A console-defined kprobe: the probe and its hit counter.
#[repr(C)]
struct ShellKprobe {
    kp: Kprobe,
    hits: AtomicUsize,
    verbose: AtomicBool,
}

/// A console-defined kretprobe: the probe and its report counter.
#[repr(C)]
struct ShellKretprobe {
    rp: Kretprobe,
    hits: AtomicUsize,
    verbose: AtomicBool,
}

#[derive(Clone, Copy)]
enum Entry {
    Free,
    Kprobe(&'static ShellKprobe),
    Kretprobe(&'static ShellKretprobe),
}

static ENTRIES: spin::Mutex<[Entry; MAX_SHELL_PROBES]> = spin::Mutex::new([Entry::Free; MAX_SHELL_PROBES]);

/// Frees a console probe made by `Box::leak` in this file.
///
/// # Safety
/// `probe` came from `Box::leak` and nothing refers to it any more: it was
/// never registered (a refused registration changes nothing), or it was
/// unregistered and removed from `ENTRIES`. On this single CPU no trap path
/// uses a probe once `unregister_*` has returned, and a kretprobe's
/// in-flight instances reach it only through their pool's owner pointer,
/// which unregistration cleared.
unsafe fn free<T>(probe: &'static T) {
    // SAFETY: by the caller's promise this is the only reference to a
    // `Box` allocation of `T`.
    drop(unsafe { Box::from_raw(probe as *const T as *mut T) });
}

fn count_hit(probe: &Kprobe, regs: &mut PtRegs) -> PreAction {
    // SAFETY: this handler is only installed on the `kp` field, the first
    // field of a `repr(C)` `ShellKprobe`.
    let shell = unsafe { &*(probe as *const Kprobe as *const ShellKprobe) };
    shell.hits.fetch_add(1, Ordering::Relaxed);
    if shell.verbose.load(Ordering::Relaxed) {
        println!(
            "[kprobe {}] task {} eax={:#x} ebx={:#x} ecx={:#x} edx={:#x} esp={:#x} eflags={:#x}",
            crate::symbols::Describe(regs.eip as usize),
            crate::task::current_id(),
            regs.eax,
            regs.ebx,
            regs.ecx,
            regs.edx,
            regs.esp,
            regs.eflags
        );
    }
    PreAction::Continue
}

fn count_return(instance: &mut KretprobeInstance, regs: &mut PtRegs) {
    let Some(rp) = instance.kretprobe() else { return };
    // SAFETY: this handler is only installed on the `rp` field, the first
    // field of a `repr(C)` `ShellKretprobe`.
    let shell = unsafe { &*(rp as *const Kretprobe as *const ShellKretprobe) };
    shell.hits.fetch_add(1, Ordering::Relaxed);
    if shell.verbose.load(Ordering::Relaxed) {
        println!(
            "[kretprobe] returned {:#x} to {} (task {})",
            regs_return_value(regs),
            crate::symbols::DescribeReturn(instance.ret_addr()),
            instance.task()
        );
    }
}

/// One console command: its word, its argument (if it takes one), whether
/// it accepts a trailing `verbose`, and what it does.
struct Spec {
    name: &'static str,
    argument: Option<&'static str>,
    verbose: bool,
    summary: &'static str,
}

const fn spec(name: &'static str, argument: Option<&'static str>, verbose: bool, summary: &'static str) -> Spec {
    Spec { name, argument, verbose, summary }
}

const COMMANDS: [Spec; 13] = [
    spec("help", None, false, "this list"),
    spec("syms", Some("PATTERN"), false, "functions whose name contains PATTERN"),
    spec("kprobe", Some("SYMBOL[+OFFSET]"), true, "count hits at an instruction (OFFSET: 28 or 0x1c)"),
    spec("kretprobe", Some("SYMBOL"), true, "count returns of a function"),
    spec("list", None, false, "probes: hits, misses, flags"),
    spec("probe-vars", Some("FUNCTION"), false, "what a probe at FUNCTION's entry can fetch by name"),
    spec("enable", Some("N"), false, "enable probe N from `list`"),
    spec("disable", Some("N"), false, "disable probe N"),
    spec("remove", Some("N"), false, "unregister probe N"),
    spec("demo", None, false, "run the demo workload (hits demo functions)"),
    spec("tasks", None, false, "the task table"),
    spec("ticks", None, false, "timer ticks since boot"),
    spec("exit", None, false, "leave"),
];

impl core::fmt::Display for Spec {
    /// The usage: `kprobe SYMBOL[+OFFSET] [verbose]`.
    fn fmt(&self, f: &mut core::fmt::Formatter) -> core::fmt::Result {
        f.write_str(self.name)?;
        if let Some(argument) = self.argument {
            write!(f, " {argument}")?;
        }
        if self.verbose {
            f.write_str(" [verbose]")?;
        }
        Ok(())
    }
}

/// Why a number did not parse.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum BadNumber {
    /// Not digits (or an empty string).
    Malformed,
    /// Digits, but more than a `usize` holds.
    TooLarge,
}

/// Parses a decimal number, or with `hex` also a `0x`-prefixed hex number:
/// digits only (no sign, no spaces, no trailing junk), no overflow.
fn parse_number(text: &str, hex: bool) -> Result<usize, BadNumber> {
    let (digits, radix) = match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        Some(digits) if hex => (digits, 16),
        _ => (text, 10),
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return Err(BadNumber::Malformed);
    }
    digits
        .chars()
        .try_fold(0usize, |value, c| value.checked_mul(radix as usize)?.checked_add(c.to_digit(radix)? as usize))
        .ok_or(BadNumber::TooLarge)
}

/// Parses `SYMBOL[+OFFSET]` against the symbol table, or prints why not
/// (prefixed with `command`).
fn parse_location(command: &str, text: &str) -> Option<(&'static str, usize)> {
    let (name, offset) = match text.split_once('+') {
        None => (text, 0),
        Some((name, offset)) => match parse_number(offset, true) {
            Ok(value) => (name, value),
            Err(BadNumber::Malformed) => {
                println!("{command}: bad offset \"{offset}\" (decimal or 0x-hex)");
                return None;
            }
            Err(BadNumber::TooLarge) => {
                println!("{command}: offset \"{offset}\" too large");
                return None;
            }
        },
    };
    match crate::symbols::lookup_name(name) {
        Some(symbol) => Some((symbol.name, offset)),
        None => {
            println!("{command}: no such symbol \"{name}\" (try: syms PATTERN)");
            None
        }
    }
}

fn free_entry(entries: &[Entry; MAX_SHELL_PROBES]) -> Option<usize> {
    entries.iter().position(|e| matches!(e, Entry::Free))
}

/// The console's working directory (for `cd`, `pwd` and relative paths).
static CWD: spin::Mutex<String> = spin::Mutex::new(String::new());

/// Runs one console command, printing its result: what it did, or error
/// lines that start with the command word and `": "` (`sh: ` for a line
/// the command-line syntax refuses).
pub fn execute(line: &str) -> Command {
    let parsed = match crate::tracefs::sh::parse(line) {
        Ok(parsed) => parsed,
        Err(error) => {
            println!("sh: {error}");
            return Command::Continue;
        }
    };
    let Some(command) = parsed.words.first().map(String::as_str) else { return Command::Continue };
    if let Some(run) = FILE_COMMANDS.iter().find(|(name, ..)| *name == command).map(|(_, _, run)| run) {
        run(&parsed.words[1..], &parsed.output);
        return Command::Continue;
    }
    let mut words = parsed.words[1..].iter().map(String::as_str);
    let Some(spec) = COMMANDS.iter().find(|spec| spec.name == command) else {
        println!("{command}: unknown command (try: help)");
        return Command::Continue;
    };
    if parsed.output != Redirect::Console {
        println!("{command}: output redirection is for echo and cat");
        return Command::Continue;
    }
    let argument = match spec.argument {
        None => "",
        Some(what) => match words.next() {
            Some(argument) => argument,
            None => {
                println!("{command}: missing {what} (usage: {spec})");
                return Command::Continue;
            }
        },
    };
    let (mut verbose, mut refused) = (false, false);
    for word in words {
        if spec.verbose && word == "verbose" && !verbose {
            verbose = true;
        } else {
            println!("{command}: unexpected word \"{word}\" (usage: {spec})");
            refused = true;
        }
    }
    if refused {
        return Command::Continue;
    }
    match command {
        "help" => help(),
        "syms" => syms(argument),
        "kprobe" => {
            if let Some((name, offset)) = parse_location(command, argument) {
                add_kprobe(name, offset, verbose);
            }
        }
        "kretprobe" => match parse_location(command, argument) {
            Some((name, 0)) => add_kretprobe(name, verbose),
            Some((_, offset)) => {
                println!("kretprobe: offset {offset:#x} refused: a return probe goes on a function's entry (offset 0)")
            }
            None => {}
        },
        "list" => list(),
        "probe-vars" => match crate::tracefs::events::available_args(argument) {
            Ok(text) => print!("{text}"),
            Err(why) => println!("probe-vars: {why}"),
        },
        "remove" | "enable" | "disable" => match parse_number(argument, false) {
            Ok(number) => change(command, number),
            Err(BadNumber::Malformed) => println!("{command}: bad probe number \"{argument}\" (a number from `list`)"),
            Err(BadNumber::TooLarge) => println!("{command}: probe number \"{argument}\" too large"),
        },
        "demo" => {
            crate::demo::run();
        }
        "tasks" => crate::task::for_each_task(|task| println!("  {task:?}")),
        "ticks" => println!("{} ticks", crate::task::ticks()),
        _ => return Command::Exit,
    }
    Command::Continue
}

/// Runs one line as [`read_line`](crate::console::read_line) returned it:
/// a refused line is answered with `console: ` and the reason.
pub fn handle(line: Result<&str, LineError>) -> Command {
    match line {
        Ok(line) => execute(line),
        Err(error) => {
            println!("console: {error}");
            Command::Continue
        }
    }
}

/// What the shell loop does after a command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command {
    /// Read the next line.
    Continue,
    /// Leave the shell.
    Exit,
}

/// The commands on files, with `sh`'s meaning: name, usage, what they do.
type FileCommand = (&'static str, &'static str, fn(&[String], &Redirect));
const FILE_COMMANDS: [FileCommand; 5] = [
    ("echo", "echo [-n] [WORD...] [> FILE | >> FILE]", echo),
    ("cat", "cat FILE... [> FILE | >> FILE]", cat),
    ("ls", "ls [PATH...]", ls),
    ("cd", "cd [DIR]", cd),
    ("pwd", "pwd", pwd),
];

/// The working directory (the root until `cd` changes it).
fn cwd() -> String {
    let cwd = CWD.lock();
    if cwd.is_empty() { String::from("/") } else { cwd.clone() }
}

/// `path` made absolute against the working directory.
fn absolute(path: &str) -> String {
    crate::tracefs::resolve(&cwd(), path)
}

/// Sends `text` where `output` says: the console, or a file (`command`
/// names the writer in error lines, as `sh` does).
fn deliver(command: &str, text: &str, output: &Redirect) {
    let (path, append) = match output {
        Redirect::Console => {
            print!("{text}");
            return;
        }
        Redirect::Truncate(path) => (path, false),
        Redirect::Append(path) => (path, true),
    };
    let absolute = absolute(path);
    // sh opens the file before the command writes: a missing file, or one
    // that is not a file, fails the redirection itself.
    let opened = crate::tracefs::kind(&absolute) == Some(crate::tracefs::Kind::File);
    match crate::tracefs::write(&absolute, text, append) {
        Ok(()) => {}
        Err(error @ (Errno::NoEntry | Errno::IsDirectory | Errno::NotDirectory | Errno::PermissionDenied))
            if !opened || error == Errno::PermissionDenied =>
        {
            println!("sh: {path}: {error}")
        }
        // The file refused what was written.
        Err(error) => println!("{command}: write error: {error}"),
    }
}

fn echo(words: &[String], output: &Redirect) {
    let (newline, words) = match words.first().map(String::as_str) {
        Some("-n") => (false, &words[1..]),
        _ => (true, words),
    };
    let mut text = words.join(" ");
    if newline {
        text.push('\n');
    }
    deliver("echo", &text, output);
}

fn cat(paths: &[String], output: &Redirect) {
    if paths.is_empty() {
        println!("cat: missing file operand (usage: cat FILE...)");
        return;
    }
    if let [path] = paths
        && absolute(path) == crate::tracefs::TRACE_PIPE
        && matches!(output, Redirect::Console)
        && !crate::console::capturing()
    {
        stream_trace_pipe();
        return;
    }
    let mut text = String::new();
    for path in paths {
        match crate::tracefs::read(&absolute(path)) {
            Ok(contents) => text.push_str(&contents),
            Err(error) => println!("cat: {path}: {error}"),
        }
    }
    deliver("cat", &text, output);
}

/// `cat trace_pipe` typed at the console: as Linux's reader, it waits for
/// records and prints them as they come, until a key is pressed (the key
/// is taken, not typed). Captured (a test) it prints what is there.
fn stream_trace_pipe() {
    println!("(trace_pipe: streaming; press any key to stop)");
    loop {
        let records = crate::tracefs::trace::take_pipe_text();
        print!("{records}");
        if crate::console::take_key().is_some() {
            return;
        }
        if records.is_empty() {
            // Nothing came: let other tasks run, then sleep to the next
            // interrupt (the timer's at the latest).
            crate::task::yield_now();
            crate::arch::cpu::without_interrupts(crate::arch::cpu::wait_for_interrupt);
        }
    }
}

fn ls(paths: &[String], _output: &Redirect) {
    let here = [String::from(".")];
    let paths = if paths.is_empty() { &here[..] } else { paths };
    for path in paths {
        let absolute = absolute(path);
        match crate::tracefs::kind(&absolute) {
            Some(Kind::File) => println!("{path}"),
            Some(Kind::Directory) => {
                if paths.len() > 1 {
                    println!("{path}:");
                }
                let names: alloc::vec::Vec<String> =
                    crate::tracefs::list(&absolute).unwrap_or_default().into_iter().map(|(name, _)| name).collect();
                println!("{}", names.join("  "));
            }
            None => println!("ls: cannot access '{path}': {}", Errno::NoEntry),
        }
    }
}

fn cd(paths: &[String], _output: &Redirect) {
    let target = match paths {
        [] => String::from("/"),
        [path] => absolute(path),
        _ => {
            println!("cd: too many arguments");
            return;
        }
    };
    match crate::tracefs::kind(&target) {
        Some(Kind::Directory) => *CWD.lock() = target,
        Some(Kind::File) => println!("cd: {}: {}", paths[0], Errno::NotDirectory),
        None => println!("cd: {}: {}", paths[0], Errno::NoEntry),
    }
}

fn pwd(_words: &[String], _output: &Redirect) {
    println!("{}", cwd());
}

fn help() {
    println!("files (as in sh; quotes, > and >> work as there):");
    for (_, usage, _) in &FILE_COMMANDS {
        println!("  {usage}");
    }
    println!("  files: /proc/kallsyms, /sys/kernel/debug/kprobes/list, /sys/kernel/debug/kprobes/blacklist");
    println!("commands:");
    for spec in &COMMANDS {
        let mut usage = crate::console::FixedText::<40>::new();
        let _ = core::fmt::Write::write_fmt(&mut usage, format_args!("{spec}"));
        println!("  {:<34}{}", usage.as_str(), spec.summary);
    }
    println!("lines: at most {LINE_MAX} bytes of printable ASCII; left/right, home/end, backspace and delete edit;");
    println!(
        "  up/down recall earlier lines, Tab completes commands, paths and symbols (twice: lists), Ctrl+C drops the line"
    );
}

fn syms(pattern: &str) {
    for (shown, symbol) in crate::symbols::iter().filter(|s| s.name.contains(pattern)).enumerate() {
        if shown == 20 {
            println!("  ...");
            break;
        }
        println!("  {:#010x} {:>6} {}", symbol.address, symbol.size, symbol.name);
    }
}

fn add_kprobe(name: &'static str, offset: usize, verbose: bool) {
    let mut entries = ENTRIES.lock();
    let Some(slot) = free_entry(&entries) else {
        return println!("kprobe: all {MAX_SHELL_PROBES} shell probes in use");
    };
    let probe: &'static ShellKprobe = Box::leak(Box::new(ShellKprobe {
        kp: Kprobe::new().symbol(name, offset).pre_handler(count_hit),
        hits: AtomicUsize::new(0),
        verbose: AtomicBool::new(verbose),
    }));
    match register_kprobe(&probe.kp) {
        Ok(()) => {
            entries[slot] = Entry::Kprobe(probe);
            println!("probe {slot}: kprobe at {name}+{offset:#x} ({:#x})", probe.kp.addr().unwrap_or(0));
        }
        Err(error) => {
            // SAFETY: leaked just above; a refused registration keeps no reference.
            unsafe { free(probe) };
            println!("kprobe: {error}");
        }
    }
}

fn add_kretprobe(name: &'static str, verbose: bool) {
    let mut entries = ENTRIES.lock();
    let Some(slot) = free_entry(&entries) else {
        return println!("kretprobe: all {MAX_SHELL_PROBES} shell probes in use");
    };
    let probe: &'static ShellKretprobe = Box::leak(Box::new(ShellKretprobe {
        rp: Kretprobe::new().symbol(name).handler(count_return),
        hits: AtomicUsize::new(0),
        verbose: AtomicBool::new(verbose),
    }));
    match register_kretprobe(&probe.rp) {
        Ok(()) => {
            entries[slot] = Entry::Kretprobe(probe);
            println!("probe {slot}: kretprobe on {name} (maxactive {})", probe.rp.effective_maxactive());
        }
        Err(error) => {
            // SAFETY: leaked just above; a refused registration keeps no
            // reference (its pool, if one was made, was retired).
            unsafe { free(probe) };
            println!("kretprobe: {error}");
        }
    }
}

fn list() {
    let entries = ENTRIES.lock();
    for (number, entry) in entries.iter().enumerate() {
        match entry {
            Entry::Free => {}
            Entry::Kprobe(p) => println!(
                "  {number}: kprobe    {} hits {} missed {} {:?}",
                crate::symbols::Describe(p.kp.addr().unwrap_or(0)),
                p.hits.load(Ordering::Relaxed),
                p.kp.nmissed(),
                p.kp.flags()
            ),
            Entry::Kretprobe(p) => println!(
                "  {number}: kretprobe {} returns {} missed {} {:?}",
                crate::symbols::Describe(p.rp.kp.addr().unwrap_or(0)),
                p.hits.load(Ordering::Relaxed),
                p.rp.nmissed(),
                p.rp.kp.flags()
            ),
        }
    }
}

fn change(command: &str, number: usize) {
    let mut entries = ENTRIES.lock();
    let Some(entry) = entries.get(number).copied() else { return println!("{command}: no probe {number}") };
    let kp = match entry {
        Entry::Free => return println!("{command}: no probe {number}"),
        Entry::Kprobe(p) => &p.kp,
        Entry::Kretprobe(p) => &p.rp.kp,
    };
    let result: Result<(), KprobeError> = match (command, entry) {
        ("remove", Entry::Kretprobe(p)) => unregister_kretprobe(&p.rp),
        ("remove", _) => unregister_kprobe(kp),
        ("enable", _) => enable_kprobe(kp),
        _ => disable_kprobe(kp),
    };
    match result {
        Ok(()) if command == "remove" => {
            entries[number] = Entry::Free;
            match entry {
                // SAFETY: unregistered just above and no longer in ENTRIES,
                // which held the only other reference.
                Entry::Kprobe(p) => unsafe { free(p) },
                // SAFETY: as above; unregistration cleared the owner pointer
                // of its instance pool, the in-flight calls' only way back.
                Entry::Kretprobe(p) => unsafe { free(p) },
                Entry::Free => {}
            }
            println!("probe {number} removed");
        }
        Ok(()) => println!("probe {number}: {command}d"),
        Err(error) => println!("{command}: {error}"),
    }
}

/// Every command's name, the file commands first (for completion).
pub fn command_names() -> impl Iterator<Item = &'static str> + Clone {
    FILE_COMMANDS.iter().map(|(name, ..)| *name).chain(COMMANDS.iter().map(|spec| spec.name))
}

/// What the shell shows before each line.
pub const PROMPT: &str = "kprobes> ";

/// The interactive loop: reads lines from the console (serial port and
/// keyboard) until `exit`, with a history of the session's lines and Tab
/// completion of commands, paths and symbols.
pub fn run() {
    println!("probe shell: type `help`");
    let mut buffer = [0u8; LINE_MAX];
    // On the heap: a task's stack is 16 KiB, the history 4 KiB.
    let mut history = Box::new(History::new());
    let mut editor = LineEditor::with_history(&mut buffer, &mut history);
    loop {
        print!("{PROMPT}");
        let line = crate::console::read_line_completing(&mut editor, PROMPT, |line, cursor| {
            crate::completion::complete(line, cursor, &cwd())
        });
        if handle(line) == Command::Exit {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn output_of(command: &str) -> alloc::string::String {
        let mut buffer = [0u8; 2048];
        crate::console::capture_begin();
        execute(command);
        let bytes = crate::console::capture_end(&mut buffer);
        alloc::string::String::from_utf8_lossy(bytes).into_owned()
    }

    #[test_case]
    fn shell_defines_counts_and_removes_probes() {
        let added = output_of("kprobe probe_kernel::demo::checksum");
        assert!(added.starts_with("probe 0: kprobe at probe_kernel::demo::checksum+0x0"), "{added}");
        let added = output_of("kretprobe probe_kernel::demo::checksum");
        assert!(added.starts_with("probe 1: kretprobe on probe_kernel::demo::checksum (maxactive 10)"), "{added}");
        for seed in 0..3 {
            crate::demo::checksum(seed);
        }
        let listing = output_of("list");
        assert!(listing.contains("0: kprobe    probe_kernel::demo::checksum+0x0/"), "{listing}");
        assert!(listing.contains(" hits 3 missed 0 "), "{listing}");
        assert!(listing.contains(" returns 3 missed 0 "), "{listing}");
        assert_eq!(output_of("disable 0"), "probe 0: disabled\n");
        crate::demo::checksum(9);
        assert!(output_of("list").contains(" hits 3 missed 0 KprobeFlags(DISABLED"));
        assert_eq!(output_of("remove 0"), "probe 0 removed\n");
        assert_eq!(output_of("remove 1"), "probe 1 removed\n");
        assert_eq!(output_of("list"), "");
        assert_eq!(crate::kprobes::site_count(), 0);
        assert_eq!(
            output_of("kprobe no_such_function"),
            "kprobe: no such symbol \"no_such_function\" (try: syms PATTERN)\n"
        );
        core::hint::black_box(crate::bench::bench_target as *const ()); // keep it linked
        assert_eq!(output_of("kprobe bench_target+1"), "kprobe: not an instruction boundary\n");
        assert_eq!(output_of("remove 5"), "remove: no probe 5\n");
    }

    #[test_case]
    fn numbers_parse_strictly() {
        assert_eq!(parse_number("28", true), Ok(28));
        assert_eq!(parse_number("0x1c", true), Ok(0x1c));
        assert_eq!(parse_number("0X1C", true), Ok(0x1c));
        assert_eq!(parse_number("0x1c", false), Err(BadNumber::Malformed));
        assert_eq!(parse_number("1x", false), Err(BadNumber::Malformed));
        assert_eq!(parse_number("+1", false), Err(BadNumber::Malformed));
        assert_eq!(parse_number("", true), Err(BadNumber::Malformed));
        assert_eq!(parse_number("0x", true), Err(BadNumber::Malformed));
        assert_eq!(parse_number("4294967295", false), Ok(usize::MAX));
        assert_eq!(parse_number("4294967296", false), Err(BadNumber::TooLarge));
        assert_eq!(parse_number("0x100000000", true), Err(BadNumber::TooLarge));
        assert_eq!(parse_number("99999999999x", false), Err(BadNumber::Malformed));
    }
}
