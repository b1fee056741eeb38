//! The `shell` mode: define, list and remove probes at run time from the
//! serial console.
//!
//! Probes written in Rust are `static`s; probes typed at the console are
//! built on the heap at registration time (never on a trap path) and leaked,
//! so they are `'static` too. Each counts its hits; `list` shows counts,
//! misses and flags.
use crate::kprobes::{
    disable_kprobe, enable_kprobe, register_kprobe, register_kretprobe, regs_return_value,
    unregister_kprobe, unregister_kretprobe, Kprobe, KprobeError, KretprobeInstance, Kretprobe, PreAction, PtRegs,
};
use crate::console::{LineEditor, LineError, LINE_MAX};
use crate::{print, println};
use alloc::boxed::Box;
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

fn count_hit(probe: &Kprobe, regs: &mut PtRegs) -> PreAction {
    // SAFETY: this handler is only installed on the `kp` field, the first
    // field of a `repr(C)` `ShellKprobe`.
    let shell = unsafe { &*(probe as *const Kprobe as *const ShellKprobe) };
    shell.hits.fetch_add(1, Ordering::Relaxed);
    if shell.verbose.load(Ordering::Relaxed) {
        println!("[kprobe {}] task {} eax={:#x} ebx={:#x} ecx={:#x} edx={:#x} esp={:#x} eflags={:#x}",
            crate::symbols::Describe(regs.eip as usize), crate::task::current_id(),
            regs.eax, regs.ebx, regs.ecx, regs.edx, regs.esp, regs.eflags);
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
        println!("[kretprobe] returned {:#x} to {} (task {})", regs_return_value(regs),
            crate::symbols::DescribeReturn(instance.ret_addr()), instance.task());
    }
}

/// Parses `SYMBOL[+OFFSET]` (offset decimal or 0x-hex) against the symbol table.
fn parse_location(text: &str) -> Result<(&'static str, usize), &'static str> {
    let (name, offset) = match text.split_once('+') {
        Some((name, offset)) => {
            let offset = match offset.strip_prefix("0x") {
                Some(hex) => usize::from_str_radix(hex, 16),
                None => offset.parse(),
            };
            (name, offset.map_err(|_| "bad offset")?)
        }
        None => (text, 0),
    };
    let symbol = crate::symbols::lookup_name(name).ok_or("no such symbol (try: syms PATTERN)")?;
    Ok((symbol.name, offset))
}

fn free_entry(entries: &[Entry; MAX_SHELL_PROBES]) -> Option<usize> {
    entries.iter().position(|e| matches!(e, Entry::Free))
}

/// Runs one console command, printing its result.
pub fn execute(line: &str) -> Command {
    let mut words = line.split_ascii_whitespace();
    let Some(command) = words.next() else { return Command::Continue };
    let argument = words.next();
    let verbose = words.next() == Some("verbose") || argument == Some("verbose");
    match (command, argument) {
        ("help", _) => help(),
        ("syms", Some(pattern)) => {
            let mut shown = 0;
            for symbol in crate::symbols::iter().filter(|s| s.name.contains(pattern)) {
                if shown == 20 {
                    println!("  ...");
                    break;
                }
                println!("  {:#010x} {:>6} {}", symbol.address, symbol.size, symbol.name);
                shown += 1;
            }
        }
        ("kprobe", Some(location)) => add_kprobe(location, verbose),
        ("kretprobe", Some(location)) => add_kretprobe(location, verbose),
        ("list", _) => list(),
        ("remove" | "enable" | "disable", Some(number)) => match number.parse::<usize>() {
            Ok(number) => change(command, number),
            Err(_) => println!("{command}: expected a probe number from `list`"),
        },
        ("demo", _) => {
            crate::demo::run();
        }
        ("tasks", _) => crate::task::for_each_task(|task| println!("  {task:?}")),
        ("ticks", _) => println!("{} ticks", crate::task::ticks()),
        ("exit", _) => return Command::Exit,
        _ => println!("unknown command or missing argument: {line} (try: help)"),
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

fn help() {
    println!("commands:");
    println!("  syms PATTERN                     functions whose name contains PATTERN");
    println!("  kprobe SYMBOL[+OFFSET] [verbose] count hits at an instruction");
    println!("  kretprobe SYMBOL [verbose]       count returns of a function");
    println!("  list                             probes: hits, misses, flags");
    println!("  enable N | disable N | remove N  change probe N from `list`");
    println!("  demo                             run the demo workload (hits demo functions)");
    println!("  tasks | ticks                    scheduler state");
    println!("  exit                             leave");
}

fn add_kprobe(location: &str, verbose: bool) {
    let (name, offset) = match parse_location(location) {
        Ok(location) => location,
        Err(why) => return println!("kprobe: {why}"),
    };
    let mut entries = ENTRIES.lock();
    let Some(slot) = free_entry(&entries) else { return println!("kprobe: all {MAX_SHELL_PROBES} shell probes in use") };
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
        Err(error) => println!("kprobe: {error}"),
    }
}

fn add_kretprobe(location: &str, verbose: bool) {
    let (name, _) = match parse_location(location) {
        Ok(location) => location,
        Err(why) => return println!("kretprobe: {why}"),
    };
    let mut entries = ENTRIES.lock();
    let Some(slot) = free_entry(&entries) else { return println!("kretprobe: all {MAX_SHELL_PROBES} shell probes in use") };
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
        Err(error) => println!("kretprobe: {error}"),
    }
}

fn list() {
    let entries = ENTRIES.lock();
    for (number, entry) in entries.iter().enumerate() {
        match entry {
            Entry::Free => {}
            Entry::Kprobe(p) => println!("  {number}: kprobe    {} hits {} missed {} {:?}",
                crate::symbols::Describe(p.kp.addr().unwrap_or(0)), p.hits.load(Ordering::Relaxed), p.kp.nmissed(), p.kp.flags()),
            Entry::Kretprobe(p) => println!("  {number}: kretprobe {} returns {} missed {} {:?}",
                crate::symbols::Describe(p.rp.kp.addr().unwrap_or(0)), p.hits.load(Ordering::Relaxed), p.rp.nmissed(), p.rp.kp.flags()),
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
            println!("probe {number} removed");
        }
        Ok(()) => println!("probe {number}: {command}d"),
        Err(error) => println!("{command}: {error}"),
    }
}

/// The interactive loop: reads lines from the serial console until `exit`.
pub fn run() {
    println!("probe shell: type `help`");
    let mut buffer = [0u8; LINE_MAX];
    let mut editor = LineEditor::new(&mut buffer);
    loop {
        print!("kprobes> ");
        if handle(crate::console::read_line(&mut editor)) == Command::Exit {
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
        assert_eq!(output_of("kprobe no_such_function"), "kprobe: no such symbol (try: syms PATTERN)\n");
        core::hint::black_box(crate::bench::bench_target as *const ()); // keep it linked
        assert_eq!(output_of("kprobe bench_target+1"), "kprobe: not an instruction boundary\n");
        assert_eq!(output_of("remove 5"), "remove: no probe 5\n");
    }
}
