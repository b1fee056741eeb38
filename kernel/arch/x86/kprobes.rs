//! The probe engine's i386 half, as this kernel's code and tests name it.
//!
//! The implementation lives in the engine crate (`probe_engine::arch::x86`:
//! decoding and classification, slots, single-step and boost set-up and
//! fix-ups, the kretprobe trampoline); this module re-exports it under the
//! kernel's `arch::x86` tree.
pub use probe_engine::arch::x86::*;
