//! What platform discovery found: CPUs, the local and I/O APICs, ISA interrupt overrides.
//!
//! Why a type of its own: the two firmware sources (ACPI's MADT, the MP
//! table) and the fallback all produce this one plain value, fixed in size
//! and free of allocation, so the code that starts CPUs and routes
//! interrupts reads the same thing however the machine described itself.
//! Tables are capped ([`MAX_CPUS`], [`MAX_ISA_OVERRIDES`]); what was cut is
//! counted, never silently lost.

/// CPUs kept in a [`Topology`]; more are counted in [`Topology::cpus_found`].
pub const MAX_CPUS: usize = 8;
/// ISA overrides kept (there are 16 ISA IRQs).
pub const MAX_ISA_OVERRIDES: usize = 16;
/// Where every local APIC sits unless the firmware says otherwise.
pub const DEFAULT_LAPIC_BASE: usize = 0xfee0_0000;
/// Where the first I/O APIC sits on PCs (and in the MP specification's
/// default configurations).
pub const DEFAULT_IOAPIC_BASE: usize = 0xfec0_0000;

/// Which description of the machine a [`Topology`] came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// ACPI's MADT (through the `acpi` crate).
    Acpi,
    /// Intel's MultiProcessor Specification 1.4 table.
    MpTable,
    /// Neither was found (or usable): the boot CPU alone.
    Default,
}

/// One processor's local APIC.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CpuEntry {
    /// Its local APIC id (the target of INIT and start-up IPIs).
    pub apic_id: u8,
    /// Usable: a disabled processor must not be started.
    pub enabled: bool,
}

/// An I/O APIC.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IoApic {
    /// Its I/O APIC id.
    pub id: u8,
    /// Physical address of its register window (map it with `paging::map_mmio`).
    pub base: usize,
    /// The global system interrupt (GSI) of its input 0.
    pub gsi_base: u32,
}

/// Polarity of an interrupt line (MPS INTI flags, bits 0–1; ACPI uses the same).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Polarity {
    /// As the bus defines it (ISA: active high).
    BusDefault,
    /// Active high.
    ActiveHigh,
    /// Active low.
    ActiveLow,
}

/// Trigger mode of an interrupt line (MPS INTI flags, bits 2–3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trigger {
    /// As the bus defines it (ISA: edge).
    BusDefault,
    /// Edge triggered.
    Edge,
    /// Level triggered.
    Level,
}

/// Decodes MPS INTI flags, which ACPI's MADT and the MP table share. The
/// reserved encoding (0b10) reads as the bus default.
pub fn inti_flags(flags: u16) -> (Polarity, Trigger) {
    let polarity = match flags & 0b11 {
        0b01 => Polarity::ActiveHigh,
        0b11 => Polarity::ActiveLow,
        _ => Polarity::BusDefault,
    };
    let trigger = match (flags >> 2) & 0b11 {
        0b01 => Trigger::Edge,
        0b11 => Trigger::Level,
        _ => Trigger::BusDefault,
    };
    (polarity, trigger)
}

/// An ISA IRQ that does not reach the GSI of the same number with the ISA
/// defaults (on PCs: the PIT's IRQ 0 arrives at GSI 2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IsaOverride {
    /// The ISA IRQ (0–15).
    pub isa_irq: u8,
    /// The global system interrupt it arrives at.
    pub gsi: u32,
    /// Its polarity.
    pub polarity: Polarity,
    /// Its trigger mode.
    pub trigger: Trigger,
}

/// The machine's processors and interrupt controllers, as discovered at boot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Topology {
    /// The processors, in firmware order; the first [`Self::cpu_count`] are valid.
    pub cpus: [CpuEntry; MAX_CPUS],
    /// Entries of [`Self::cpus`] in use (at most [`MAX_CPUS`]).
    pub cpu_count: usize,
    /// Processors the firmware listed, kept or not (more than `cpu_count`
    /// when there were more than [`MAX_CPUS`], or x2APIC ids above 255).
    pub cpus_found: usize,
    /// The local APIC id of the CPU that ran discovery (the bootstrap
    /// processor), from CPUID leaf 1 (its initial APIC id).
    pub bsp_apic_id: u8,
    /// Physical address of the local APIC registers.
    pub lapic_base: usize,
    /// The first enabled I/O APIC, if any.
    pub ioapic: Option<IoApic>,
    /// I/O APICs the firmware listed (only the first enabled one is kept).
    pub ioapics_found: usize,
    /// ISA overrides; the first [`Self::isa_override_count`] are valid.
    pub isa_overrides: [IsaOverride; MAX_ISA_OVERRIDES],
    /// Entries of [`Self::isa_overrides`] in use.
    pub isa_override_count: usize,
    /// Where this came from.
    pub source: Source,
}

impl Topology {
    /// A topology with no CPU, no I/O APIC and the default local APIC base,
    /// to be filled by a parser.
    pub const fn empty(source: Source, bsp_apic_id: u8) -> Self {
        const NO_OVERRIDE: IsaOverride =
            IsaOverride { isa_irq: 0, gsi: 0, polarity: Polarity::BusDefault, trigger: Trigger::BusDefault };
        Topology {
            cpus: [CpuEntry { apic_id: 0, enabled: false }; MAX_CPUS],
            cpu_count: 0,
            cpus_found: 0,
            bsp_apic_id,
            lapic_base: DEFAULT_LAPIC_BASE,
            ioapic: None,
            ioapics_found: 0,
            isa_overrides: [NO_OVERRIDE; MAX_ISA_OVERRIDES],
            isa_override_count: 0,
            source,
        }
    }

    /// The boot CPU alone ([`Source::Default`]): what a machine without
    /// ACPI or an MP table is taken to be.
    pub const fn boot_cpu_only(bsp_apic_id: u8) -> Self {
        let mut topology = Self::empty(Source::Default, bsp_apic_id);
        topology.cpus[0] = CpuEntry { apic_id: bsp_apic_id, enabled: true };
        topology.cpu_count = 1;
        topology.cpus_found = 1;
        topology
    }

    /// The processors kept.
    pub fn cpus(&self) -> &[CpuEntry] {
        &self.cpus[..self.cpu_count]
    }

    /// The ISA overrides kept.
    pub fn isa_overrides(&self) -> &[IsaOverride] {
        &self.isa_overrides[..self.isa_override_count]
    }

    /// The global system interrupt ISA IRQ `irq` arrives at: its override's,
    /// or the same number.
    pub fn isa_irq_to_gsi(&self, irq: u8) -> u32 {
        self.isa_overrides().iter().find(|o| o.isa_irq == irq).map_or(u32::from(irq), |o| o.gsi)
    }

    /// Records a processor the firmware listed; an x2APIC id above 255 or
    /// one past [`MAX_CPUS`] is only counted.
    pub fn push_cpu(&mut self, apic_id: u32, enabled: bool) {
        self.cpus_found += 1;
        if let (Ok(apic_id), true) = (u8::try_from(apic_id), self.cpu_count < MAX_CPUS) {
            self.cpus[self.cpu_count] = CpuEntry { apic_id, enabled };
            self.cpu_count += 1;
        }
    }

    /// Records an I/O APIC; the first enabled one is kept.
    pub fn push_ioapic(&mut self, ioapic: IoApic, enabled: bool) {
        self.ioapics_found += 1;
        if enabled && self.ioapic.is_none() {
            self.ioapic = Some(ioapic);
        }
    }

    /// Records an ISA override; one for an IRQ already recorded, or past
    /// [`MAX_ISA_OVERRIDES`], is dropped (the first one wins).
    pub fn push_isa_override(&mut self, entry: IsaOverride) {
        if self.isa_override_count < MAX_ISA_OVERRIDES
            && self.isa_overrides().iter().all(|o| o.isa_irq != entry.isa_irq)
        {
            self.isa_overrides[self.isa_override_count] = entry;
            self.isa_override_count += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test_case]
    fn inti_flags_decode_both_fields() {
        assert_eq!(inti_flags(0), (Polarity::BusDefault, Trigger::BusDefault));
        assert_eq!(inti_flags(0b0101), (Polarity::ActiveHigh, Trigger::Edge));
        assert_eq!(inti_flags(0b1111), (Polarity::ActiveLow, Trigger::Level));
        assert_eq!(inti_flags(0b1101), (Polarity::ActiveHigh, Trigger::Level));
        assert_eq!(inti_flags(0b1010), (Polarity::BusDefault, Trigger::BusDefault));
    }

    #[test_case]
    fn cpus_past_the_cap_are_counted_not_kept() {
        let mut topology = Topology::empty(Source::Acpi, 0);
        for id in 0..10 {
            topology.push_cpu(id, id != 3);
        }
        topology.push_cpu(300, true);
        assert_eq!(topology.cpu_count, MAX_CPUS);
        assert_eq!(topology.cpus_found, 11);
        assert_eq!(topology.cpus()[3], CpuEntry { apic_id: 3, enabled: false });
        assert_eq!(topology.cpus()[7], CpuEntry { apic_id: 7, enabled: true });
    }

    #[test_case]
    fn first_enabled_ioapic_and_first_override_per_irq_win() {
        let mut topology = Topology::empty(Source::MpTable, 0);
        topology.push_ioapic(IoApic { id: 1, base: 0xfec0_0000, gsi_base: 0 }, false);
        topology.push_ioapic(IoApic { id: 2, base: 0xfec0_1000, gsi_base: 0 }, true);
        topology.push_ioapic(IoApic { id: 3, base: 0xfec0_2000, gsi_base: 24 }, true);
        assert_eq!(topology.ioapic, Some(IoApic { id: 2, base: 0xfec0_1000, gsi_base: 0 }));
        assert_eq!(topology.ioapics_found, 3);
        let first = IsaOverride { isa_irq: 0, gsi: 2, polarity: Polarity::BusDefault, trigger: Trigger::BusDefault };
        topology.push_isa_override(first);
        topology.push_isa_override(IsaOverride { gsi: 9, ..first });
        assert_eq!(topology.isa_overrides(), &[first]);
        assert_eq!(topology.isa_irq_to_gsi(0), 2);
        assert_eq!(topology.isa_irq_to_gsi(4), 4);
    }

    #[test_case]
    fn the_default_is_the_boot_cpu_alone() {
        let topology = Topology::boot_cpu_only(5);
        assert_eq!(topology.cpus(), &[CpuEntry { apic_id: 5, enabled: true }]);
        assert_eq!((topology.source, topology.lapic_base, topology.ioapic), (Source::Default, 0xfee0_0000, None));
    }
}
