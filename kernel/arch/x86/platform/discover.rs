//! The order of discovery (ACPI, the MP table, the boot CPU alone) and the boot-time result.
//!
//! Why apart from the parsers: each parser says what one firmware table
//! holds; this file decides which to believe, reports what it had to drop,
//! and keeps the answer in a static that the code starting CPUs and routing
//! interrupts reads without allocating or locking.
use super::mptable::{self, MpError};
use super::topology::Topology;
use super::{acpi, acpi::AcpiDiscoveryError};
use crate::boot_info::BootInfo;
use crate::{cmdline, println};

/// Which firmware descriptions [`discover`] consults.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// ACPI's MADT, then the MP table if ACPI is absent or unusable.
    AcpiThenMpTable,
    /// The MP table only (`acpi=off`).
    MpTableOnly,
}

/// The initial local APIC id of the CPU running this (CPUID leaf 1,
/// EBX bits 31–24): what the firmware's tables call it, read without
/// touching the local APIC.
pub fn current_apic_id() -> u8 {
    (core::arch::x86::__cpuid(1).ebx >> 24) as u8
}

/// Finds the machine's CPUs and interrupt controllers by `method`; with
/// neither table usable, the boot CPU alone ([`super::Source::Default`]).
/// Says on the console why a table that exists was not used and what was
/// dropped (CPUs past [`super::MAX_CPUS`], I/O APICs after the first).
///
/// Needs paging and the heap (the `acpi` crate allocates while it parses,
/// and frees it all before this returns). Boot time, not a trap path.
pub fn discover(boot: &'static BootInfo, method: Method) -> Topology {
    let bsp = current_apic_id();
    let found = match method {
        Method::AcpiThenMpTable => match acpi::discover(boot, bsp) {
            Ok(topology) => Some(topology),
            Err(error) => {
                if !matches!(error, AcpiDiscoveryError::NoRsdp) {
                    println!("platform: ACPI unusable ({error:?}); trying the MP table");
                }
                None
            }
        },
        Method::MpTableOnly => None,
    };
    let found = found.or_else(|| match mptable::discover(&boot.bios_area, bsp) {
        Ok(topology) => Some(topology),
        Err(MpError::NotFound) => None,
        Err(error) => {
            println!("platform: MP table unusable ({error:?})");
            None
        }
    });
    let Some(topology) = found else {
        println!("platform: neither ACPI nor an MP table describes the CPUs: the boot CPU alone");
        return Topology::boot_cpu_only(bsp);
    };
    if topology.cpus_found > topology.cpu_count {
        println!(
            "platform: {:?} lists {} CPUs; {} kept (at most {}, APIC ids up to 255)",
            topology.source,
            topology.cpus_found,
            topology.cpu_count,
            super::MAX_CPUS
        );
    }
    if topology.ioapics_found > 1 {
        println!("platform: {} I/O APICs listed; only the first enabled one is used", topology.ioapics_found);
    }
    topology
}

static TOPOLOGY: spin::Once<Topology> = spin::Once::new();

/// Discovers the platform once, as the command line says (`acpi=off`:
/// [`Method::MpTableOnly`]), keeps the result, and maps the local APIC's
/// and the I/O APIC's register pages (uncached) so callers may use them at
/// once. Later calls return the same result.
///
/// Call at boot after `paging::init` and `memory::init`, before other CPUs
/// run (boot does).
pub fn init(boot: &'static BootInfo) -> &'static Topology {
    TOPOLOGY.call_once(|| {
        let method = if cmdline::parse(boot.command_line(), |_| {}).acpi_off {
            Method::MpTableOnly
        } else {
            Method::AcpiThenMpTable
        };
        let topology = discover(boot, method);
        super::super::paging::map_mmio(topology.lapic_base..topology.lapic_base + 4096);
        if let Some(ioapic) = topology.ioapic {
            super::super::paging::map_mmio(ioapic.base..ioapic.base + 4096);
        }
        topology
    })
}

/// The topology [`init`] found. Panics before `init` has run.
pub fn topology() -> &'static Topology {
    TOPOLOGY.get().expect("platform::topology() before platform::init()")
}
