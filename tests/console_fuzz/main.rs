//! Test kernel: a seeded fuzz campaign against the console, byte by byte.
//!
//! Issue 7 showed the console could be misled or exhausted by input alone.
//! This kernel feeds 100,000 generated lines (random bytes, command words
//! with wrong arguments, overlong lines, control bytes, escape sequences,
//! and real definitions followed by removes) through the `LineEditor` and
//! `shell::handle`, exactly as the shell loop does, and checks each answer
//! against what the generator knows it must be. At the end the heap and the
//! probe sites are back where they started and the console still answers.
//!
//! An error is output whose every line starts with the command word and
//! `": "` (`console: ` for a line refused whole). The seed is printed;
//! `cargo test --test console_fuzz -- fuzz_seed=N` replays a run.
#![no_std]
#![no_main]
#![feature(custom_test_frameworks)]
#![test_runner(probe_kernel::testing::run_tests)]
#![reexport_test_harness_main = "test_main"]

mod generator;

use core::fmt::Write;
use generator::{Expect, Generator, Text};
use probe_kernel::console::{self, LINE_MAX, LineEditor, LineEvent};
use probe_kernel::kprobes::site_count;
use probe_kernel::tracefs::sh;
use probe_kernel::{memory, println, shell};

probe_kernel::test_kernel_main!();

/// Lines per campaign.
const LINES: usize = 100_000;
const DEFAULT_SEED: u32 = 0x7e57_c0de;

/// 32 one-byte instructions and a `ret`: a target whose every offset probes.
#[unsafe(naked)]
#[unsafe(no_mangle)]
pub extern "C" fn console_fuzz_target() {
    core::arch::naked_asm!(".rept 32", "nop", ".endr", "ret");
}

fn seed() -> u32 {
    let line = probe_kernel::boot_info::get().map_or("", |b| b.command_line());
    line.split_ascii_whitespace()
        .find_map(|w| w.strip_prefix("fuzz_seed="))
        .and_then(|s| s.parse().ok())
        .unwrap_or(DEFAULT_SEED)
}

/// Figures of one campaign.
#[derive(Default)]
struct Figures {
    lines: usize,
    bytes: usize,
    errors: usize,
    definitions: usize,
    removes: usize,
    skipped: usize,
}

/// Whether every line of `answer` starts with `word: ` (and there is one).
fn is_error_from(answer: &[u8], word: &[u8]) -> bool {
    !answer.is_empty()
        && answer.ends_with(b"\n")
        && answer[..answer.len() - 1].split(|&b| b == b'\n').all(|line| {
            line.len() > word.len() + 2 && line.starts_with(word) && &line[word.len()..word.len() + 2] == b": "
        })
}

fn check(number: usize, seed: u32, keys: &[u8], answer: &[u8], ok: bool, what: &dyn core::fmt::Debug) {
    assert!(
        ok,
        "seed {seed:#x} line {number}: keys {:?}\nanswer {:?}\nexpected {what:?}",
        core::str::from_utf8(keys).unwrap_or("<bytes>"),
        core::str::from_utf8(answer)
    );
}

#[test_case]
fn console_survives_a_fuzz_campaign() {
    let seed = seed();
    core::hint::black_box(console_fuzz_target as extern "C" fn());
    let sites = site_count();
    let mut help = [0u8; 4096];
    console::capture_begin_silent();
    shell::execute("help");
    let help_len = console::capture_end(&mut help).len();
    let help = &help[..help_len];
    // Nothing of this test's own lives on the heap from here to the end.
    let heap = memory::heap_used();
    let ticks = probe_kernel::task::ticks();
    println!("seed {seed:#x}, {LINES} lines, heap in use {heap} bytes, {sites} probe sites");

    let mut generator = Generator::new(seed);
    let mut figures = Figures::default();
    let mut buffer = [0u8; LINE_MAX];
    let mut editor = LineEditor::new(&mut buffer);
    let mut answer_buffer = [0u8; 8192];
    let mut keys = Text::<16384>::new();
    let mut expected = Text::<2048>::new();
    let mut typed = Text::<256>::new();
    for number in 0..LINES {
        keys.clear();
        typed.clear();
        expected.clear();
        let case = generator.line(&mut keys, &mut typed, &mut expected);
        figures.lines += 1;
        figures.bytes += keys.len();
        editor.clear();
        let mut done = false;
        for &key in keys.bytes() {
            let event = editor.feed(key);
            // Only the LF of a CR LF may follow the end of the line.
            assert!(
                !done || (key == b'\n' && event == LineEvent::Ignored),
                "seed {seed:#x} line {number}: ended early"
            );
            done |= event == LineEvent::Done;
        }
        assert!(done, "seed {seed:#x} line {number}: the line did not end");
        let result = editor.result();
        if case.known {
            // The generator typed `typed`, perhaps with editing keys.
            check(
                number,
                seed,
                keys.bytes(),
                result.unwrap_or("<refused>").as_bytes(),
                result == Ok(typed.as_str()),
                &typed.as_str(),
            );
        }
        // Random lines that happen to be a real command are not run (`demo`).
        if let (Expect::Random, Ok(line)) = (case.expect, result)
            && sh::parse(line).is_ok_and(|parsed| parsed.words.first().is_some_and(|word| generator::is_command(word)))
        {
            figures.skipped += 1;
            continue;
        }
        console::capture_begin_silent();
        let command = shell::handle(result);
        let answer = console::capture_end(&mut answer_buffer);
        check(number, seed, keys.bytes(), answer, command == shell::Command::Continue, &"no exit");
        let word = match result {
            Ok(line) => line.split_ascii_whitespace().next().unwrap_or("").as_bytes(),
            Err(_) => b"console",
        };
        let is_error = is_error_from(answer, word);
        figures.errors += is_error as usize;
        let keys = keys.bytes();
        match case.expect {
            Expect::Exact => check(number, seed, keys, answer, answer == expected.bytes(), &expected.as_str()),
            Expect::Error => check(number, seed, keys, answer, is_error, &"an error"),
            Expect::Random => match result.map(|line| (line, sh::parse(line))) {
                // sh's syntax refused the line as a whole.
                Ok((_, Err(error))) => {
                    let _ = writeln!(expected, "sh: {error}");
                    check(number, seed, keys, answer, answer == expected.bytes(), &expected.as_str());
                }
                Ok((_, Ok(parsed))) if parsed.words.is_empty() => {
                    check(number, seed, keys, answer, answer.is_empty(), &"")
                }
                Ok((_, Ok(parsed))) => {
                    // The first word is no command.
                    let _ = writeln!(expected, "{}: unknown command (try: help)", parsed.words[0]);
                    check(number, seed, keys, answer, answer == expected.bytes(), &expected.as_str());
                }
                Err(error) => {
                    let _ = writeln!(expected, "console: {error}");
                    check(number, seed, keys, answer, answer == expected.bytes(), &expected.as_str());
                }
            },
            Expect::Defined => {
                figures.definitions += 1;
                check(number, seed, keys, answer, answer == expected.bytes(), &expected.as_str());
            }
            Expect::Removed => {
                figures.removes += 1;
                check(number, seed, keys, answer, answer == expected.bytes(), &expected.as_str());
            }
            Expect::Listing(count) => {
                let lines = answer.split(|&b| b == b'\n').filter(|l| !l.is_empty());
                let good = lines.clone().all(|l| {
                    l.starts_with(b"  ")
                        && (l.windows(7).any(|w| w == b"kprobe ") || l.windows(10).any(|w| w == b"kretprobe "))
                });
                check(number, seed, keys, answer, good && lines.count() == count, &count);
            }
            Expect::Help => check(number, seed, keys, answer, answer == help, &"help"),
        }
    }
    // Remove what is left, as a user would.
    for slot in generator.live_slots() {
        let mut line = Text::<32>::new();
        let _ = write!(line, "remove {slot}");
        console::capture_begin_silent();
        shell::execute(line.as_str());
        let answer = console::capture_end(&mut answer_buffer);
        expected.clear();
        let _ = writeln!(expected, "probe {slot} removed");
        assert_eq!(answer, expected.bytes());
    }
    let heap_after = memory::heap_used();
    let milliseconds = (probe_kernel::task::ticks() - ticks) * 1000 / u64::from(probe_kernel::arch::x86::pit::HZ);
    println!(
        "{} lines, {} bytes: {} errors, {} definitions, {} removes, {} random commands not run",
        figures.lines, figures.bytes, figures.errors, figures.definitions, figures.removes, figures.skipped
    );
    println!(
        "heap in use {heap} bytes before, {heap_after} after; {} probe sites; {milliseconds} ms of timer ticks",
        site_count()
    );
    assert_eq!(heap_after, heap);
    assert_eq!(site_count(), sites);
    assert!(figures.definitions > 1000 && figures.errors > LINES / 2, "too few definitions or errors");
    // The console still answers.
    for (line, want) in [("help", help), ("list", &b""[..])] {
        console::capture_begin_silent();
        let mut editor_line = Text::<8>::new();
        let _ = write!(editor_line, "{line}\r");
        editor.clear();
        editor_line.bytes().iter().for_each(|&k| {
            editor.feed(k);
        });
        shell::handle(editor.result());
        assert_eq!(console::capture_end(&mut answer_buffer), want);
    }
}
