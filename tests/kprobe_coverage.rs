//! Every instruction rustc emitted into this kernel is probeable, or refused with a reason.
//!
//! Why: users probe arbitrary kernel code (by symbol and offset, or from the
//! shell), so registration must never stumble over what the compiler really
//! generates: every instruction boundary of every function must decode and be
//! either accepted with a fix-up class or refused as unsupported or
//! blacklisted — never called "not an instruction boundary", "invalid" or "in
//! no function". The boundaries are found independently of the engine, with
//! iced-x86 walking each function linearly (the engine's own decoder also
//! walks from the function start, so the two must agree). The second half
//! arms a probe on every instruction of a few real kernel functions in turn,
//! single-stepped and boosted, and calls them: their results must not change.
#![no_std]
#![no_main]
#![feature(custom_test_frameworks)]
#![test_runner(probe_kernel::testing::run_tests)]
#![reexport_test_harness_main = "test_main"]
#![deny(unsafe_op_in_unsafe_fn)]

extern crate alloc;

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicUsize, Ordering};
use iced_x86::{Decoder, DecoderOptions};
use probe_kernel::arch::x86::kprobes::Fixup;
use probe_kernel::arch::x86::kprobes::decode::decode_one;
use probe_kernel::arch::x86::paging;
use probe_kernel::cmdline::CommandLine;
use probe_kernel::console::{LineEditor, LineEvent};
use probe_kernel::kprobes::{
    Kprobe, KprobeError, KprobeFlags, PreAction, PtRegs, can_probe, register_kprobe, site_count, unregister_kprobe,
};
use probe_kernel::symbols::{self, Symbol};
use probe_kernel::testing::{function_bytes, instruction_boundaries, kernel_functions, leak, text_bytes};
use probe_kernel::{println, task};

probe_kernel::test_kernel_main!();

/// Timer ticks per second (the PIT runs at 250 Hz).
const HZ: u64 = 250;

fn fixup_class(fixup: Fixup) -> &'static str {
    match fixup {
        Fixup::Plain => "Plain",
        Fixup::RelativeJump { .. } => "RelativeJump",
        Fixup::ConditionalJump { .. } => "ConditionalJump",
        Fixup::LoopOrJecxz => "LoopOrJecxz",
        Fixup::RelativeCall { .. } => "RelativeCall",
        Fixup::IndirectCall => "IndirectCall",
        Fixup::IndirectJump => "IndirectJump",
        Fixup::Return => "Return",
        Fixup::PushFlags => "PushFlags",
        Fixup::InterruptFlagWriter => "InterruptFlagWriter",
        Fixup::EnableInterrupts => "EnableInterrupts",
        Fixup::RepeatedString => "RepeatedString",
    }
}

/// A small ordered tally.
#[derive(Default)]
struct Tally(Vec<(String, usize)>);

impl Tally {
    fn add(&mut self, key: &str) {
        match self.0.iter_mut().find(|(k, _)| k == key) {
            Some((_, count)) => *count += 1,
            None => self.0.push((String::from(key), 1)),
        }
    }

    fn print(&self, title: &str) {
        let mut rows: Vec<&(String, usize)> = self.0.iter().collect();
        rows.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        println!("  {title}:");
        for (key, count) in rows {
            println!("    {count:>6}  {key}");
        }
    }
}

#[test_case]
fn every_instruction_boundary_is_probeable_or_refused_with_a_reason() {
    assert_eq!(site_count(), 0, "no probe may be armed while reading text");
    let engine = paging::kprobes_text();
    let started = task::ticks();
    let (mut checked, mut checked_functions, mut engine_functions, mut inside_checked) =
        (0usize, 0usize, 0usize, 0usize);
    let mut classes = Tally::default();
    let mut refusals = Tally::default();
    let mut failures: Vec<String> = Vec::new();
    for function in kernel_functions() {
        if engine.contains(&function.address) {
            // The trap path: refused as a whole (first instruction checked).
            engine_functions += 1;
            let result = can_probe(function.address as *const ());
            if result != Err(KprobeError::Blacklisted) {
                failures.push(format!("{}: in .kprobes.text but can_probe says {result:?}", function.name));
            }
            continue;
        }
        checked_functions += 1;
        let code = function_bytes(&function);
        let instructions = match instruction_boundaries(&function, &code) {
            Ok(instructions) => instructions,
            Err(offset) => {
                failures
                    .push(format!("{}+{offset:#x}: iced-x86 cannot decode the function's own bytes", function.name));
                continue;
            }
        };
        for (address, length) in instructions {
            checked += 1;
            let offset = address - function.address;
            // One byte into a longer instruction is never a boundary.
            if length > 1 {
                let inside = can_probe((address + 1) as *const ());
                if inside != Err(KprobeError::NotInstructionBoundary)
                    && !matches!(inside, Err(KprobeError::Blacklisted))
                {
                    failures.push(format!(
                        "{}+{:#x}: inside a {length}-byte instruction, can_probe says {inside:?}",
                        function.name,
                        offset + 1
                    ));
                }
                inside_checked += 1;
            }
            match can_probe(address as *const ()) {
                Ok(fixup) => {
                    classes.add(fixup_class(fixup));
                    // The engine's lone-instruction decode agrees on length and class.
                    match decode_one(&code[offset..], address) {
                        Ok(insn) if insn.length == length && insn.fixup == fixup => {}
                        other => failures.push(format!(
                            "{}+{offset:#x}: can_probe says {fixup:?} (length {length}) but decode_one says {other:?}",
                            function.name
                        )),
                    }
                }
                Err(KprobeError::UnsupportedInstruction(why)) => {
                    let mnemonic =
                        Decoder::with_ip(32, &code[offset..], address as u64, DecoderOptions::NONE).decode().mnemonic();
                    refusals.add(&format!("unsupported ({mnemonic:?}): {why}"));
                }
                Err(KprobeError::Blacklisted) => refusals.add(&format!("blacklisted: {}", function.name)),
                Err(error) => failures.push(format!("{}+{offset:#x} ({length} bytes): {error:?}", function.name)),
            }
        }
    }
    let elapsed = task::ticks() - started;
    println!();
    println!(
        "coverage: {checked} instruction boundaries in {checked_functions} functions checked in {}.{:02} s ({engine_functions} trap-path functions refused as a whole)",
        elapsed / HZ,
        elapsed % HZ * 100 / HZ
    );
    println!("  and {inside_checked} addresses one byte into an instruction, each refused as not a boundary");
    classes.print("accepted, per fix-up class");
    refusals.print("refused, per reason");
    for failure in failures.iter().take(30) {
        println!("  FAIL {failure}");
    }
    assert!(failures.is_empty(), "{} instruction boundaries misjudged (first: {})", failures.len(), failures[0]);
    assert!(checked > 10_000, "suspiciously few instructions: {checked}");
}

// ---------------------------------------------------------------------------
// Probes armed on every instruction of real functions
// ---------------------------------------------------------------------------

static PRE_HITS: AtomicUsize = AtomicUsize::new(0);
static POST_HITS: AtomicUsize = AtomicUsize::new(0);

fn count_pre(_probe: &Kprobe, _regs: &mut PtRegs) -> PreAction {
    PRE_HITS.fetch_add(1, Ordering::SeqCst);
    PreAction::Continue
}

fn count_post(_probe: &Kprobe, _regs: &mut PtRegs) {
    POST_HITS.fetch_add(1, Ordering::SeqCst);
}

/// A real kernel function and a workload that calls it.
struct Target {
    /// The function's entry (as the workload calls it).
    entry: fn() -> usize,
    /// Calls the function a fixed number of times; returns everything the
    /// calls produced, rendered, and how many calls were made.
    workload: fn() -> (String, usize),
}

static UNKNOWN_WORDS: AtomicUsize = AtomicUsize::new(0);

fn count_unknown(_word: &'static str) {
    UNKNOWN_WORDS.fetch_add(1, Ordering::SeqCst);
}

/// `cmdline::parse`, instantiated for a plain function as its callback
/// (taking its address makes rustc emit that instance as a function of its own.)
fn parse_function() -> fn(&'static str, fn(&'static str)) -> CommandLine<'static> {
    let parse: fn(&'static str, fn(&'static str)) -> CommandLine<'static> = probe_kernel::cmdline::parse;
    core::hint::black_box(parse)
}

const COMMAND_LINES: [&str; 6] = [
    "",
    "demo",
    "/boot/kernel.elf bench test=kprobes",
    "shell frobnicate  x\ty",
    "test=a test=b bench demo",
    "test= unknown/path shell",
];

fn parse_workload() -> (String, usize) {
    let parse = parse_function();
    let mut out = String::new();
    for text in COMMAND_LINES {
        UNKNOWN_WORDS.store(0, Ordering::SeqCst);
        let line = parse(text, count_unknown);
        out += &format!("{line:?} unknown={}; ", UNKNOWN_WORDS.load(Ordering::SeqCst));
    }
    (out, COMMAND_LINES.len())
}

/// `LineEditor::feed`, through a pointer the optimizer cannot see through.
fn feed_function<'a>() -> fn(&mut LineEditor<'a>, u8) -> LineEvent {
    let feed: fn(&mut LineEditor<'a>, u8) -> LineEvent = LineEditor::feed;
    core::hint::black_box(feed)
}

const KEYS: &[u8] = b"ab\x08c\x7f\x7f\x7fxyz\x01\x1b 1234567890\x08\r\n";

fn feed_workload() -> (String, usize) {
    let feed = feed_function();
    let mut buffer = [0u8; 8];
    let mut editor = LineEditor::new(&mut buffer);
    let mut out = String::new();
    for &key in KEYS {
        out += &format!("{:?} ", feed(&mut editor, key));
    }
    out += editor.line();
    (out, KEYS.len())
}

/// `symbols::lookup_name`, through a pointer the optimizer cannot see through.
fn lookup_name_function() -> fn(&str) -> Option<Symbol> {
    let lookup: fn(&str) -> Option<Symbol> = symbols::lookup_name;
    core::hint::black_box(lookup)
}

fn lookup_name_workload() -> (String, usize) {
    let lookup = lookup_name_function();
    let names =
        ["kernel_boot_entry", "probe_engine::registry::register_kprobe", "memcpy", "no::such::function", "", "~"];
    let mut out = String::new();
    for name in names {
        out += &format!("{:?}; ", lookup(name));
    }
    (out, names.len())
}

/// `symbols::lookup_address`, through a pointer the optimizer cannot see through.
fn lookup_address_function() -> fn(usize) -> Option<Symbol> {
    let lookup: fn(usize) -> Option<Symbol> = symbols::lookup_address;
    core::hint::black_box(lookup)
}

fn lookup_address_workload() -> (String, usize) {
    let lookup = lookup_address_function();
    let text = paging::kernel_text();
    let addresses = [0, text.start, text.end - 1, feed_function() as usize + 3, parse_function() as usize, usize::MAX];
    let mut out = String::new();
    for address in addresses {
        out += &format!("{:?}; ", lookup(address));
    }
    (out, addresses.len())
}

/// What one pass of the workload with one probe armed gave.
struct ProbedRun {
    output: (String, usize),
    flags: KprobeFlags,
    pre: usize,
    post: usize,
}

/// Runs `workload` with `probe` registered, then unregisters it.
fn probed_run(probe: &'static Kprobe, workload: fn() -> (String, usize)) -> Result<ProbedRun, KprobeError> {
    register_kprobe(probe)?;
    let flags = probe.flags();
    PRE_HITS.store(0, Ordering::SeqCst);
    POST_HITS.store(0, Ordering::SeqCst);
    let output = workload();
    let (pre, post) = (PRE_HITS.load(Ordering::SeqCst), POST_HITS.load(Ordering::SeqCst));
    unregister_kprobe(probe).expect("unregister");
    Ok(ProbedRun { output, flags, pre, post })
}

fn probe_every_instruction(target: &Target) {
    let entry = (target.entry)();
    let function = symbols::lookup_address(entry).expect("target in no function");
    assert_eq!(function.address, entry, "{}: the entry is not a function start", function.name);
    let code = function_bytes(&function);
    let instructions = instruction_boundaries(&function, &code).expect("undecodable target");
    let baseline = (target.workload)();
    let calls = baseline.1;
    let (mut executed, mut hits, mut boosted, mut refused) = (0usize, 0usize, 0usize, 0usize);
    for &(address, length) in &instructions {
        let offset = address - function.address;
        let where_ = format!("{}+{offset:#x}", function.name);
        let original = text_bytes(address, length);

        let with_post =
            leak(Kprobe::new().address(address as *const ()).pre_handler(count_pre).post_handler(count_post));
        let stepped = match probed_run(with_post, target.workload) {
            Ok(run) => run,
            Err(KprobeError::UnsupportedInstruction(_)) => {
                refused += 1;
                continue;
            }
            Err(error) => panic!("{where_}: registration refused: {error:?}"),
        };
        assert!(!stepped.flags.contains(KprobeFlags::BOOSTED), "{where_}: boosted with a post-handler");
        assert_eq!(stepped.output, baseline, "{where_}: single-stepped probe changed the results");
        assert_eq!(stepped.pre, stepped.post, "{where_}: pre- and post-handler counts differ");
        assert_eq!(text_bytes(address, length), original, "{where_}: bytes not restored");
        if offset == 0 {
            assert_eq!(stepped.pre, calls, "{where_}: entry hits");
        }
        executed += usize::from(stepped.pre > 0);
        hits += stepped.pre;

        let fixup = can_probe(address as *const ()).expect("accepted above");
        let pre_only = leak(Kprobe::new().address(address as *const ()).pre_handler(count_pre));
        let run = probed_run(pre_only, target.workload).expect("pre-only probe refused");
        assert_eq!(run.flags.contains(KprobeFlags::BOOSTED), fixup.boostable(), "{where_}: BOOSTED for {fixup:?}");
        boosted += usize::from(fixup.boostable());
        assert_eq!(run.output, baseline, "{where_}: pre-only (boosted) probe changed the results");
        assert_eq!((run.pre, run.post), (stepped.pre, 0), "{where_}: pre-only hits differ from single-stepped ones");
        assert_eq!(text_bytes(address, length), original, "{where_}: bytes not restored");
    }
    println!();
    println!(
        "  {}: {} instructions ({refused} refused), each probed alone twice (single-stepped; pre-only, {boosted} boosted); {executed} executed by the workload, {hits} hits",
        function.name,
        instructions.len(),
    );
    assert!(executed > 0, "the workload never ran {}", function.name);
}

#[test_case]
fn probes_on_every_instruction_of_cmdline_parse() {
    probe_every_instruction(&Target { entry: || parse_function() as usize, workload: parse_workload });
}

#[test_case]
fn probes_on_every_instruction_of_line_editor_feed() {
    probe_every_instruction(&Target { entry: || feed_function() as usize, workload: feed_workload });
}

#[test_case]
fn probes_on_every_instruction_of_symbols_lookup_name() {
    probe_every_instruction(&Target { entry: || lookup_name_function() as usize, workload: lookup_name_workload });
}

#[test_case]
fn probes_on_every_instruction_of_symbols_lookup_address() {
    probe_every_instruction(&Target {
        entry: || lookup_address_function() as usize,
        workload: lookup_address_workload,
    });
}
