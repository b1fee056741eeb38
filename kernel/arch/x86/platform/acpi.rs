//! ACPI: the MADT's CPUs, I/O APICs and ISA overrides, read with the `acpi` crate.
//!
//! Why the crate: the RSDP, RSDT/XSDT and MADT formats have revisions and
//! firmware quirks that a well-kept parser tracks; this file only finds the
//! RSDP, gives the crate its memory (the identity map, plus
//! [`paging::map_mmio`] for tables above 128 MiB) and turns what it returns
//! into a [`Topology`]. Only the static tables are read: no AML runs, so the
//! handler's AML services are never called.
use super::super::paging;
use super::search;
use super::topology::{IoApic, IsaOverride, Polarity, Source, Topology, Trigger};
use crate::boot_info::BootInfo;
use ::acpi::platform::interrupt::{self, InterruptModel};
use ::acpi::{AcpiTables, Handle, Handler, PciAddress, PhysicalMapping};
use core::ptr::NonNull;

/// Why ACPI gave no topology.
#[derive(Clone, Debug)]
pub enum AcpiDiscoveryError {
    /// No RSDP: not from the loader, not in the EBDA or the BIOS ROM.
    NoRsdp,
    /// The crate refused the tables (a bad RSDP, no MADT, a malformed entry).
    Tables(::acpi::AcpiError),
    /// The MADT describes no APIC (only a legacy PIC machine).
    NoApic,
}

/// The `acpi` crate's view of physical memory: the kernel's identity map.
#[derive(Clone, Copy, Debug)]
pub struct IdentityMapped;

impl IdentityMapped {
    /// Makes `[address, address + size)` readable at the same address.
    fn map(address: usize, size: usize) {
        let end = address.checked_add(size.max(1)).expect("ACPI region wraps around 4 GiB");
        paging::map_mmio(address..end);
        assert!(
            paging::is_mapped(address) && paging::is_mapped(end - 1),
            "ACPI region {address:#x}..{end:#x} lies in an unmapped page"
        );
    }

    fn unused(what: &str) -> ! {
        panic!("acpi: {what} requested, but platform discovery reads static tables only (no AML runs)")
    }
}

impl Handler for IdentityMapped {
    unsafe fn map_physical_region<T>(&self, physical_address: usize, size: usize) -> PhysicalMapping<Self, T> {
        Self::map(physical_address, size);
        PhysicalMapping {
            physical_start: physical_address,
            virtual_start: NonNull::new(physical_address as *mut T).expect("ACPI table at physical address 0"),
            region_length: size,
            mapped_length: size,
            handler: *self,
        }
    }

    /// Nothing to undo: identity mappings stay (and `map_mmio` never unmaps).
    fn unmap_physical_region<T>(_region: &PhysicalMapping<Self, T>) {}

    // Memory and port accesses: what the crate's register helpers would
    // do, done plainly; static-table parsing never calls them.
    fn read_u8(&self, address: usize) -> u8 {
        Self::map(address, 1);
        // SAFETY: `map` made the byte readable at its identity address; the
        // crate asks only for firmware-described registers or memory.
        unsafe { core::ptr::read_volatile(address as *const u8) }
    }
    fn read_u16(&self, address: usize) -> u16 {
        Self::map(address, 2);
        // SAFETY: as in `read_u8`, for two bytes.
        unsafe { core::ptr::read_volatile(address as *const u16) }
    }
    fn read_u32(&self, address: usize) -> u32 {
        Self::map(address, 4);
        // SAFETY: as in `read_u8`, for four bytes.
        unsafe { core::ptr::read_volatile(address as *const u32) }
    }
    fn read_u64(&self, address: usize) -> u64 {
        Self::map(address, 8);
        // SAFETY: as in `read_u8`, for eight bytes.
        unsafe { core::ptr::read_volatile(address as *const u64) }
    }
    fn write_u8(&self, address: usize, value: u8) {
        Self::map(address, 1);
        // SAFETY: `map` made the byte writable at its identity address; the
        // crate writes only firmware-described registers.
        unsafe { core::ptr::write_volatile(address as *mut u8, value) }
    }
    fn write_u16(&self, address: usize, value: u16) {
        Self::map(address, 2);
        // SAFETY: as in `write_u8`, for two bytes.
        unsafe { core::ptr::write_volatile(address as *mut u16, value) }
    }
    fn write_u32(&self, address: usize, value: u32) {
        Self::map(address, 4);
        // SAFETY: as in `write_u8`, for four bytes.
        unsafe { core::ptr::write_volatile(address as *mut u32, value) }
    }
    fn write_u64(&self, address: usize, value: u64) {
        Self::map(address, 8);
        // SAFETY: as in `write_u8`, for eight bytes.
        unsafe { core::ptr::write_volatile(address as *mut u64, value) }
    }
    fn read_io_u8(&self, port: u16) -> u8 {
        // SAFETY: the crate reads only firmware-described I/O registers.
        unsafe { x86::io::inb(port) }
    }
    fn read_io_u16(&self, port: u16) -> u16 {
        // SAFETY: as in `read_io_u8`.
        unsafe { x86::io::inw(port) }
    }
    fn read_io_u32(&self, port: u16) -> u32 {
        // SAFETY: as in `read_io_u8`.
        unsafe { x86::io::inl(port) }
    }
    fn write_io_u8(&self, port: u16, value: u8) {
        // SAFETY: the crate writes only firmware-described I/O registers.
        unsafe { x86::io::outb(port, value) }
    }
    fn write_io_u16(&self, port: u16, value: u16) {
        // SAFETY: as in `write_io_u8`.
        unsafe { x86::io::outw(port, value) }
    }
    fn write_io_u32(&self, port: u16, value: u32) {
        // SAFETY: as in `write_io_u8`.
        unsafe { x86::io::outl(port, value) }
    }

    // PCI configuration space, time and AML mutexes serve the AML
    // interpreter only, which never runs here.
    fn read_pci_u8(&self, _address: PciAddress, _offset: u16) -> u8 {
        Self::unused("a PCI configuration read")
    }
    fn read_pci_u16(&self, _address: PciAddress, _offset: u16) -> u16 {
        Self::unused("a PCI configuration read")
    }
    fn read_pci_u32(&self, _address: PciAddress, _offset: u16) -> u32 {
        Self::unused("a PCI configuration read")
    }
    fn write_pci_u8(&self, _address: PciAddress, _offset: u16, _value: u8) {
        Self::unused("a PCI configuration write")
    }
    fn write_pci_u16(&self, _address: PciAddress, _offset: u16, _value: u16) {
        Self::unused("a PCI configuration write")
    }
    fn write_pci_u32(&self, _address: PciAddress, _offset: u16, _value: u32) {
        Self::unused("a PCI configuration write")
    }
    fn nanos_since_boot(&self) -> u64 {
        Self::unused("the time since boot")
    }
    fn stall(&self, _microseconds: u64) {
        Self::unused("a stall")
    }
    fn sleep(&self, _milliseconds: u64) {
        Self::unused("a sleep")
    }
    fn create_mutex(&self) -> Handle {
        Self::unused("an AML mutex")
    }
    fn acquire(&self, _mutex: Handle, _timeout: u16) -> Result<(), ::acpi::aml::AmlError> {
        Self::unused("an AML mutex")
    }
    fn release(&self, _mutex: Handle) {
        Self::unused("an AML mutex")
    }
}

/// The physical address of the RSDP: the loader's copy (kept in the boot
/// information, which the identity map covers), else the first valid one in
/// the first KiB of the EBDA, else in the BIOS ROM (0xE0000–0xFFFFF).
pub fn find_rsdp(boot: &'static BootInfo) -> Option<usize> {
    if let Some(copy) = &boot.rsdp {
        return Some(copy.bytes.as_ptr() as usize);
    }
    [search::ebda_first_kib(&boot.bios_area), Some(search::ACPI_BIOS_AREA)].into_iter().flatten().find_map(|area| {
        let start = area.start;
        search::scan(search::physical_bytes(area), search::is_rsdp).map(|offset| start + offset)
    })
}

fn polarity(value: interrupt::Polarity) -> Polarity {
    match value {
        interrupt::Polarity::SameAsBus => Polarity::BusDefault,
        interrupt::Polarity::ActiveHigh => Polarity::ActiveHigh,
        interrupt::Polarity::ActiveLow => Polarity::ActiveLow,
    }
}

fn trigger(value: interrupt::TriggerMode) -> Trigger {
    match value {
        interrupt::TriggerMode::SameAsBus => Trigger::BusDefault,
        interrupt::TriggerMode::Edge => Trigger::Edge,
        interrupt::TriggerMode::Level => Trigger::Level,
    }
}

/// Reads the MADT: CPUs in table order (disabled ones marked so), the
/// local APIC base (with its 64-bit override if any), the first I/O APIC and
/// the ISA overrides. Allocates while parsing (the crate's vectors), and
/// frees it all before returning.
pub fn discover(boot: &'static BootInfo, bsp_apic_id: u8) -> Result<Topology, AcpiDiscoveryError> {
    let rsdp = find_rsdp(boot).ok_or(AcpiDiscoveryError::NoRsdp)?;
    // SAFETY: `rsdp` is the loader's copy of a valid RSDP or a 16-byte
    // aligned address in BIOS memory where `is_rsdp` checked the signature
    // and checksums; the crate validates it again before following it.
    let tables = unsafe { AcpiTables::from_rsdp(IdentityMapped, rsdp) }.map_err(AcpiDiscoveryError::Tables)?;
    let (model, processors) = InterruptModel::new(&tables).map_err(AcpiDiscoveryError::Tables)?;
    let (InterruptModel::Apic(apic), Some(processors)) = (model, processors) else {
        return Err(AcpiDiscoveryError::NoApic);
    };
    let mut topology = Topology::empty(Source::Acpi, bsp_apic_id);
    topology.lapic_base = apic.local_apic_address as usize;
    for cpu in core::iter::once(&processors.boot_processor).chain(&processors.application_processors) {
        topology.push_cpu(cpu.local_apic_id, cpu.state != ::acpi::platform::ProcessorState::Disabled);
    }
    for ioapic in &apic.io_apics {
        let entry =
            IoApic { id: ioapic.id, base: ioapic.address as usize, gsi_base: ioapic.global_system_interrupt_base };
        topology.push_ioapic(entry, true);
    }
    for entry in &apic.interrupt_source_overrides {
        topology.push_isa_override(IsaOverride {
            isa_irq: entry.isa_source,
            gsi: entry.global_system_interrupt,
            polarity: polarity(entry.polarity),
            trigger: trigger(entry.trigger_mode),
        });
    }
    Ok(topology)
}
