//! The architecture interface: one name set, selected at compile time.
//!
//! As in Hubris's `arch.rs`: the generic engine uses the names `imp`
//! exports (the register frame, the decision of how to run a probed
//! instruction, arming, stepping, the trampoline, jprobe save and restore),
//! each architecture module defines the same set, and building for an
//! architecture without one is a compile error.
#[cfg(target_arch = "x86")]
pub mod x86;

/// The implementation for the architecture being built.
#[cfg(target_arch = "x86")]
pub use x86 as imp;

#[cfg(not(target_arch = "x86"))]
compile_error!("probe-engine has an architecture implementation for i386 (target_arch = \"x86\") only");
