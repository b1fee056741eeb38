//! What the platform test kernels share: QEMU's machine as its firmware
//! describes it, and the local APIC's own id register.
//!
//! Each `platform*` test kernel boots QEMU in one configuration (its
//! `// run.sh:` line) and checks the topology against these expectations.
use probe_kernel::arch::x86::paging;
use probe_kernel::arch::x86::platform::{CpuEntry, IoApic, IsaOverride, Polarity, Topology, Trigger};

/// The local APIC's ID register (offset 0x20, id in bits 31–24), read after
/// mapping the local APIC's page: the id the hardware gives the running CPU,
/// independent of CPUID and of the firmware's tables.
pub fn lapic_id_register() -> u8 {
    const LAPIC_ID: usize = 0xfee0_0020;
    paging::map_mmio(LAPIC_ID..LAPIC_ID + 4);
    // SAFETY: map_mmio mapped the local APIC's page uncached at its physical
    // address; the ID register is read-only state of this CPU's APIC, and a
    // 32-bit aligned read is how it is accessed.
    (unsafe { core::ptr::read_volatile(LAPIC_ID as *const u32) } >> 24) as u8
}

/// `count` enabled CPUs with APIC ids 0, 1, …: QEMU's `-smp count`.
pub fn qemu_cpus(count: u8) -> [CpuEntry; 8] {
    let mut cpus = [CpuEntry { apic_id: 0, enabled: false }; 8];
    for id in 0..count {
        cpus[usize::from(id)] = CpuEntry { apic_id: id, enabled: true };
    }
    cpus
}

/// QEMU's I/O APIC (i440FX): id 0 at 0xFEC00000, inputs from GSI 0.
pub const QEMU_IOAPIC: IoApic = IoApic { id: 0, base: 0xfec0_0000, gsi_base: 0 };

const fn isa(isa_irq: u8, gsi: u32, polarity: Polarity, trigger: Trigger) -> IsaOverride {
    IsaOverride { isa_irq, gsi, polarity, trigger }
}

/// QEMU's MADT overrides: the PIT's IRQ 0 on GSI 2, and the PCI link IRQs
/// 5, 9, 10 and 11 level-triggered, active high (QEMU's `build_madt`).
#[allow(dead_code)] // not every platform kernel checks both sources
pub const QEMU_ACPI_OVERRIDES: [IsaOverride; 5] = [
    isa(0, 2, Polarity::BusDefault, Trigger::BusDefault),
    isa(5, 5, Polarity::ActiveHigh, Trigger::Level),
    isa(9, 9, Polarity::ActiveHigh, Trigger::Level),
    isa(10, 10, Polarity::ActiveHigh, Trigger::Level),
    isa(11, 11, Polarity::ActiveHigh, Trigger::Level),
];

/// The BIOS's MP table routes ISA IRQ 0 to pin 2 and every other ISA IRQ to
/// its own pin with the bus defaults (SeaBIOS's `mptable_setup`).
pub const QEMU_MP_OVERRIDES: [IsaOverride; 1] = [isa(0, 2, Polarity::BusDefault, Trigger::BusDefault)];

/// Checks everything but the source and the overrides: `count` CPUs with
/// ids 0.., the BSP's id as the local APIC itself reports it, the default
/// local APIC base, QEMU's one I/O APIC.
pub fn assert_qemu_machine(topology: &Topology, count: u8) {
    assert_eq!(topology.cpus(), &qemu_cpus(count)[..usize::from(count)]);
    assert_eq!(topology.cpus_found, usize::from(count));
    assert_eq!(topology.bsp_apic_id, lapic_id_register());
    assert_eq!(topology.bsp_apic_id, 0);
    assert_eq!(topology.lapic_base, 0xfee0_0000);
    assert_eq!(topology.ioapic, Some(QEMU_IOAPIC));
    assert_eq!(topology.ioapics_found, 1);
}
