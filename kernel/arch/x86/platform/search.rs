//! Finding firmware structures in low memory: checksums, 16-byte-aligned scans, the BIOS areas.
//!
//! Why here: ACPI's RSDP and the MP floating pointer are both found the same
//! way on BIOS machines (a signature on a 16-byte boundary in the EBDA or
//! the BIOS ROM, with a byte checksum), so the scan is written once. The
//! pure parts work on byte slices and are unit-tested on arrays; only
//! [`physical_bytes`] touches memory.
use crate::boot_info::BiosArea;
use core::ops::Range;

/// The sum of `bytes`, modulo 256: firmware structures sum to 0.
pub fn checksum(bytes: &[u8]) -> u8 {
    bytes.iter().fold(0u8, |sum, &byte| sum.wrapping_add(byte))
}

/// The offset of the first 16-byte-aligned window of `area` that `is_valid`
/// accepts. `is_valid` gets the window's bytes up to the end of `area`.
pub fn scan(area: &[u8], is_valid: impl Fn(&[u8]) -> bool) -> Option<usize> {
    (0..area.len()).step_by(16).find(|&offset| is_valid(&area[offset..]))
}

/// Length of an ACPI 1.0 RSDP; ACPI 2.0+ ones are 36 bytes.
const RSDP_V1_LENGTH: usize = 20;
const RSDP_V2_LENGTH: usize = 36;

/// Whether `bytes` start with a valid ACPI RSDP: the "RSD PTR " signature,
/// the checksum of the first 20 bytes, and for revision 2 and later a
/// length of 36 whose extended checksum holds too (ACPI 6.5, 5.2.5.3).
pub fn is_rsdp(bytes: &[u8]) -> bool {
    if bytes.len() < RSDP_V1_LENGTH || &bytes[..8] != b"RSD PTR " || checksum(&bytes[..RSDP_V1_LENGTH]) != 0 {
        return false;
    }
    let revision = bytes[15];
    if revision < 2 {
        return true;
    }
    let Some(extended) = bytes.get(..RSDP_V2_LENGTH) else { return false };
    let length = u32::from_le_bytes([extended[20], extended[21], extended[22], extended[23]]) as usize;
    length == RSDP_V2_LENGTH && checksum(extended) == 0
}

/// The BIOS ROM area searched for the RSDP (ACPI 6.5, 5.2.5.1).
pub const ACPI_BIOS_AREA: Range<usize> = 0xe_0000..0x10_0000;
/// The BIOS ROM area searched for the MP floating pointer (MPS 1.4, 4).
pub const MP_BIOS_AREA: Range<usize> = 0xf_0000..0x10_0000;

/// The first KiB of the EBDA, if the BIOS data area said where it is.
pub fn ebda_first_kib(bios: &BiosArea) -> Option<Range<usize>> {
    bios.ebda_start.map(|start| start..start + 1024)
}

/// The last KiB of base memory, if the BIOS data area said where it ends.
pub fn base_memory_last_kib(bios: &BiosArea) -> Option<Range<usize>> {
    bios.base_memory_end.map(|end| end - 1024..end)
}

/// The bytes of physical memory `range`, read through the identity map.
///
/// Only for ranges below 1 MiB outside page 0 (the EBDA, base memory, the
/// BIOS ROM) or ranges [`super::super::paging::map_mmio`] has mapped: it
/// panics on a range whose first or last byte is unmapped.
pub fn physical_bytes(range: Range<usize>) -> &'static [u8] {
    use super::super::paging;
    assert!(
        range.start < range.end && paging::is_mapped(range.start) && paging::is_mapped(range.end - 1),
        "physical range {range:#x?} is not mapped"
    );
    // SAFETY: the identity map makes physical address `a` readable at `a`
    // (checked at both ends above; callers pass ranges within one mapped
    // area: firmware memory below 1 MiB, or tables mapped with map_mmio,
    // which are never unmapped). Firmware tables are written by nothing
    // while the kernel runs, so the shared slice's contents do not change.
    unsafe { core::slice::from_raw_parts(range.start as *const u8, range.end - range.start) }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An ACPI 1.0 or 2.0 RSDP with valid checksums.
    fn rsdp(revision: u8) -> [u8; 36] {
        let mut bytes = [0u8; 36];
        bytes[..8].copy_from_slice(b"RSD PTR ");
        bytes[9..15].copy_from_slice(b"BOCHS ");
        bytes[15] = revision;
        bytes[16..20].copy_from_slice(&0x07fe_14d2u32.to_le_bytes());
        bytes[8] = 0u8.wrapping_sub(checksum(&bytes[..20]));
        if revision >= 2 {
            bytes[20..24].copy_from_slice(&36u32.to_le_bytes());
            bytes[24..32].copy_from_slice(&0x07fe_1500u64.to_le_bytes());
            bytes[32] = 0u8.wrapping_sub(checksum(&bytes));
        }
        bytes
    }

    #[test_case]
    fn checksum_wraps_modulo_256() {
        assert_eq!(checksum(&[]), 0);
        assert_eq!(checksum(&[0x80, 0x80]), 0);
        assert_eq!(checksum(&[0xff, 0x02, 0x10]), 0x11);
    }

    #[test_case]
    fn rsdp_checks_signature_and_both_checksums() {
        assert!(is_rsdp(&rsdp(0)));
        assert!(is_rsdp(&rsdp(0)[..20]));
        assert!(is_rsdp(&rsdp(2)));
        assert!(!is_rsdp(&rsdp(2)[..20]), "a 2.0 RSDP cut short");
        let mut bad = rsdp(2);
        bad[33] = 1; // reserved byte: only the extended checksum covers it
        assert!(!is_rsdp(&bad));
        let mut bad = rsdp(0);
        bad[10] ^= 0x20;
        assert!(!is_rsdp(&bad));
        let mut bad = rsdp(0);
        bad[0] = b'r';
        bad[8] = bad[8].wrapping_sub(b'r' - b'R');
        assert_eq!(checksum(&bad[..20]), 0);
        assert!(!is_rsdp(&bad), "checksum fine, signature wrong");
    }

    #[test_case]
    fn scan_looks_only_at_16_byte_boundaries() {
        let mut area = [0u8; 256];
        area[40..76].copy_from_slice(&rsdp(2)); // unaligned: never seen
        assert_eq!(scan(&area, is_rsdp), None);
        area[160..196].copy_from_slice(&rsdp(2));
        assert_eq!(scan(&area, is_rsdp), Some(160));
        area[236..256].copy_from_slice(&rsdp(0)[..20]); // not aligned either
        area[160] = 0;
        assert_eq!(scan(&area, is_rsdp), None);
    }

    #[test_case]
    fn bios_areas_come_from_the_bios_data_area() {
        let bios = BiosArea { ebda_start: Some(0x9_fc00), base_memory_end: Some(0xa_0000) };
        assert_eq!(ebda_first_kib(&bios), Some(0x9_fc00..0xa_0000));
        assert_eq!(base_memory_last_kib(&bios), Some(0x9_fc00..0xa_0000));
        let none = BiosArea { ebda_start: None, base_memory_end: None };
        assert_eq!((ebda_first_kib(&none), base_memory_last_kib(&none)), (None, None));
    }
}
