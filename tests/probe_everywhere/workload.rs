//! The deterministic workload whose hash every probed run must reproduce.
//!
//! Why: a probe must never change what the probed code computes; the
//! workload exercises formatting, allocation, collections, the decoder, the
//! symbol table, the line editor and the scheduler, and hashes the results.
use super::*;

/// Calls of the functions the workload calls directly, counted by the
/// workload itself (never probed): the census of entry hits must agree.
pub(crate) static DIRECT_CALLS: [AtomicUsize; 6] = [const { AtomicUsize::new(0) }; 6];
/// Names of the functions counted in [`DIRECT_CALLS`], in that order.
pub(crate) const DIRECT_NAMES: [&str; 6] = [
    "probe_kernel::symbols::lookup_name",
    "probe_kernel::symbols::lookup_address",
    "<probe_kernel::console::LineEditor>::feed",
    "probe_kernel::task::table::task_name",
    "probe_kernel::task::table::state",
    "probe_kernel::task::stacks::stack_of_address",
];

pub(crate) fn direct(index: usize) {
    DIRECT_CALLS[index].fetch_add(1, Ordering::Relaxed);
}

pub(crate) static UNKNOWN_WORDS: AtomicUsize = AtomicUsize::new(0);

pub(crate) fn count_unknown(_word: &str) {
    UNKNOWN_WORDS.fetch_add(1, Ordering::Relaxed);
}

/// A few instructions for the decoder: prologue, moves with every
/// addressing form, SIB, prefixes, jcc rel32, call, ret, string ops,
/// x87, SSE, a multi-byte nop.
pub(crate) const CODE: &[u8] = &[
    0x55, 0x89, 0xe5, 0x57, 0x56, 0x83, 0xec, 0x1c, 0x8b, 0x45, 0x08, 0x8b, 0x04, 0x8d, 0x00, 0x10, 0x00, 0x00, 0x8b,
    0x44, 0x24, 0x04, 0x0f, 0xb6, 0xc0, 0x66, 0x89, 0x07, 0x0f, 0x84, 0x10, 0x00, 0x00, 0x00, 0xe8, 0x00, 0x00, 0x00,
    0x00, 0xf3, 0xa4, 0xf3, 0xab, 0xd9, 0xc0, 0xdd, 0x5d, 0xf8, 0x0f, 0x28, 0xc1, 0x66, 0x0f, 0xef, 0xc0, 0x0f, 0x1f,
    0x44, 0x00, 0x00, 0x64, 0xa1, 0x00, 0x00, 0x00, 0x00, 0xc1, 0xe0, 0x05, 0xf7, 0xf1, 0x0f, 0xaf, 0xc2, 0x8d, 0x4c,
    0x11, 0x07, 0xeb, 0xfe, 0xc2, 0x04, 0x00, 0xc3,
];

pub(crate) const COMMAND_LINES: [&str; 4] =
    ["", "/boot/kernel.elf bench test=kprobes", "shell frobnicate  x\ty", "test= demo x/y"];
pub(crate) const KEYS: &[u8] = b"ab\x08c\x7f\x7f\x7fxyz\x01\x1b 1234567890\x08\r";

/// Deterministic work through formatting, collections, strings, the
/// decoder, symbol lookups, the line editor, the command line, the task
/// table and 64-bit division; returns a hash of everything it computed.
#[inline(never)]
pub(crate) fn workload() -> u64 {
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
