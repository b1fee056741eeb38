//! Reports of the unrecoverable: unexpected exceptions, double faults, panics.
//!
//! Each report names what happened (mnemonic, error code, CR2 for page
//! faults, every register, a symbolized backtrace, the probe being handled if
//! any), then hands over to the fatal hook if one is installed (test kernels
//! whose success is a fault) or ends the QEMU run with failure.
use crate::arch::qemu::{self, ExitCode};
use crate::arch::x86::gdt::Tss;
use crate::arch::x86::trap::{EXCEPTIONS, vector};
use crate::arch::{TrapFrame, cpu};
use crate::kprobes::trap::ProbeFault;
use crate::println;
use core::sync::atomic::{AtomicUsize, Ordering};

/// What went wrong, for a fatal hook.
#[derive(Debug)]
pub enum Fatal<'a> {
    /// An exception no hook handled; `cr2` is meaningful for page faults.
    Exception { frame: &'a TrapFrame, cr2: u32 },
    /// A double fault; `state` is what the CPU saved of the faulting code.
    DoubleFault { error_code: u32, state: &'a Tss },
    /// A Rust panic.
    Panic(&'a core::panic::PanicInfo<'a>),
}

/// Called after the report; must not return.
pub type FatalHook = fn(&Fatal) -> !;

static HOOK: AtomicUsize = AtomicUsize::new(0);

/// Installs the hook that decides how a fatal event ends the run.
pub fn set_hook(hook: Option<FatalHook>) {
    HOOK.store(hook.map_or(0, |f| f as usize), Ordering::SeqCst);
}

fn finish(event: &Fatal) -> ! {
    let address = HOOK.load(Ordering::SeqCst);
    if address != 0 {
        // SAFETY: HOOK only ever holds 0 or a `FatalHook` stored by `set_hook`.
        let hook: FatalHook = unsafe { core::mem::transmute::<usize, FatalHook>(address) };
        hook(event);
    }
    qemu::exit(ExitCode::Failed)
}

/// The first step of every report: the other CPUs stop (so the report is
/// about one moment of the machine, and nothing else prints into it), and
/// this task's pending output goes out first.
#[unsafe(link_section = ".kprobes.text")]
fn begin() {
    crate::arch::x86::smp::stop_other_cpus();
    crate::console::fatal_begin();
}

/// Prints every register of a frame.
pub fn print_registers(frame: &TrapFrame) {
    println!(
        "  eax={:08x} ebx={:08x} ecx={:08x} edx={:08x}\n  esi={:08x} edi={:08x} ebp={:08x} esp={:08x}\n  eip={:08x} eflags={:08x} cs={:04x}",
        frame.eax,
        frame.ebx,
        frame.ecx,
        frame.edx,
        frame.esi,
        frame.edi,
        frame.ebp,
        frame.esp,
        frame.eip,
        frame.eflags,
        frame.cs
    );
}

/// Reports an exception that nothing handled, then ends the run.
/// `probe_fault` says which probe's handling it happened in, if any.
#[unsafe(link_section = ".kprobes.text")]
pub fn exception(frame: &mut TrapFrame, probe_fault: Option<ProbeFault>) -> ! {
    let context = crate::kprobes::trap::begin_report();
    begin();
    let vector_number = frame.vector as usize;
    let cr2 = if frame.vector == vector::PAGE_FAULT as u32 { cpu::cr2() } else { 0 };
    let (mnemonic, name) = EXCEPTIONS.get(vector_number).map_or(("?", "unknown"), |i| (i.mnemonic, i.name));
    println!(
        "\n!!! unexpected exception {mnemonic} ({name}), vector {vector_number}, error code {:#x}, at {:#010x} {}",
        frame.error_code,
        frame.eip,
        crate::symbols::Describe(frame.eip as usize)
    );
    if frame.vector == vector::PAGE_FAULT as u32 {
        println!("  cr2={cr2:#010x} ({})", page_fault_cause(frame.error_code));
    }
    print_registers(frame);
    match probe_fault {
        Some(probe_fault) => println!("  {probe_fault}"),
        None => crate::print!("{context}"),
    }
    crate::unwind::print_backtrace_from_frame(frame);
    crate::tracefs::trace::dump_on_oops();
    finish(&Fatal::Exception { frame, cr2 })
}

fn page_fault_cause(error_code: u32) -> &'static str {
    match (error_code & 1 != 0, error_code & 2 != 0) {
        (false, false) => "read of a non-present page",
        (false, true) => "write to a non-present page",
        (true, false) => "protection violation on read",
        (true, true) => "write to a read-only page",
    }
}

/// Body of the double-fault task (see `trap::double_fault_task_entry`).
#[unsafe(link_section = ".kprobes.text")]
pub extern "C" fn double_fault(error_code: u32) -> ! {
    let _ = crate::kprobes::trap::begin_report();
    begin();
    let state = crate::arch::x86::gdt::interrupted_task_state();
    println!(
        "\n!!! unexpected exception #DF (double fault), vector 8, error code {error_code:#x}, at {:#010x} {}",
        state.eip,
        crate::symbols::Describe(state.eip as usize)
    );
    let stack = crate::task::stack_of_address(state.esp as usize);
    if let Some(stack) = &stack
        && state.esp as usize <= stack.start + 64
    {
        println!(
            "  kernel stack overflow: esp={:#010x} is at the bottom of its stack {:#010x}..{:#010x}",
            state.esp, stack.start, stack.end
        );
    }
    println!(
        "  eax={:08x} ebx={:08x} ecx={:08x} edx={:08x}\n  esi={:08x} edi={:08x} ebp={:08x} esp={:08x}\n  eip={:08x} eflags={:08x}",
        state.eax, state.ebx, state.ecx, state.edx, state.esi, state.edi, state.ebp, state.esp, state.eip, state.eflags
    );
    crate::unwind::print_backtrace(state.eip as usize, state.ebp as usize);
    crate::tracefs::trace::dump_on_oops();
    finish(&Fatal::DoubleFault { error_code, state: &state })
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    let context = crate::kprobes::trap::begin_report();
    begin();
    println!("\n!!! kernel panic: {}", info.message());
    if let Some(location) = info.location() {
        println!("  at {}:{}:{}", location.file(), location.line(), location.column());
    }
    crate::print!("{context}");
    crate::unwind::print_backtrace(0, cpu::frame_pointer());
    crate::tracefs::trace::dump_on_oops();
    finish(&Fatal::Panic(info))
}
