//! The in-kernel test harness shared by the library's unit tests and every test kernel.
//!
//! Why: one runner and one set of helpers (blog_os style custom test
//! framework) keep every kernel's output in the form the runner counts.
//!
//! Each test prints its name and `ok`; a failed assertion, panic or
//! unexpected exception prints `FAILED` with the reason (the fatal report
//! above it) and ends the kernel. Every kernel's last line is
//! `N passed, N failed`, which `boot/run.sh` collects into the aggregate.
//! `test=NAME` on the command line runs only tests whose name contains NAME.
//! Every kernel first prints how many tests it selected (`running N tests`,
//! or `running N of M tests (filter "NAME")`), so the runner can tell a
//! filter that matched nothing from a run that passed; kernels without the
//! harness (`harness = false`) announce their one test with [`single_test`]
//! and end with [`single_verdict`] (or [`expect_fatal_report`], for those
//! whose success is a fatal report).
//!
//! Below the runner are the helpers two or more test kernels need (names of
//! code addresses, reads of stack words and kernel text, searches in a
//! captured report), written once here so each kernel says only what it
//! checks. The library compiles this module into every test kernel; the
//! helpers a fatal hook calls do not allocate.
use crate::arch::qemu::{self, ExitCode};
use crate::arch::x86::paging;
use crate::fatal::{self, Fatal};
use crate::kprobes::PtRegs;
use crate::symbols::{self, Symbol};
use crate::{cmdline, console, println, task};
use alloc::boxed::Box;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicUsize, Ordering};

/// Something the harness can run.
pub trait Testable {
    /// The test's full path, e.g. `probe_kernel::console::tests::backspace`.
    fn name(&self) -> &'static str;
    /// Runs the test; returning means it passed.
    fn run(&self);
}

impl<T: Fn()> Testable for T {
    fn name(&self) -> &'static str {
        core::any::type_name::<T>()
    }
    fn run(&self) {
        self()
    }
}

static PASSED: AtomicUsize = AtomicUsize::new(0);
static SELECTED: AtomicUsize = AtomicUsize::new(0);
static CURRENT: spin::Mutex<&'static str> = spin::Mutex::new("");

fn filter() -> Option<&'static str> {
    let boot = crate::boot_info::get()?;
    cmdline::parse(boot.command_line(), |_| {}).test_filter
}

fn on_fatal(_event: &Fatal) -> ! {
    // Never block here: the failing code may hold the lock.
    let name = CURRENT.try_lock().map_or("<unknown>", |n| *n);
    let passed = PASSED.load(Ordering::SeqCst);
    let not_run = SELECTED.load(Ordering::SeqCst).saturating_sub(passed + 1);
    println!("[FAILED] {name}");
    if not_run > 0 {
        println!("{not_run} tests not run after the failure");
    }
    println!("{passed} passed, 1 failed");
    qemu::exit(ExitCode::Failed)
}

/// The custom test framework's runner: runs every selected test.
pub fn run_tests(tests: &[&dyn Testable]) {
    let filter = filter();
    let selected = tests.iter().filter(|t| filter.is_none_or(|f| t.name().contains(f))).count();
    SELECTED.store(selected, Ordering::SeqCst);
    fatal::set_hook(Some(on_fatal));
    match filter {
        Some(f) => println!("running {selected} of {} tests (filter \"{f}\")", tests.len()),
        None => println!("running {selected} tests"),
    }
    for test in tests.iter().filter(|t| filter.is_none_or(|f| t.name().contains(f))) {
        *CURRENT.lock() = test.name();
        crate::print!("{} ... ", test.name());
        test.run();
        println!("ok");
        PASSED.fetch_add(1, Ordering::SeqCst);
    }
}

/// For a kernel without the harness, whose one test is called `name`
/// (`kernel::test`, as the harness would spell it): announces it like the
/// harness does and returns if the filter selects it; otherwise reports an
/// empty selection (`running 0 of 1 tests`, `0 passed, 0 failed`) and ends
/// the run, so the runner counts the kernel as having selected nothing.
pub fn single_test(name: &str) {
    match filter() {
        Some(f) if !name.contains(f) => {
            println!("running 0 of 1 tests (filter \"{f}\")");
            println!("0 passed, 0 failed");
            qemu::exit(ExitCode::Success)
        }
        Some(f) => println!("running 1 of 1 tests (filter \"{f}\")"),
        None => println!("running 1 tests"),
    }
}

/// Prints the summary line and ends the run.
pub fn finish() -> ! {
    println!("{} passed, 0 failed", PASSED.load(Ordering::SeqCst));
    qemu::exit(ExitCode::Success)
}

/// The verdict of a kernel without the harness, whose one test is `name`
/// (the name given to [`single_test`]): prints `NAME ... ok` or
/// `[FAILED] NAME: DETAIL` and the summary line, and ends the run with the
/// matching QEMU exit code. `detail` says what was seen; on a pass it is
/// printed on a line of its own above the verdict, unless it is empty.
/// Neither allocates nor takes a lock: fatal hooks call it.
pub fn single_verdict(name: &str, passed: bool, detail: core::fmt::Arguments) -> ! {
    if passed {
        if detail.as_str() != Some("") {
            println!("{detail}");
        }
        println!("{name} ... ok");
        println!("1 passed, 0 failed");
        qemu::exit(ExitCode::Success)
    }
    println!("[FAILED] {name}: {detail}");
    println!("0 passed, 1 failed");
    qemu::exit(ExitCode::Failed)
}

/// How a report kernel judges the fatal event it provoked: `report` is the
/// console output captured from the start of [`expect_fatal_report`]'s
/// trigger through the fatal report (at most 4 KiB). Runs as the fatal
/// hook, so it must not allocate; it ends with [`single_verdict`].
pub type ReportCheck = fn(event: &Fatal, report: &[u8]) -> !;

/// The test name and the check of the report expected by
/// [`expect_fatal_report`], for its fatal hook.
static EXPECTED_REPORT: spin::Mutex<Option<(&'static str, ReportCheck)>> = spin::Mutex::new(None);

fn on_expected_fatal(event: &Fatal) -> ! {
    let mut buffer = [0u8; 4096];
    let report = console::capture_end(&mut buffer);
    // Never block here: the failing code may hold the lock.
    match EXPECTED_REPORT.try_lock().and_then(|expected| *expected) {
        Some((_, check)) => check(event, report),
        None => single_verdict("<unknown>", false, format_args!("a fatal event before the expected report was set up")),
    }
}

/// For a kernel whose success is a fatal report (`harness = false`): runs
/// `trigger` with the console captured and a fatal hook that hands the
/// event and the captured report to `check`. If `trigger` returns, nothing
/// fatal happened and test `name` fails.
pub fn expect_fatal_report(name: &'static str, check: ReportCheck, trigger: impl FnOnce()) -> ! {
    *EXPECTED_REPORT.lock() = Some((name, check));
    fatal::set_hook(Some(on_expected_fatal));
    console::capture_begin();
    trigger();
    console::capture_end(&mut [0u8; 1]);
    fatal::set_hook(None);
    single_verdict(name, false, format_args!("returned without the expected fatal report"))
}

// ---------------------------------------------------------------------------
// Helpers for test kernels: code addresses, stack words, kernel text,
// captured output.
// ---------------------------------------------------------------------------

/// What `f` prints, captured silently (the console records it and does
/// not echo it), as text: how tests read the shell's answers. What `f`
/// returns is dropped.
pub fn captured<R>(f: impl FnOnce() -> R) -> alloc::string::String {
    // What the console keeps of a capture at most (8 KiB).
    let mut buffer = [0u8; 8192];
    console::capture_begin_silent();
    let _ = f();
    alloc::string::String::from_utf8_lossy(console::capture_end(&mut buffer)).into_owned()
}

/// The function containing `address`, by name (`?` if it is in none).
pub fn name_of(address: usize) -> &'static str {
    symbols::lookup_address(address).map_or("?", |symbol| symbol.name)
}

/// The function a return address returns into: `return_address - 1` is
/// still inside the call instruction, so inside the caller (`?` for 0 or an
/// address in no function).
pub fn caller_of(return_address: usize) -> &'static str {
    if return_address == 0 { "?" } else { name_of(return_address - 1) }
}

/// The address of the symbol `name` (a function or a global asm label);
/// panics if the symbol table has no such name.
pub fn address_of(name: &str) -> usize {
    symbols::lookup_name(name)
        .map(|symbol| symbol.address)
        .unwrap_or_else(|| panic!("{name} is not in the symbol table"))
}

/// The word at `address`, which must lie on a kernel stack (the boot stack,
/// a task stack or the double-fault stack; panics otherwise): a stack slot
/// of probed code, read independently of the engine.
pub fn stack_word(address: usize) -> usize {
    assert!(task::stack_of_address(address).is_some(), "{address:#x} is on no kernel stack");
    // SAFETY: every kernel stack stays mapped and readable for the kernel's
    // whole life; the read is volatile because the slot belongs to code the
    // compiler cannot see (the probed function).
    unsafe { core::ptr::read_volatile(address as *const usize) }
}

/// The `n`th (from 0) 32-bit cdecl argument of a function stopped at its
/// first instruction, where ESP points at the return address and the
/// arguments lie right above it.
pub fn entry_argument(regs: &PtRegs, n: usize) -> u32 {
    stack_word(regs.esp as usize + 4 * (n + 1)) as u32
}

/// The byte at `address`, which must lie in kernel text (panics otherwise),
/// as it is in memory: with the breakpoint of an armed probe, if any.
pub fn text_byte(address: usize) -> u8 {
    assert!(paging::kernel_text().contains(&address), "{address:#x} is not in kernel text");
    // SAFETY: kernel text is mapped and readable for the kernel's whole life.
    unsafe { core::ptr::read_volatile(address as *const u8) }
}

/// The first byte an armed `probe` leaves at its address: the `jmp`
/// opcode (0xE9) where it is jump-optimized, else the breakpoint (0xCC).
pub fn armed_opcode(probe: &crate::kprobes::Kprobe) -> u8 {
    if probe.flags().contains(crate::kprobes::KprobeFlags::OPTIMIZED) { 0xe9 } else { 0xcc }
}

/// `length` bytes of kernel text from `address`, as [`text_byte`] reads them.
pub fn text_bytes(address: usize, length: usize) -> Vec<u8> {
    (address..address + length).map(text_byte).collect()
}

/// A value that lives for the rest of the run (for probes made at run time,
/// which the engine holds as `&'static`).
pub fn leak<T>(value: T) -> &'static T {
    Box::leak(Box::new(value))
}

/// A counter's value (`SeqCst`, like the handlers that count).
pub fn load(counter: &AtomicUsize) -> usize {
    counter.load(Ordering::SeqCst)
}

/// Sets every counter to 0, before a test counts.
pub fn reset(counters: &[&AtomicUsize]) {
    for counter in counters {
        counter.store(0, Ordering::SeqCst);
    }
}

/// Whether `needle` occurs in `haystack` (a captured report; no allocation).
pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    position(haystack, needle).is_some()
}

/// Where `needle` first occurs in `haystack`.
pub fn position(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|window| window == needle)
}

// ---------------------------------------------------------------------------
// Helpers for the kernels that probe the image's own code
// (kprobe_coverage, probe_everywhere).
// ---------------------------------------------------------------------------

/// Every function in kernel text, once, in address order: asm labels nested
/// in a function and second names at one address are left out (address
/// lookups never report them), so each entry is what `lookup_address`
/// reports for its first byte.
pub fn kernel_functions() -> Vec<Symbol> {
    let text = paging::kernel_text();
    let mut out: Vec<Symbol> = Vec::new();
    for symbol in symbols::iter() {
        if !text.contains(&symbol.address) || out.last().is_some_and(|last| last.address == symbol.address) {
            continue;
        }
        let reported = symbols::lookup_address(symbol.address);
        if reported.is_some_and(|f| f.address == symbol.address && f.name == symbol.name && f.size == symbol.size) {
            out.push(symbol);
        }
    }
    out
}

/// A function's bytes as they are in memory (the caller makes sure no probe
/// is armed in it, or gets the breakpoints too).
pub fn function_bytes(function: &Symbol) -> Vec<u8> {
    text_bytes(function.address, function.size)
}

/// Instruction starts and lengths of `function` (whose bytes are `code`),
/// found by iced-x86 walking linearly from its first byte, independently of
/// the probe engine. `Err` gives the offset of bytes that do not decode.
pub fn instruction_boundaries(function: &Symbol, code: &[u8]) -> Result<Vec<(usize, usize)>, usize> {
    use iced_x86::{Decoder, DecoderOptions, Instruction};
    let mut decoder = Decoder::with_ip(32, code, function.address as u64, DecoderOptions::NONE);
    let mut instruction = Instruction::default();
    let mut out = Vec::new();
    while decoder.can_decode() {
        decoder.decode_out(&mut instruction);
        let address = instruction.ip() as usize;
        if instruction.is_invalid() {
            return Err(address - function.address);
        }
        out.push((address, instruction.len()));
    }
    Ok(out)
}

/// FNV-1a, 64 bits: a cheap, deterministic digest of what a workload
/// computed, so a probed run can be compared with an unprobed one exactly.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fnv(pub u64);

impl Fnv {
    /// The FNV offset basis.
    pub const fn new() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }

    /// Mixes in bytes.
    pub fn bytes(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = (self.0 ^ byte as u64).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    /// Mixes in a number.
    pub fn number(&mut self, value: u64) {
        self.bytes(&value.to_le_bytes());
    }
}

impl Default for Fnv {
    fn default() -> Self {
        Self::new()
    }
}

/// Timer ticks as seconds with two decimals, for the figures tests print.
pub struct Seconds(pub u64);

impl core::fmt::Display for Seconds {
    fn fmt(&self, f: &mut core::fmt::Formatter) -> core::fmt::Result {
        let hz = crate::arch::x86::pit::HZ as u64;
        write!(f, "{}.{:02} s", self.0 / hz, self.0 % hz * 100 / hz)
    }
}
