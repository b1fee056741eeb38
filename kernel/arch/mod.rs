//! Architecture support; only this subtree touches asm, ports and control registers.
//!
//! The rest of the kernel uses the names re-exported here, so a second
//! architecture would provide the same set (the Hubris `arch` habit).
pub mod x86;

pub use x86::{cpu, qemu, serial, trap::TrapFrame, trap::TrapOutcome};
