//! Probe everywhere: every instruction of dozens of real functions, and every function entry of the image.
//!
//! Why: a probe must never change what the probed code computes, wherever
//! it sits — on compiler-generated formatting, allocation, collection,
//! decoder, symbol-table and scheduler code, not just on hand-written test
//! targets. The first test picks functions by name patterns from the symbol
//! table (skipping and counting what `can_probe` refuses), keeps those a
//! deterministic workload calls, and probes every instruction boundary of
//! each: one probe at a time and as many at once as the site table holds,
//! single-stepped (a post handler) and boosted (pre handler only), and both
//! at each address at once (multiprobes). Each run
//! must give the unprobed run's hash; every probe's hits must equal its hits
//! when probed alone; entry hits must equal the calls (counted by the
//! workload itself for the functions it calls directly, and by an
//! entry-probe census for the others); nothing may be missed. The second
//! test puts a probe on the entry of every probeable function of the image
//! (in batches that fill the site table) while the demo runs: the demo's
//! summary must not change. The third probes every instruction of the task
//! API (spawn, task start, yield, sleep, exit, join) while tasks switch.
#![no_std]
#![no_main]
#![feature(custom_test_frameworks)]
#![test_runner(probe_kernel::testing::run_tests)]
#![reexport_test_harness_main = "test_main"]
#![deny(unsafe_op_in_unsafe_fn)]

extern crate alloc;

use alloc::collections::{BTreeMap, VecDeque};
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write;
use core::hint::black_box;
use core::sync::atomic::{AtomicUsize, Ordering};
use iced_x86::{Decoder, DecoderOptions, Instruction};
use probe_kernel::arch::x86::paging;
use probe_kernel::console::LineEditor;
use probe_kernel::kprobes::{
    Kprobe, KprobeError, KprobeFlags, MAX_SITES, PreAction, PtRegs, can_probe, register_kprobes, site_count,
    unregister_kprobes,
};
use probe_kernel::symbols::{self, Symbol};
use probe_kernel::testing::{Fnv, Seconds, function_bytes, instruction_boundaries, kernel_functions, text_byte};
use probe_kernel::{cmdline, println, task};

probe_kernel::test_kernel_main!();

// ===========================================================================
// The workload
// ===========================================================================

/// Calls of the functions the workload calls directly, counted by the
/// workload itself (never probed): the census of entry hits must agree.
static DIRECT_CALLS: [AtomicUsize; 6] = [const { AtomicUsize::new(0) }; 6];
/// Names of the functions counted in [`DIRECT_CALLS`], in that order.
const DIRECT_NAMES: [&str; 6] = [
    "probe_kernel::symbols::lookup_name",
    "probe_kernel::symbols::lookup_address",
    "<probe_kernel::console::LineEditor>::feed",
    "probe_kernel::task::table::task_name",
    "probe_kernel::task::table::state",
    "probe_kernel::task::stacks::stack_of_address",
];

fn direct(index: usize) {
    DIRECT_CALLS[index].fetch_add(1, Ordering::Relaxed);
}

static UNKNOWN_WORDS: AtomicUsize = AtomicUsize::new(0);

fn count_unknown(_word: &str) {
    UNKNOWN_WORDS.fetch_add(1, Ordering::Relaxed);
}

/// A few instructions for the decoder: prologue, moves with every
/// addressing form, SIB, prefixes, jcc rel32, call, ret, string ops,
/// x87, SSE, a multi-byte nop.
const CODE: &[u8] = &[
    0x55, 0x89, 0xe5, 0x57, 0x56, 0x83, 0xec, 0x1c, 0x8b, 0x45, 0x08, 0x8b, 0x04, 0x8d, 0x00, 0x10, 0x00, 0x00, 0x8b,
    0x44, 0x24, 0x04, 0x0f, 0xb6, 0xc0, 0x66, 0x89, 0x07, 0x0f, 0x84, 0x10, 0x00, 0x00, 0x00, 0xe8, 0x00, 0x00, 0x00,
    0x00, 0xf3, 0xa4, 0xf3, 0xab, 0xd9, 0xc0, 0xdd, 0x5d, 0xf8, 0x0f, 0x28, 0xc1, 0x66, 0x0f, 0xef, 0xc0, 0x0f, 0x1f,
    0x44, 0x00, 0x00, 0x64, 0xa1, 0x00, 0x00, 0x00, 0x00, 0xc1, 0xe0, 0x05, 0xf7, 0xf1, 0x0f, 0xaf, 0xc2, 0x8d, 0x4c,
    0x11, 0x07, 0xeb, 0xfe, 0xc2, 0x04, 0x00, 0xc3,
];

const COMMAND_LINES: [&str; 4] =
    ["", "/boot/kernel.elf bench test=kprobes", "shell frobnicate  x\ty", "test= demo x/y"];
const KEYS: &[u8] = b"ab\x08c\x7f\x7f\x7fxyz\x01\x1b 1234567890\x08\r";

/// Deterministic work through formatting, collections, strings, the
/// decoder, symbol lookups, the line editor, the command line, the task
/// table and 64-bit division; returns a hash of everything it computed.
#[inline(never)]
fn workload() -> u64 {
    let mut hash = Fnv::new();
    let mut text = String::new();

    // core::fmt: integers in every radix and width, signed, 64-bit.
    for (i, value) in [0u32, 7, 42, 65_535, 0xdead_beef, u32::MAX].into_iter().enumerate() {
        let signed = value as i32 - 100;
        let wide = (value as u64) << (i * 5) | 3;
        let _ = write!(
            text,
            "{value} {value:x} {value:#010X} {value:o} {value:b} {signed:+} {signed:>12} {wide} {wide:x}|"
        );
        let _ = write!(text, "{:<6}|{:^7}|{:08.3}|", value % 1000, i, i as u8);
    }
    // core::fmt: str, char, Debug escapes, builders.
    let _ = write!(text, "{:?} {:>8} {:<5}| {:?} {:?}", "a\"b\n\tc\u{7f}é", "pad", "x", 'q', '\n');
    let pairs: Vec<(u32, &str)> = (0..5).map(|i| (i * i, COMMAND_LINES[i as usize % 4])).collect();
    let _ = write!(text, "{pairs:?} {:?} {:#?}", Some((1u8, -2i16)), [Some(3u32), None]);
    hash.bytes(text.as_bytes());

    // 64-bit division and remainder (compiler builtins on i386).
    let mut acc = 0u64;
    for divisor in [3u64, 10, 1_000_007, 1 << 33, 0x1234_5678_9abc] {
        let dividend = black_box(0xfedc_ba98_7654_3210u64 ^ divisor);
        acc = acc.wrapping_add(dividend / divisor).wrapping_add(dividend % divisor);
        let signed = black_box(-(dividend as i64 >> 3));
        acc = acc.wrapping_add((signed / divisor as i64) as u64).wrapping_add((signed % divisor as i64) as u64);
    }
    hash.number(acc);

    // alloc: Vec growth, sorting, dedup, retain; String growth; VecDeque; BTreeMap.
    let mut numbers: Vec<u32> = Vec::new();
    for i in 0..200u32 {
        numbers.push(i.wrapping_mul(2_654_435_761) % 1000);
    }
    numbers.sort_unstable();
    numbers.dedup();
    numbers.retain(|n| n % 3 != 0);
    let mut words: Vec<String> = numbers.iter().take(40).map(|n| format!("w{n:03}")).collect();
    words.sort_by(|a, b| b.cmp(a));
    let mut joined = String::new();
    for word in &words {
        joined.push_str(word);
        joined.push(',');
    }
    joined.insert(0, '[');
    let joined = joined.replace("w0", "W");
    hash.bytes(joined.as_bytes());
    let mut queue: VecDeque<u32> = VecDeque::new();
    for &n in numbers.iter().take(30) {
        if n % 2 == 0 { queue.push_back(n) } else { queue.push_front(n) }
    }
    while queue.len() > 10 {
        hash.number(queue.pop_front().unwrap_or(0) as u64 ^ queue.pop_back().unwrap_or(0) as u64);
    }
    let mut map: BTreeMap<u32, String> = BTreeMap::new();
    for &n in numbers.iter() {
        map.insert(n, format!("{n}"));
    }
    for n in (0..1000).step_by(7) {
        map.remove(&n);
    }
    for (key, value) in map.range(100..700) {
        hash.number(*key as u64);
        hash.bytes(value.as_bytes());
    }
    hash.number(map.len() as u64);

    // core::str: searching, splitting, parsing, UTF-8.
    let haystack = "the quick brown fox jumps over the lazy dog; the end";
    hash.number(haystack.find("lazy").unwrap_or(0) as u64);
    hash.number(haystack.matches("the").count() as u64);
    hash.number(haystack.contains("fox jumps") as u64);
    for word in haystack.split(' ').filter(|w| !w.is_empty()) {
        hash.number(word.chars().rev().map(|c| c as u64).sum());
    }
    for number in ["17", "-3", "4294967295", "x1", ""] {
        hash.number(number.parse::<i64>().map_or(u64::MAX, |n| n as u64));
    }
    hash.number(core::str::from_utf8(joined.as_bytes()).map_or(0, |s| s.chars().count()) as u64);

    // iced-x86's decoder.
    let mut decoder = Decoder::with_ip(32, CODE, 0x1000, DecoderOptions::NONE);
    let mut instruction = Instruction::default();
    while decoder.can_decode() {
        decoder.decode_out(&mut instruction);
        hash.number(instruction.code() as u64 ^ (instruction.len() as u64) << 32 ^ instruction.next_ip() << 40);
    }

    // The kernel's symbol table.
    for name in ["probe_kernel::cmdline::parse::<fn(&str)>", "kernel_boot_entry", "no::such::function", "__udivdi3"] {
        direct(0);
        let symbol = symbols::lookup_name(name);
        hash.number(symbol.map_or(0, |s| (s.address ^ s.size << 20) as u64));
    }
    let text_range = paging::kernel_text();
    for address in
        [text_range.start, text_range.start + 0x1234, workload as *const () as usize + 5, text_range.end - 1, 0]
    {
        direct(1);
        let symbol = symbols::lookup_address(address);
        hash.number(symbol.map_or(0, |s| (s.address ^ s.offset << 24) as u64));
        hash.bytes(symbol.map_or("", |s| s.name).as_bytes());
    }
    hash.number(symbols::iter().take(40).map(|s| s.size).sum::<usize>() as u64);

    // The line editor and the command line.
    let mut buffer = [0u8; 12];
    let mut editor = LineEditor::new(&mut buffer);
    for &key in KEYS {
        direct(2);
        let event = editor.feed(key);
        hash.bytes(format!("{event:?}").as_bytes());
    }
    hash.bytes(editor.line().as_bytes());
    let parse: fn(&'static str, fn(&'static str)) -> cmdline::CommandLine<'static> = black_box(cmdline::parse);
    for line in COMMAND_LINES {
        UNKNOWN_WORDS.store(0, Ordering::Relaxed);
        let parsed = parse(line, count_unknown);
        hash.bytes(format!("{parsed:?} {}", UNKNOWN_WORDS.load(Ordering::Relaxed)).as_bytes());
    }

    // The task table (the boot task is the only task while this runs).
    for id in [0, 1, task::MAX_TASKS - 1, task::MAX_TASKS] {
        direct(3);
        hash.bytes(task::task_name(id).unwrap_or("-").as_bytes());
        direct(4);
        hash.bytes(format!("{:?}", task::state(id)).as_bytes());
    }
    let mut tasks = 0;
    task::for_each_task(|_| tasks += 1);
    hash.number(tasks);
    for address in [task::task_stack(1).start + 16, 0x10, task::task_stack(2).end - 4] {
        direct(5);
        hash.number(task::stack_of_address(address).map_or(0, |r| r.start) as u64);
    }
    hash.0
}

// ===========================================================================
// Counting probes
// ===========================================================================

/// A probe with its own hit counters (the handlers find them from the probe).
#[repr(C)]
struct Counted {
    probe: Kprobe,
    pre: AtomicUsize,
    post: AtomicUsize,
    /// `pre` and `post` as they were when the workload ended.
    seen: (AtomicUsize, AtomicUsize),
}

impl Counted {
    fn leak(address: usize, with_post: bool) -> &'static Counted {
        let probe = Kprobe::new().address(address as *const ()).pre_handler(count_pre);
        let probe = if with_post { probe.post_handler(count_post) } else { probe };
        let zero = || AtomicUsize::new(0);
        alloc::boxed::Box::leak(alloc::boxed::Box::new(Counted {
            probe,
            pre: zero(),
            post: zero(),
            seen: (zero(), zero()),
        }))
    }

    fn pre(&self) -> usize {
        self.seen.0.load(Ordering::Relaxed)
    }

    fn post(&self) -> usize {
        self.seen.1.load(Ordering::Relaxed)
    }
}

fn counted(probe: &Kprobe) -> &Counted {
    // SAFETY: these handlers are only ever set on the `probe` field of a
    // `Counted` (see `Counted::leak`), which is `repr(C)` with `probe` first,
    // so the probe's address is the `Counted`'s and the cast stays in bounds.
    unsafe { &*(probe as *const Kprobe as *const Counted) }
}

fn count_pre(probe: &Kprobe, _regs: &mut PtRegs) -> PreAction {
    counted(probe).pre.fetch_add(1, Ordering::Relaxed);
    PreAction::Continue
}

fn count_post(probe: &Kprobe, _regs: &mut PtRegs) {
    counted(probe).post.fetch_add(1, Ordering::Relaxed);
}

/// What a probed run of the workload gave.
struct Run {
    hash: u64,
    /// Flags of each probe while registered.
    flags: Vec<KprobeFlags>,
    /// Sum of `nmissed` over the probes.
    missed: usize,
}

/// Registers `probes` as one batch, runs the workload, unregisters them.
/// Counters are zeroed after registration and read before unregistration,
/// so only the workload's own hits count.
fn probed_run(probes: &[&'static Counted]) -> Run {
    probed_run_of(probes, workload)
}

/// [`probed_run`] with another workload.
fn probed_run_of(probes: &[&'static Counted], workload: fn() -> u64) -> Run {
    let kprobes: Vec<&'static Kprobe> = probes.iter().map(|c| &c.probe).collect();
    if let Err(error) = register_kprobes(&kprobes) {
        panic!(
            "batch of {} probes refused: {error:?} (first at {})",
            probes.len(),
            symbols::Describe(probes[0].probe.addr().unwrap_or(0))
        );
    }
    let flags: Vec<KprobeFlags> = kprobes.iter().map(|p| p.flags()).collect();
    for counted in probes {
        counted.pre.store(0, Ordering::Relaxed);
        counted.post.store(0, Ordering::Relaxed);
    }
    let hash = workload();
    for counted in probes {
        counted.seen.0.store(counted.pre.load(Ordering::Relaxed), Ordering::Relaxed);
        counted.seen.1.store(counted.post.load(Ordering::Relaxed), Ordering::Relaxed);
    }
    let missed = kprobes.iter().map(|p| p.nmissed()).sum();
    unregister_kprobes(&kprobes);
    assert_eq!(site_count(), 0, "sites left after unregistering the batch");
    Run { hash, flags, missed }
}

// ===========================================================================
// Choosing the targets
// ===========================================================================

/// Name fragments that pick candidate functions: formatting, allocation and
/// collections, strings, sorting, the decoder, the kernel's symbol table,
/// line editor, command line and task table, and compiler builtins. None of
/// these is on the trap or timer path, so only the workload calls them while
/// probes are armed. Which candidates become targets is decided by the
/// census: the ones the workload calls.
const PATTERNS: &[&str] = &[
    "core::fmt::",
    "alloc::raw_vec::",
    "alloc::vec::",
    "alloc::string::",
    "alloc::collections::",
    "alloc::fmt::",
    "alloc::str::",
    "<str>::",
    "core::str::",
    "core::slice::sort::",
    "core::num::",
    "iced_x86::decoder::",
    "probe_kernel::symbols::",
    "<probe_kernel::symbols::",
    "<probe_kernel::console::LineEditor>::",
    "probe_kernel::cmdline::parse",
    "probe_kernel::task::table::task_name",
    "probe_kernel::task::table::state",
    "probe_kernel::task::table::for_each_task",
    "probe_kernel::task::table::public_state",
    "probe_kernel::task::stacks::",
    "__udivdi3",
    "__umoddi3",
    "__divdi3",
    "__moddi3",
    "__udivmoddi4",
    "compiler_builtins::int::",
];

/// Name fragments never targeted: the kernel's Debug impls for engine
/// types, and functions of this test's own harness code.
const EXCLUDE: &[&str] = &["kprobes::", "probe_everywhere::", "testing::"];

/// Functions at most this big become targets (bigger ones make every
/// registration decode far, and the run slow).
const MAX_TARGET_SIZE: usize = 0x800;
/// Instruction boundaries probed in all, at most (keeps the kernel well under a minute).
const BOUNDARY_BUDGET: usize = 6000;
/// The least number of target functions the campaign accepts.
const MIN_TARGETS: usize = 50;

/// The first pattern that picked `name`.
fn pattern_of(name: &str) -> &'static str {
    PATTERNS.iter().find(|p| name.contains(**p)).copied().unwrap_or("")
}

fn is_candidate(name: &str) -> bool {
    PATTERNS.iter().any(|p| name.contains(p)) && !EXCLUDE.iter().any(|e| name.contains(e))
}

/// A tally of refusal reasons.
fn tally(refusals: &mut Vec<(String, usize)>, reason: String) {
    match refusals.iter_mut().find(|(r, _)| *r == reason) {
        Some((_, n)) => *n += 1,
        None => refusals.push((reason, 1)),
    }
}

struct Target {
    function: Symbol,
    calls: usize,
    /// The function's bytes before any probe (to check they come back).
    bytes: Vec<u8>,
}

/// Entry hits of every candidate, from batches of entry probes (pre only).
fn census(candidates: &[Symbol], baseline: u64) -> Vec<usize> {
    census_of(candidates, baseline, workload)
}

/// [`census`] with another workload.
fn census_of(candidates: &[Symbol], baseline: u64, workload: fn() -> u64) -> Vec<usize> {
    let probes: Vec<&'static Counted> = candidates.iter().map(|f| Counted::leak(f.address, false)).collect();
    for chunk in probes.chunks(MAX_SITES) {
        let run = probed_run_of(chunk, workload);
        assert_eq!(run.hash, baseline, "entry probes changed the workload's result");
        assert_eq!(run.missed, 0, "entry probes missed hits");
    }
    probes.iter().map(|c| c.pre()).collect()
}

fn reset_direct() {
    for counter in &DIRECT_CALLS {
        counter.store(0, Ordering::Relaxed);
    }
}

/// One probed instruction of a target.
struct Boundary {
    target: usize,
    offset: usize,
    boostable: bool,
    stepped: &'static Counted,
    boosted: &'static Counted,
    /// Hits when probed alone (single-stepped).
    alone: usize,
}

#[test_case]
fn every_instruction_of_fifty_functions_probed_alone_and_all_at_once() {
    assert_eq!(site_count(), 0);
    let started = task::ticks();
    reset_direct();
    let baseline = workload();
    let direct_per_run: Vec<usize> = DIRECT_CALLS.iter().map(|c| c.swap(0, Ordering::Relaxed)).collect();
    assert_eq!(workload(), baseline, "the workload is not deterministic");

    // Candidates by name; refused ones are counted and skipped.
    let engine = paging::kprobes_text();
    let mut refusals: Vec<(String, usize)> = Vec::new();
    let mut refused = 0;
    let mut candidates: Vec<Symbol> = Vec::new();
    for function in kernel_functions() {
        if engine.contains(&function.address) || !is_candidate(function.name) {
            continue;
        }
        match can_probe(function.address as *const ()) {
            Ok(_) => candidates.push(function),
            Err(error) => {
                refused += 1;
                tally(&mut refusals, format!("{error:?}"));
            }
        }
    }

    // The census: which candidates the workload calls, how often.
    reset_direct();
    let calls = census(&candidates, baseline);
    let census_runs = candidates.len().div_ceil(MAX_SITES);
    // The functions the workload calls directly and counts itself (those the
    // compiler did not inline into it: an inlined one is never entered).
    let mut checked_direct = 0;
    for (index, name) in DIRECT_NAMES.iter().enumerate() {
        assert_eq!(DIRECT_CALLS[index].load(Ordering::Relaxed), direct_per_run[index] * census_runs);
        if let Some(at) = candidates.iter().position(|f| f.name == *name).filter(|&at| calls[at] > 0) {
            assert_eq!(
                calls[at], direct_per_run[index],
                "{name}: entry hits differ from the calls the workload counted"
            );
            checked_direct += 1;
        }
    }
    assert!(checked_direct >= 3, "only {checked_direct} directly called functions were entered (inlined?)");
    let mut targets: Vec<Target> = candidates
        .iter()
        .zip(&calls)
        .filter(|(f, calls)| **calls > 0 && f.size <= MAX_TARGET_SIZE)
        .map(|(f, calls)| Target { function: *f, calls: *calls, bytes: function_bytes(f) })
        .collect();
    // Keep within the budget, and diverse: drop the biggest functions first,
    // but keep up to three per pattern.
    let mut total: usize =
        targets.iter().map(|t| instruction_boundaries(&t.function, &t.bytes).map_or(0, |b| b.len())).sum();
    let mut dropped = 0;
    while total > BOUNDARY_BUDGET && targets.len() > MIN_TARGETS {
        let group_size =
            |t: &Target| targets.iter().filter(|u| pattern_of(u.function.name) == pattern_of(t.function.name)).count();
        let Some(victim) =
            (0..targets.len()).filter(|&i| group_size(&targets[i]) > 3).max_by_key(|&i| targets[i].function.size)
        else {
            break;
        };
        let removed = targets.remove(victim);
        total -= instruction_boundaries(&removed.function, &removed.bytes).map_or(0, |b| b.len());
        dropped += 1;
    }
    println!();
    println!(
        "  {} candidates by name ({refused} refused by can_probe: {refusals:?}), {} called by the workload, {} targets ({dropped} dropped for the budget of {BOUNDARY_BUDGET} boundaries)",
        candidates.len() + refused,
        calls.iter().filter(|&&c| c > 0).count(),
        targets.len()
    );
    assert!(
        targets.len() >= MIN_TARGETS,
        "only {} target functions accepted and called (need {MIN_TARGETS})",
        targets.len()
    );

    // Every instruction boundary of every target.
    let mut boundaries: Vec<Boundary> = Vec::new();
    let mut unsupported = 0;
    for (index, target) in targets.iter().enumerate() {
        let instructions = instruction_boundaries(&target.function, &target.bytes)
            .unwrap_or_else(|offset| panic!("{}+{offset:#x} does not decode", target.function.name));
        for (address, _length) in instructions {
            match can_probe(address as *const ()) {
                Ok(fixup) => boundaries.push(Boundary {
                    target: index,
                    offset: address - target.function.address,
                    boostable: fixup.boostable(),
                    stepped: Counted::leak(address, true),
                    boosted: Counted::leak(address, false),
                    alone: 0,
                }),
                Err(KprobeError::UnsupportedInstruction(_)) => unsupported += 1,
                Err(error) => panic!("{}: {error:?}", symbols::Describe(address)),
            }
        }
    }
    let where_ = |b: &Boundary| format!("{}+{:#x}", targets[b.target].function.name, b.offset);

    // One probe at a time: single-stepped, then boosted.
    let (mut alone_hits, mut executed, mut boosted) = (0usize, 0usize, 0usize);
    for boundary in boundaries.iter_mut() {
        let run = probed_run(&[boundary.stepped]);
        assert_eq!(run.hash, baseline, "{}: single-stepped probe changed the result", where_(boundary));
        assert!(!run.flags[0].contains(KprobeFlags::BOOSTED), "{}: boosted with a post handler", where_(boundary));
        let (pre, post) = (boundary.stepped.pre(), boundary.stepped.post());
        assert_eq!((post, run.missed), (pre, 0), "{}: post hits or misses", where_(boundary));
        if boundary.offset == 0 {
            assert_eq!(pre, targets[boundary.target].calls, "{}: entry hits differ from calls", where_(boundary));
        }
        boundary.alone = pre;
        alone_hits += pre;
        executed += usize::from(pre > 0);

        let run = probed_run(&[boundary.boosted]);
        assert_eq!(run.hash, baseline, "{}: boosted probe changed the result", where_(boundary));
        assert_eq!(
            run.flags[0].contains(KprobeFlags::BOOSTED),
            boundary.boostable,
            "{}: BOOSTED flag",
            where_(boundary)
        );
        boosted += usize::from(boundary.boostable);
        let (pre, post) = (boundary.boosted.pre(), boundary.boosted.post());
        assert_eq!((pre, post, run.missed), (boundary.alone, 0, 0), "{}: boosted hits", where_(boundary));
    }
    let alone_time = task::ticks() - started;

    // As many at once as the site table holds: single-stepped, then boosted.
    let batch_started = task::ticks();
    let mut batches = 0;
    let mut batch_hits = 0;
    for chunk in boundaries.chunks(MAX_SITES) {
        for stepped in [true, false] {
            let probes: Vec<&'static Counted> =
                chunk.iter().map(|b| if stepped { b.stepped } else { b.boosted }).collect();
            let run = probed_run(&probes);
            batches += 1;
            let first = where_(&chunk[0]);
            assert_eq!(run.hash, baseline, "batch from {first} (stepped: {stepped}) changed the result");
            assert_eq!(run.missed, 0, "batch from {first} (stepped: {stepped}) missed hits");
            for (boundary, (probe, flags)) in chunk.iter().zip(probes.iter().zip(&run.flags)) {
                let expected_post = if stepped { boundary.alone } else { 0 };
                assert_eq!(
                    (probe.pre(), probe.post()),
                    (boundary.alone, expected_post),
                    "{}: hits in a batch (stepped: {stepped})",
                    where_(boundary)
                );
                assert_eq!(
                    flags.contains(KprobeFlags::BOOSTED),
                    !stepped && boundary.boostable,
                    "{}: BOOSTED in a batch",
                    where_(boundary)
                );
                batch_hits += probe.pre();
            }
        }
    }
    // Multiprobes: both probes of each boundary at once (half as many
    // sites per batch); the post handler keeps the whole site single-stepped.
    let mut multiprobe_hits = 0;
    for chunk in boundaries.chunks(MAX_SITES / 2) {
        let probes: Vec<&'static Counted> = chunk.iter().flat_map(|b| [b.stepped, b.boosted]).collect();
        let run = probed_run(&probes);
        batches += 1;
        let first = where_(&chunk[0]);
        assert_eq!((run.hash, run.missed), (baseline, 0), "multiprobe batch from {first}: result or misses");
        for (boundary, pair) in chunk.iter().zip(probes.chunks(2)) {
            let (stepped, boosted) = (pair[0], pair[1]);
            assert_eq!(
                (stepped.pre(), stepped.post(), boosted.pre(), boosted.post()),
                (boundary.alone, boundary.alone, boundary.alone, 0),
                "{}: multiprobe hits",
                where_(boundary)
            );
            multiprobe_hits += stepped.pre() + boosted.pre();
        }
        assert!(
            run.flags.iter().all(|f| !f.contains(KprobeFlags::BOOSTED)),
            "multiprobe batch from {first}: boosted with a post handler at the site"
        );
    }
    let batch_time = task::ticks() - batch_started;
    for target in &targets {
        assert_eq!(function_bytes(&target.function), target.bytes, "{}: bytes not restored", target.function.name);
    }
    assert_eq!(workload(), baseline);

    let mut groups: Vec<(String, usize)> = Vec::new();
    for target in &targets {
        tally(&mut groups, String::from(pattern_of(target.function.name)));
    }
    println!("  targets per pattern: {groups:?}");
    println!(
        "  probe_everywhere: {} functions, {} boundaries ({unsupported} more refused as unsupported), {executed} executed, {boosted} boostable",
        targets.len(),
        boundaries.len()
    );
    println!(
        "  alone: {} runs, {} hits single-stepped + {} boosted, 0 misses, {}",
        2 * boundaries.len(),
        alone_hits,
        alone_hits,
        Seconds(alone_time)
    );
    println!(
        "  all at once: {batches} batches of up to {MAX_SITES} sites, {batch_hits} hits + {multiprobe_hits} as multiprobes (both probes per site), 0 misses, {}; census {census_runs} runs",
        Seconds(batch_time)
    );
    println!(
        "  heap in use: {} KiB (the probes are leaked: they must outlive their registration)",
        probe_kernel::memory::heap_used() / 1024
    );
    assert!(executed * 2 > boundaries.len(), "the workload ran under half of the probed instructions: {executed}");
}

// ===========================================================================
// Every function entry of the image, while the demo runs
// ===========================================================================

#[test_case]
fn a_probe_on_every_function_entry_leaves_the_demo_unchanged() {
    assert_eq!(site_count(), 0);
    let started = task::ticks();
    let unprobed = probe_kernel::demo::run();
    let engine = paging::kprobes_text();
    let mut refusals: Vec<(String, usize)> = Vec::new();
    let (mut trap_path, mut refused) = (0, 0);
    let mut probes: Vec<&'static Counted> = Vec::new();
    let mut entries: Vec<(&'static str, usize, u8)> = Vec::new();
    for function in kernel_functions() {
        if engine.contains(&function.address) {
            trap_path += 1;
            continue;
        }
        match can_probe(function.address as *const ()) {
            Ok(_) => {
                probes.push(Counted::leak(function.address, false));
                entries.push((function.name, function.address, text_byte(function.address)));
            }
            Err(error) => {
                refused += 1;
                tally(&mut refusals, format!("{error:?}"));
            }
        }
    }
    // The demo registers a kprobe and a kretprobe of its own: leave them two sites.
    let batch = MAX_SITES - 2;
    let (mut hits, mut missed, mut batches) = (0, 0, 0);
    let mut per_batch: Vec<usize> = Vec::new();
    for chunk in probes.chunks(batch) {
        let kprobes: Vec<&'static Kprobe> = chunk.iter().map(|c| &c.probe).collect();
        register_kprobes(&kprobes).unwrap_or_else(|e| panic!("batch {batches} refused: {e:?}"));
        let summary = probe_kernel::demo::run();
        let batch_missed: usize = kprobes.iter().map(|p| p.nmissed()).sum();
        unregister_kprobes(&kprobes);
        let batch_hits: usize = chunk.iter().map(|c| c.pre.load(Ordering::Relaxed)).sum();
        assert_eq!(
            summary,
            unprobed,
            "batch {batches} ({}..): the demo's results changed",
            symbols::Describe(chunk[0].probe.addr().unwrap_or(0))
        );
        per_batch.push(batch_hits);
        hits += batch_hits;
        missed += batch_missed;
        batches += 1;
    }
    assert_eq!(site_count(), 0);
    for &(_, address, byte) in &entries {
        assert_eq!(text_byte(address), byte, "{}: byte not restored", symbols::Describe(address));
    }
    // The demo's own functions were entered exactly as often as it calls them.
    let hits_of = |name: &str| {
        let at = entries.iter().position(|e| e.0 == name).unwrap_or_else(|| panic!("{name} not probed"));
        probes[at].pre.load(Ordering::Relaxed)
    };
    let calls = probe_kernel::demo::TASKS * probe_kernel::demo::CALLS_PER_TASK;
    assert_eq!(hits_of("probe_kernel::demo::checksum"), calls);
    assert_eq!(hits_of("probe_kernel::demo::slow_square"), calls);
    assert_eq!(hits_of("probe_kernel::demo::run"), 1);
    assert_eq!(probe_kernel::demo::run(), unprobed);
    println!();
    println!(
        "  every entry: {} functions probed in {batches} batches of up to {batch}, {refused} refused ({refusals:?}), {trap_path} trap-path functions skipped",
        probes.len()
    );
    println!(
        "  {hits} hits (per batch {per_batch:?}), {missed} misses (handlers that print reach probed console code), {}",
        Seconds(task::ticks() - started)
    );
    println!("  demo summary (unprobed and every probed run): {unprobed:?}");
}

// ===========================================================================
// Every instruction of the task API, while tasks switch
// ===========================================================================

/// A child task: yields, one of them sleeps, reads its own name.
fn child(k: usize) -> usize {
    for _ in 0..3 {
        task::yield_now();
    }
    if k == 2 {
        task::sleep(1);
    }
    k * k + task::task_name(task::current_id()).map_or(0, str::len)
}

/// Spawns three children and joins them: spawn, task start, yield, sleep,
/// exit and join all run, with context switches in between.
#[inline(never)]
fn task_workload() -> u64 {
    let ids = [1, 2, 3].map(|k| task::spawn_named("child", child, k).expect("spawn child"));
    ids.into_iter().fold(7u64, |sum, id| sum * 31 + task::join(id) as u64)
}

#[test_case]
fn every_instruction_of_the_task_api_probed_while_tasks_switch() {
    assert_eq!(site_count(), 0);
    let started = task::ticks();
    let baseline = task_workload();
    assert_eq!(baseline, ((7 * 31 + 6) * 31 + 9) * 31 + 14, "children's results");
    let engine = paging::kprobes_text();
    let (mut refused, mut refusals) = (0, Vec::new());
    let mut candidates: Vec<Symbol> = Vec::new();
    for function in kernel_functions() {
        let task_api = [
            "probe_kernel::task::lifecycle::",
            "probe_kernel::task::scheduler::",
            "probe_kernel::task::table::",
            "probe_kernel::task::stacks::",
        ];
        if engine.contains(&function.address) || !task_api.iter().any(|p| function.name.starts_with(p)) {
            continue;
        }
        match can_probe(function.address as *const ()) {
            Ok(_) => candidates.push(function),
            Err(error) => {
                refused += 1;
                tally(&mut refusals, format!("{}: {error:?}", function.name));
            }
        }
    }
    // Two censuses: entry hits are checked where they do not depend on
    // how the tasks happened to interleave.
    let first = census_of(&candidates, baseline, task_workload);
    let second = census_of(&candidates, baseline, task_workload);
    let targets: Vec<(Symbol, Option<usize>)> = candidates
        .iter()
        .zip(first.iter().zip(&second))
        .filter(|(_, (a, b))| **a > 0 || **b > 0)
        .map(|(f, (a, b))| (*f, (a == b).then_some(*a)))
        .collect();
    println!();
    println!(
        "  task API: {} functions called, {refused} refused ({refusals:?}); entry counts stable for {}",
        targets.len(),
        targets.iter().filter(|t| t.1.is_some()).count()
    );
    let names: Vec<(&str, Option<usize>)> = targets.iter().map(|(f, calls)| (f.name, *calls)).collect();
    println!("  (function, calls per run): {names:?}");
    assert!(targets.len() >= 5, "too few task functions: {}", targets.len());

    let mut probes: Vec<(&'static Counted, &'static Counted, Option<usize>, String)> = Vec::new();
    for (function, calls) in &targets {
        let bytes = function_bytes(function);
        for (address, _) in instruction_boundaries(function, &bytes).expect("decodes") {
            if can_probe(address as *const ()).is_err() {
                continue;
            }
            let offset = address - function.address;
            let entry_calls = if offset == 0 { *calls } else { None };
            probes.push((
                Counted::leak(address, true),
                Counted::leak(address, false),
                entry_calls,
                format!("{}+{offset:#x}", function.name),
            ));
        }
    }
    let mut hits = 0;
    for (stepped, boosted, entry_calls, where_) in &probes {
        for probe in [*stepped, *boosted] {
            let run = probed_run_of(&[probe], task_workload);
            assert_eq!((run.hash, run.missed), (baseline, 0), "{where_}: result or misses");
            if let Some(calls) = entry_calls {
                assert_eq!(probe.pre(), *calls, "{where_}: entry hits");
            }
            hits += probe.pre();
        }
        assert_eq!(stepped.pre(), stepped.post(), "{where_}: post hits");
    }
    for stepped in [true, false] {
        for chunk in probes.chunks(MAX_SITES) {
            let batch: Vec<&'static Counted> = chunk.iter().map(|p| if stepped { p.0 } else { p.1 }).collect();
            let run = probed_run_of(&batch, task_workload);
            assert_eq!((run.hash, run.missed), (baseline, 0), "batch (stepped: {stepped}): result or misses");
            for (probe, (_, _, entry_calls, where_)) in batch.iter().zip(chunk) {
                if let Some(calls) = entry_calls {
                    assert_eq!(probe.pre(), *calls, "{where_}: entry hits in a batch");
                }
                hits += probe.pre();
            }
        }
    }
    println!(
        "  task API: {} boundaries, each probed alone twice and in batches (stepped, boosted): {hits} hits, 0 misses, {}",
        probes.len(),
        Seconds(task::ticks() - started)
    );
}
