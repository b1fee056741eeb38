//! The MP table (Intel MultiProcessor Specification 1.4): CPUs and I/O APICs without ACPI.
//!
//! Why our own parser: no maintained crate reads it, and it is small. It is
//! the fallback when ACPI is absent, broken or turned off (`acpi=off`), and
//! what pre-ACPI machines and some emulators offer. The byte-level logic
//! (checksums, the entry walk) works on slices and is unit-tested on tables
//! built in the tests; [`discover`] alone reads memory.
//!
//! Layout (MPS 1.4, chapter 4): a 16-byte floating pointer `_MP_` points at
//! a configuration table `PCMP`: a 44-byte header, then `entry count`
//! entries sorted by type: processors (type 0, 20 bytes), buses (1),
//! I/O APICs (2), I/O interrupt assignments (3), local interrupt
//! assignments (4), 8 bytes each. The extended table after it is not read.
use super::search::{self, checksum};
use super::topology::{DEFAULT_IOAPIC_BASE, DEFAULT_LAPIC_BASE, IoApic, IsaOverride, Source, Topology, inti_flags};
use crate::boot_info::BiosArea;

/// Why an MP table could not be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MpError {
    /// No valid floating pointer in any of the areas the specification names.
    NotFound,
    /// The floating pointer's length field is not 1 (16 bytes).
    BadPointerLength(u8),
    /// The floating pointer's bytes do not sum to 0.
    BadPointerChecksum,
    /// The configuration table does not start with `PCMP`.
    BadTableSignature,
    /// The table's base length is shorter than its header or than the bytes given.
    BadTableLength(usize),
    /// The base table's bytes do not sum to 0.
    BadTableChecksum,
    /// An entry of unknown type at this offset: the rest cannot be walked.
    UnknownEntry {
        /// The entry's type byte.
        kind: u8,
        /// Its offset in the table.
        offset: usize,
    },
    /// The entries run past the table's base length (at this offset).
    TruncatedEntry(usize),
    /// The pointer names a default configuration this parser does not know.
    UnknownDefaultConfiguration(u8),
}

/// The floating pointer structure's contents.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FloatingPointer {
    /// Physical address of the configuration table (0 with a default configuration).
    pub config_table: usize,
    /// The specification revision (1 for 1.1, 4 for 1.4).
    pub spec_revision: u8,
    /// Feature byte 1: a default configuration's number (1–7), or 0 when a
    /// configuration table is present.
    pub default_configuration: u8,
}

/// Parses a floating pointer at the start of `bytes`: `_MP_`, a length of
/// one 16-byte paragraph, and a zero checksum over it.
pub fn parse_floating_pointer(bytes: &[u8]) -> Result<FloatingPointer, MpError> {
    if bytes.len() < 16 || &bytes[..4] != b"_MP_" {
        return Err(MpError::NotFound);
    }
    if bytes[8] != 1 {
        return Err(MpError::BadPointerLength(bytes[8]));
    }
    if checksum(&bytes[..16]) != 0 {
        return Err(MpError::BadPointerChecksum);
    }
    Ok(FloatingPointer {
        config_table: u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]) as usize,
        spec_revision: bytes[9],
        default_configuration: bytes[11],
    })
}

/// The first valid floating pointer in `area` (16-byte aligned): its offset
/// and contents.
pub fn find_floating_pointer(area: &[u8]) -> Option<(usize, FloatingPointer)> {
    let offset = search::scan(area, |window| parse_floating_pointer(window).is_ok())?;
    Some((offset, parse_floating_pointer(&area[offset..]).ok()?))
}

/// The size of the configuration table's header.
pub const TABLE_HEADER_LENGTH: usize = 44;

/// The base table length a configuration table header announces, checked
/// to cover at least the header.
pub fn table_length(header: &[u8]) -> Result<usize, MpError> {
    if header.len() < TABLE_HEADER_LENGTH || &header[..4] != b"PCMP" {
        return Err(MpError::BadTableSignature);
    }
    let length = usize::from(u16::from_le_bytes([header[4], header[5]]));
    if length < TABLE_HEADER_LENGTH {
        return Err(MpError::BadTableLength(length));
    }
    Ok(length)
}

/// The size of an entry of type `kind`, if it is a known type.
fn entry_length(kind: u8) -> Option<usize> {
    match kind {
        0 => Some(20),
        1..=4 => Some(8),
        _ => None,
    }
}

/// Walks the base table's entries, calling `visit(type, entry bytes)` for
/// each. Stops at the first entry of unknown type or one that runs past the
/// table's end.
fn walk(table: &[u8], mut visit: impl FnMut(u8, &[u8])) -> Result<(), MpError> {
    let count = u16::from_le_bytes([table[34], table[35]]);
    let mut offset = TABLE_HEADER_LENGTH;
    for _ in 0..count {
        let kind = *table.get(offset).ok_or(MpError::TruncatedEntry(offset))?;
        let length = entry_length(kind).ok_or(MpError::UnknownEntry { kind, offset })?;
        let entry = table.get(offset..offset + length).ok_or(MpError::TruncatedEntry(offset))?;
        visit(kind, entry);
        offset += length;
    }
    Ok(())
}

/// Parses a whole configuration table (its base length, checksum, header
/// and entries) into a topology: processor entries give the CPUs, the first
/// enabled I/O APIC entry the I/O APIC (GSI base 0), and interrupt
/// assignments from an ISA bus to that I/O APIC that change the IRQ's
/// number or its polarity or trigger give the ISA overrides.
pub fn parse_table(table: &[u8], bsp_apic_id: u8) -> Result<Topology, MpError> {
    let length = table_length(table)?;
    let table = table.get(..length).ok_or(MpError::BadTableLength(length))?;
    if checksum(table) != 0 {
        return Err(MpError::BadTableChecksum);
    }
    let mut topology = Topology::empty(Source::MpTable, bsp_apic_id);
    topology.lapic_base = u32::from_le_bytes([table[36], table[37], table[38], table[39]]) as usize;
    // Bus ids of ISA buses (bus type "ISA   "), as a 256-bit set.
    let mut isa_buses = [0u32; 8];
    walk(table, |kind, entry| match kind {
        0 => topology.push_cpu(u32::from(entry[1]), entry[3] & 1 != 0),
        1 if &entry[2..8] == b"ISA   " => isa_buses[usize::from(entry[1] / 32)] |= 1 << (entry[1] % 32),
        2 => {
            let base = u32::from_le_bytes([entry[4], entry[5], entry[6], entry[7]]) as usize;
            topology.push_ioapic(IoApic { id: entry[1], base, gsi_base: 0 }, entry[3] & 1 != 0);
        }
        _ => {}
    })?;
    let Some(ioapic) = topology.ioapic else { return Ok(topology) };
    // Interrupt assignments come after buses and I/O APICs (the table is
    // sorted by type), but a second walk does not depend on it.
    walk(table, |kind, entry| {
        let (interrupt_type, flags, bus, irq, destination, pin) =
            (entry[1], u16::from_le_bytes([entry[2], entry[3]]), entry[4], entry[5], entry[6], entry[7]);
        let is_isa = isa_buses[usize::from(bus / 32)] & (1 << (bus % 32)) != 0;
        // Type 0 is a vectored interrupt (INT); 0xff addresses every I/O APIC.
        if kind != 3 || interrupt_type != 0 || !is_isa || (destination != ioapic.id && destination != 0xff) {
            return;
        }
        let gsi = ioapic.gsi_base + u32::from(pin);
        if gsi != u32::from(irq) || flags != 0 {
            let (polarity, trigger) = inti_flags(flags);
            topology.push_isa_override(IsaOverride { isa_irq: irq, gsi, polarity, trigger });
        }
    })?;
    Ok(topology)
}

/// The topology of default configuration `number` (MPS 1.4, chapter 5):
/// two processors with local APIC ids 0 and 1 at the default base and, for
/// the configurations with an integrated APIC (5–7) and the discrete ones
/// (1–4) alike, I/O APIC id 2 at 0xFEC00000. Its interrupt routing is not
/// reported.
pub fn default_configuration(number: u8, bsp_apic_id: u8) -> Result<Topology, MpError> {
    if !(1..=7).contains(&number) {
        return Err(MpError::UnknownDefaultConfiguration(number));
    }
    let mut topology = Topology::empty(Source::MpTable, bsp_apic_id);
    topology.lapic_base = DEFAULT_LAPIC_BASE;
    topology.push_cpu(0, true);
    topology.push_cpu(1, true);
    topology.push_ioapic(IoApic { id: 2, base: DEFAULT_IOAPIC_BASE, gsi_base: 0 }, true);
    Ok(topology)
}

/// Finds and parses the machine's MP table: the floating pointer in the
/// first KiB of the EBDA, else the last KiB of base memory, else the BIOS
/// ROM (0xF0000–0xFFFFF), in that order (MPS 1.4, 4).
pub fn discover(bios: &BiosArea, bsp_apic_id: u8) -> Result<Topology, MpError> {
    let areas = [search::ebda_first_kib(bios), search::base_memory_last_kib(bios), Some(search::MP_BIOS_AREA)];
    let pointer = areas
        .into_iter()
        .flatten()
        .find_map(|area| find_floating_pointer(search::physical_bytes(area)).map(|(_, pointer)| pointer))
        .ok_or(MpError::NotFound)?;
    if pointer.default_configuration != 0 {
        return default_configuration(pointer.default_configuration, bsp_apic_id);
    }
    let start = pointer.config_table;
    let header_end = start.checked_add(TABLE_HEADER_LENGTH).ok_or(MpError::BadTableSignature)?;
    super::super::paging::map_mmio(start..header_end);
    let length = table_length(search::physical_bytes(start..header_end))?;
    let end = start.checked_add(length).ok_or(MpError::BadTableLength(length))?;
    super::super::paging::map_mmio(start..end);
    parse_table(search::physical_bytes(start..end), bsp_apic_id)
}

#[cfg(test)]
mod tests {
    use super::super::topology::{CpuEntry, Polarity, Trigger};
    use super::*;
    use alloc::vec::Vec;

    /// A floating pointer to `table` with a valid checksum.
    fn pointer(table: u32, default_configuration: u8) -> [u8; 16] {
        let mut bytes = [0u8; 16];
        bytes[..4].copy_from_slice(b"_MP_");
        bytes[4..8].copy_from_slice(&table.to_le_bytes());
        bytes[8] = 1;
        bytes[9] = 4;
        bytes[11] = default_configuration;
        bytes[10] = 0u8.wrapping_sub(checksum(&bytes));
        bytes
    }

    fn processor(apic_id: u8, flags: u8) -> Vec<u8> {
        let mut entry = alloc::vec![0u8; 20];
        (entry[0], entry[1], entry[2], entry[3]) = (0, apic_id, 0x14, flags);
        entry
    }

    fn bus(id: u8, name: &[u8; 6]) -> Vec<u8> {
        let mut entry = alloc::vec![1, id];
        entry.extend_from_slice(name);
        entry
    }

    fn ioapic(id: u8, flags: u8, base: u32) -> Vec<u8> {
        let mut entry = alloc::vec![2, id, 0x11, flags];
        entry.extend_from_slice(&base.to_le_bytes());
        entry
    }

    fn interrupt(kind: u8, flags: u16, bus: u8, irq: u8, ioapic: u8, pin: u8) -> Vec<u8> {
        let flags = flags.to_le_bytes();
        alloc::vec![3, kind, flags[0], flags[1], bus, irq, ioapic, pin]
    }

    /// A configuration table holding `entries`, with a valid checksum.
    fn table(entries: &[Vec<u8>]) -> Vec<u8> {
        let mut bytes = alloc::vec![0u8; TABLE_HEADER_LENGTH];
        bytes[..4].copy_from_slice(b"PCMP");
        bytes[6] = 4;
        bytes[8..16].copy_from_slice(b"BOCHSCPU");
        bytes[34..36].copy_from_slice(&(entries.len() as u16).to_le_bytes());
        bytes[36..40].copy_from_slice(&0xfee0_0000u32.to_le_bytes());
        for entry in entries {
            bytes.extend_from_slice(entry);
        }
        let length = bytes.len() as u16;
        bytes[4..6].copy_from_slice(&length.to_le_bytes());
        bytes[7] = 0u8.wrapping_sub(checksum(&bytes));
        bytes
    }

    /// The table QEMU's BIOS writes for `-smp 2`, abridged: two CPUs, a PCI
    /// and an ISA bus, the I/O APIC, ISA IRQ 0 on pin 2, IRQ 1 on pin 1, a
    /// PCI interrupt, an NMI and a local interrupt.
    fn two_cpu_table() -> Vec<u8> {
        table(&[
            processor(0, 0b11),
            processor(1, 0b01),
            bus(0, b"PCI   "),
            bus(1, b"ISA   "),
            ioapic(0, 1, 0xfec0_0000),
            interrupt(0, 0, 1, 0, 0, 2),
            interrupt(0, 0, 1, 1, 0, 1),
            interrupt(0, 0b1111, 0, 0x0c, 0, 11),
            interrupt(1, 0, 1, 0, 0xff, 0),
            alloc::vec![4, 3, 0, 0, 1, 0, 0xff, 0],
        ])
    }

    #[test_case]
    fn floating_pointer_checks_signature_length_and_checksum() {
        let good = pointer(0x000f_5ab0, 0);
        assert_eq!(
            parse_floating_pointer(&good),
            Ok(FloatingPointer { config_table: 0xf_5ab0, spec_revision: 4, default_configuration: 0 })
        );
        let mut bad = good;
        bad[12] = 1;
        assert_eq!(parse_floating_pointer(&bad), Err(MpError::BadPointerChecksum));
        let mut bad = good;
        (bad[8], bad[10]) = (2, bad[10].wrapping_sub(1));
        assert_eq!(parse_floating_pointer(&bad), Err(MpError::BadPointerLength(2)));
        assert_eq!(parse_floating_pointer(&good[..15]), Err(MpError::NotFound));
        assert_eq!(parse_floating_pointer(b"_PM_............"), Err(MpError::NotFound));
    }

    #[test_case]
    fn floating_pointer_is_found_on_a_paragraph_boundary_only() {
        let mut area = [0u8; 1024];
        area[0x108..0x118].copy_from_slice(&pointer(0x9_fc00, 0));
        assert_eq!(find_floating_pointer(&area), None);
        area[0x3f0..0x400].copy_from_slice(&pointer(0x9_fc00, 0));
        assert_eq!(find_floating_pointer(&area).map(|(offset, p)| (offset, p.config_table)), Some((0x3f0, 0x9_fc00)));
    }

    #[test_case]
    fn table_entries_give_cpus_ioapic_and_isa_overrides() {
        let topology = parse_table(&two_cpu_table(), 0).unwrap();
        assert_eq!(topology.source, Source::MpTable);
        assert_eq!(topology.cpus(), &[CpuEntry { apic_id: 0, enabled: true }, CpuEntry { apic_id: 1, enabled: true }]);
        assert_eq!((topology.cpus_found, topology.lapic_base), (2, 0xfee0_0000));
        assert_eq!(topology.ioapic, Some(IoApic { id: 0, base: 0xfec0_0000, gsi_base: 0 }));
        // IRQ 1 on pin 1 is no override; the PCI interrupt and the NMI are not ISA INTs.
        let irq0 = IsaOverride { isa_irq: 0, gsi: 2, polarity: Polarity::BusDefault, trigger: Trigger::BusDefault };
        assert_eq!(topology.isa_overrides(), &[irq0]);
    }

    #[test_case]
    fn polarity_and_trigger_changes_are_overrides_too() {
        let entries = [bus(3, b"ISA   "), ioapic(8, 1, 0xfec0_0000), interrupt(0, 0b1101, 3, 9, 8, 9)];
        let topology = parse_table(&table(&entries), 0).unwrap();
        let irq9 = IsaOverride { isa_irq: 9, gsi: 9, polarity: Polarity::ActiveHigh, trigger: Trigger::Level };
        assert_eq!(topology.isa_overrides(), &[irq9]);
        assert_eq!(topology.cpus(), &[]);
    }

    #[test_case]
    fn disabled_cpus_are_kept_disabled_and_disabled_ioapics_skipped() {
        let entries = [processor(0, 0b11), processor(2, 0b00), ioapic(1, 0, 0xfec0_0000), ioapic(2, 1, 0xfec1_0000)];
        let topology = parse_table(&table(&entries), 0).unwrap();
        assert_eq!(topology.cpus(), &[CpuEntry { apic_id: 0, enabled: true }, CpuEntry { apic_id: 2, enabled: false }]);
        assert_eq!(topology.ioapic, Some(IoApic { id: 2, base: 0xfec1_0000, gsi_base: 0 }));
        assert_eq!(topology.ioapics_found, 2);
    }

    #[test_case]
    fn table_checksum_signature_and_length_are_checked() {
        let good = two_cpu_table();
        let mut bad = good.clone();
        bad[50] ^= 1;
        assert_eq!(parse_table(&bad, 0), Err(MpError::BadTableChecksum));
        let mut bad = good.clone();
        bad[0] = b'X';
        assert_eq!(parse_table(&bad, 0), Err(MpError::BadTableSignature));
        assert_eq!(parse_table(&good[..good.len() - 1], 0), Err(MpError::BadTableLength(good.len())));
        let mut short = good.clone();
        short[4..6].copy_from_slice(&20u16.to_le_bytes());
        assert_eq!(table_length(&short), Err(MpError::BadTableLength(20)));
        // Bytes past the base length (the extended table) are not summed.
        let mut extended = good.clone();
        extended.extend_from_slice(&[0x55; 8]);
        assert_eq!(parse_table(&extended, 0).map(|t| t.cpu_count), Ok(2));
    }

    #[test_case]
    fn the_walk_stops_at_unknown_or_truncated_entries() {
        let unknown = table(&[processor(0, 3), alloc::vec![9, 0, 0, 0, 0, 0, 0, 0]]);
        assert_eq!(parse_table(&unknown, 0), Err(MpError::UnknownEntry { kind: 9, offset: 64 }));
        // The header claims three entries; the table holds two.
        let mut truncated = table(&[processor(0, 3), processor(1, 1)]);
        truncated[34] = 3;
        truncated[7] = truncated[7].wrapping_sub(1);
        assert_eq!(parse_table(&truncated, 0), Err(MpError::TruncatedEntry(84)));
    }

    #[test_case]
    fn default_configurations_are_two_cpus_and_one_ioapic() {
        let topology = default_configuration(5, 0).unwrap();
        assert_eq!(topology.cpus(), &[CpuEntry { apic_id: 0, enabled: true }, CpuEntry { apic_id: 1, enabled: true }]);
        assert_eq!(topology.ioapic, Some(IoApic { id: 2, base: 0xfec0_0000, gsi_base: 0 }));
        assert_eq!(default_configuration(8, 0), Err(MpError::UnknownDefaultConfiguration(8)));
    }
}
