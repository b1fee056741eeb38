//! probe-kernel: a tiny i386 kernel that hosts a complete kprobes engine.
//!
//! The kernel exists to carry Linux's dynamic-instrumentation design —
//! breakpoint probes with out-of-line single-step, multiprobes, jprobes and
//! function-return probes — in a form small enough to read in an afternoon and
//! to measure instruction by instruction under QEMU.
//!
//! Design principles, in the order they win arguments:
//! - **Static configuration.** Every table the trap path touches (probe sites,
//!   instruction slots, kretprobe instances, tasks) has a fixed size known at
//!   build time. Nothing on a trap path allocates, decodes or takes a lock that
//!   interrupted code may hold.
//! - **Decide at registration.** Instructions are decoded and classified once,
//!   when a probe is registered; the trap path only follows the decision.
//! - **Generic engine, narrow interfaces.** The engine is its own crate
//!   (`probe_engine`, re-exported as [`kprobes`]): its generic part knows
//!   nothing of opcodes, and it knows nothing of this kernel beyond its
//!   `Host` trait, which [`kprobes::KernelHost`] implements; `arch::x86`
//!   alone touches this kernel's asm, ports and control registers.
//! - **Safe code by default.** Every `unsafe` block states why it is sound.
//!
//! Entry: a kernel binary (or test kernel) names its main function with
//! [`entry_point!`]; the boot code in `arch::x86::boot` brings the machine up
//! and calls it with the parsed [`boot_info::BootInfo`].
#![no_std]
#![cfg_attr(test, no_main)]
#![feature(custom_test_frameworks)]
#![test_runner(crate::testing::run_tests)]
#![reexport_test_harness_main = "test_main"]
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]

extern crate alloc;

pub mod arch;
pub mod bench;
pub mod boot_info;
pub mod cmdline;
pub mod completion;
pub mod console;
pub mod demo;
pub mod fatal;
pub mod history;
pub mod keyboard;
#[deny(missing_docs)]
pub mod kprobes;
pub mod memory;
pub mod shell;
pub mod symbols;
pub mod sync;
pub mod task;
pub mod testing;
pub mod tracefs;
pub mod unwind;

/// Names the function the boot code calls once the machine is up.
///
/// ```ignore
/// probe_kernel::entry_point!(main);
/// fn main(boot: &'static probe_kernel::boot_info::BootInfo) -> ! { loop {} }
/// ```
#[macro_export]
macro_rules! entry_point {
    (@main $path:path) => {
        #[unsafe(no_mangle)]
        pub extern "Rust" fn __kernel_main(boot: &'static $crate::boot_info::BootInfo) -> ! {
            let main: fn(&'static $crate::boot_info::BootInfo) -> ! = $path;
            main(boot)
        }
    };
    ($path:path) => {
        // The probe engine's host for this image (see `probe_engine::Host`);
        // its lanes read the CPU and task from the per-CPU area directly.
        // SAFETY: every CPU's GS segment is its `PerCpu` from `gdt::init` on,
        // before interrupts or any probe, and KernelHost's current_cpu and
        // current_task are exactly these two fields (`percpu::cpu_id`,
        // `percpu::current_task`).
        $crate::kprobes::host!($crate::kprobes::KernelHost, unsafe per_cpu_gs: {
            cpu: $crate::arch::x86::percpu::CPU_OFFSET,
            task: $crate::arch::x86::percpu::TASK_OFFSET,
        });
        $crate::entry_point!(@main $path);
    };
    ($path:path, host = $host:ty) => {
        // The probe engine's host for this image (see `probe_engine::Host`).
        $crate::kprobes::host!($host);
        $crate::entry_point!(@main $path);
    };
}

/// The main function of a test kernel: runs the harness's `test_main` and
/// ends the run with the summary line. Use after the crate's
/// `#![reexport_test_harness_main = "test_main"]`.
#[macro_export]
macro_rules! test_kernel_main {
    // The kernel's own host, bound as `probe-kernel` binds it (with its GS
    // promise), so tests run the lanes the kernel runs.
    () => {
        $crate::entry_point!(__test_kernel_main);
        $crate::test_kernel_main!(@main);
    };
    (host = $host:ty) => {
        $crate::entry_point!(__test_kernel_main, host = $host);
        $crate::test_kernel_main!(@main);
    };
    (@main) => {
        fn __test_kernel_main(_boot: &'static $crate::boot_info::BootInfo) -> ! {
            test_main();
            $crate::testing::finish()
        }
    };
}

#[cfg(test)]
test_kernel_main!();
