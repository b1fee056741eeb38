//! The in-kernel test harness shared by the library's unit tests and every
//! `tests/*.rs` kernel (blog_os style custom test framework).
//!
//! Each test prints its name and `ok`; a failed assertion, panic or
//! unexpected exception prints `FAILED` with the reason (the fatal report
//! above it) and ends the kernel. Every kernel's last line is
//! `N passed, N failed`, which `boot/run.sh` collects into the aggregate.
//! `test=NAME` on the command line runs only tests whose name contains NAME.
//! Every kernel first prints how many tests it selected (`running N tests`,
//! or `running N of M tests (filter "NAME")`), so the runner can tell a
//! filter that matched nothing from a run that passed; kernels without the
//! harness (`harness = false`) announce their one test with [`single_test`].
use crate::arch::qemu::{self, ExitCode};
use crate::arch::x86::paging;
use crate::fatal::{self, Fatal};
use crate::symbols::{self, Symbol};
use crate::{cmdline, println};
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
    (function.address..function.address + function.size)
        // SAFETY: the symbol table names ranges inside kernel text, which is mapped and readable.
        .map(|address| unsafe { core::ptr::read_volatile(address as *const u8) })
        .collect()
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
