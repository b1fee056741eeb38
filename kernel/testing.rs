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
use crate::fatal::{self, Fatal};
use crate::{cmdline, println};
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
