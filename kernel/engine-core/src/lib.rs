//! The pure algorithms of the kprobes engine, testable on any host.
//!
//! Why a crate of its own: these pieces decide what the trap path will do —
//! how a probed instruction is classified and relocated, how a probe site
//! is found — and they are pure computations over bytes and integers, so
//! they can be checked with ordinary `cargo test` and property tests on the
//! build machine, over far more inputs than a test kernel under QEMU could
//! try (Hubris keeps its kernel's pure algorithms in `kerncore` for the
//! same reason). The kernel's engine uses them; nothing here touches asm,
//! memory it does not own, or the kernel.
//!
//! - [`decode`]: decode (with iced-x86) and classify an instruction into a
//!   [`decode::Fixup`], or refuse it with the reason; and a function's
//!   control flow, for the trap-path blacklist.
//! - [`relocate`]: the boosted copy of an instruction, re-encoded to run at
//!   another address and jump back.
//! - [`optimize`]: whether a probe may be jump-optimized (Linux's
//!   `can_optimize`) and the detour's relocated copy of what it displaces.
//! - [`index`]: the lock-free open-addressing index of probe sites, with
//!   backward-shift deletion.
//! - [`freeset`]: the lock-free set of free kretprobe instances (a bitmap:
//!   one atomic bit operation to take or give back).
#![no_std]
#![deny(unsafe_code)]
#![deny(missing_docs)]

extern crate alloc;

pub mod decode;
pub mod freeset;
pub mod index;
pub mod optimize;
pub mod relocate;
