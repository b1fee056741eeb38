//! Platform discovery: which CPUs and interrupt controllers the machine has.
//!
//! Routing only. [`init`] runs once at boot and keeps a [`Topology`] from
//! ACPI's MADT ([`acpi`]), else the MP table ([`mptable`]), else the boot CPU
//! alone; [`topology`] returns it. `acpi=off` on the command line skips ACPI.
pub mod acpi;
mod discover;
pub mod mptable;
pub mod search;
pub mod topology;

pub use discover::{Method, current_apic_id, discover, init, topology};
pub use topology::{CpuEntry, IoApic, IsaOverride, MAX_CPUS, Polarity, Source, Topology, Trigger};
