//! Soak: four tasks and the timer interrupt hit kprobes, kretprobes and a jprobe while a fifth (and sixth) task churns them.
//!
//! Why: registration, unregistration, enabling and disabling must be safe
//! while other tasks and interrupts are hitting the very probes being
//! changed, and the books must balance exactly: for every probe, handler
//! runs + nmissed = calls made while it was registered and enabled. The
//! accounting is made exact by a handshake: a caller announces a call
//! (`ENTERING`) and reads the probe's state, and the control task, before it
//! changes a probe, raises `TRANSITION` and waits until no announced call
//! is still short of its entry hit; so every hit happens in a known state.
//! The timer hook runs with interrupts off, so it only has to skip probes in
//! transition. One kretprobe lets the control task unregister it while calls
//! are in flight (they must return normally and not be reported: those
//! calls are counted as orphaned); another has one instance (misses). The
//! boosted kprobe's window ends in its handler, so it is unregistered while
//! tasks may still be preempted inside its boosted copy. A second test
//! makes that the rule: a task spends its time in the boosted copy of a
//! long `rep stosb` while another task unregisters the probe and churns
//! slots, so freed slots must wait as garbage until the task is out. A
//! third recurses seven levels deep in four tasks while the kretprobe on
//! the recursive function is unregistered and registered again, so old and
//! new instances share each task's list; every level's report is accounted.
//! A sixth function carries a kprobe, a kretprobe and a jprobe at once (one
//! site), each churned on its own while calls hit all three.
//! A sixth task churns two of the probes too, so engine calls of two tasks
//! overlap; and the timer hook keeps trying engine calls itself, each of
//! which must be refused (`InterruptsDisabled`) without changing anything;
//! now and then a batch registration that must fail is tried first, and it
//! must roll back. Afterwards every pool, arena byte, heap byte, slot and site is
//! back.
// About 60 s at -smp 4 alone, over 100 s beside the other pass of make test
// run.sh: --timeout=300
#![no_std]
#![no_main]
#![feature(custom_test_frameworks)]
#![test_runner(probe_kernel::testing::run_tests)]
#![reexport_test_harness_main = "test_main"]
#![deny(unsafe_op_in_unsafe_fn)]

extern crate alloc;

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::hint::black_box;
use core::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, AtomicUsize, Ordering::SeqCst};
use probe_kernel::arch::cpu;
use probe_kernel::kprobes::kretprobe::retired_pools;
use probe_kernel::kprobes::*;
use probe_kernel::memory::{heap_used, slots};
use probe_kernel::testing::{Seconds, entry_argument};
use probe_kernel::{println, task};

probe_kernel::test_kernel_main!();

// The shared books, targets, probes and callers, then one module per test.
mod books;
mod boosted_copy;
mod callers;
mod churn;
mod probes;
mod recursion;

use books::*;
use callers::*;
use churn::*;
use probes::*;
