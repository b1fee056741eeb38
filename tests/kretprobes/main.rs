//! Test kernel: function-return probes (kretprobes), single task.
//!
//! Linux's `lib/tests/test_kprobes.c` kretprobe scenarios (entry + return
//! handler, a batch, a batch rolled back), stack traces and
//! `return_address` seen from a return handler and from a probed function,
//! `maxactive` under recursion (which calls get instances, how many miss),
//! entry handlers that skip calls, per-instance data of the largest size,
//! several probes of every kind on one function, the recursion guard, and
//! enable/disable. Every expectation is exact.
//!
//! Each test unregisters what it registered, so the tests are independent
//! and run in any subset (`cargo test --test kretprobes -- NAME`).
//!
//! The tests are grouped by topic in the modules below.
#![no_std]
#![no_main]
#![feature(custom_test_frameworks)]
#![test_runner(probe_kernel::testing::run_tests)]
#![reexport_test_harness_main = "test_main"]

use core::hint::black_box;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering::SeqCst};
use probe_kernel::arch::x86::kprobes::trampoline;
use probe_kernel::kprobes::kretprobe::{active_instances, retired_pools};
use probe_kernel::kprobes::*;
use probe_kernel::testing::{caller_of, entry_argument, load, reset, stack_word, text_byte};
use probe_kernel::{symbols, task, unwind};

probe_kernel::test_kernel_main!();

// ---------------------------------------------------------------- helpers

/// A log of small values written by handlers (interrupts are off there).
struct Log<const N: usize> {
    items: [AtomicUsize; N],
    len: AtomicUsize,
}

impl<const N: usize> Log<N> {
    const fn new() -> Self {
        Log { items: [const { AtomicUsize::new(0) }; N], len: AtomicUsize::new(0) }
    }
    fn clear(&self) {
        self.len.store(0, SeqCst);
        for item in &self.items {
            item.store(0, SeqCst);
        }
    }
    fn push(&self, value: usize) {
        let index = self.len.fetch_add(1, SeqCst);
        if index < N {
            self.items[index].store(value, SeqCst);
        }
    }
    fn len(&self) -> usize {
        self.len.load(SeqCst)
    }
    /// The first `len` values (the log must not have overflowed).
    fn get(&self) -> ([usize; N], usize) {
        let len = self.len();
        assert!(len <= N, "log overflowed: {len} entries, room for {N}");
        let mut out = [0; N];
        for (slot, item) in out.iter_mut().zip(&self.items).take(len) {
            *slot = item.load(SeqCst);
        }
        (out, len)
    }
}

// The tests, by topic (each module holds its targets and handlers).
mod calling_conventions;
mod control;
mod handlers;
mod linux_scenarios;
mod recursion;
mod shared_functions;
mod stack_traces;
