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
// Thousands of registrations, each with cross-CPU sync rounds: about 45 s at -smp 4 alone, twice that beside the other pass
// run.sh: --timeout=300
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
use probe_kernel::testing::{Fnv, Seconds, function_bytes, instruction_boundaries, kernel_functions, leak, text_byte};
use probe_kernel::{cmdline, println, task};

probe_kernel::test_kernel_main!();

// The workload, the counting probes and the choice of targets, then one
// module per test.
mod counting;
mod fifty_functions;
mod function_entries;
mod targets;
mod task_api;
mod workload;

use counting::*;
use targets::*;
use workload::*;
