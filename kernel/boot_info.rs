//! Boot information from either loader, copied into kernel-owned storage.
//!
//! GRUB (Multiboot2) and QEMU's `-kernel` (Multiboot1) hand over the same
//! facts in different formats. Both are parsed first thing at boot and copied
//! into one static [`BootInfo`], so nothing later reads loader memory, and the
//! info structure's range is recorded as reserved.
//!
//! Two firmware facts are copied here too, because later they are out of
//! reach: the ACPI RSDP that GRUB hands over (a copy inside the info
//! structure), and the BIOS data area's pointers to the EBDA and the end of
//! base memory, which live in page 0, absent once paging is on. Platform
//! discovery (`arch::x86::platform`) searches for firmware tables with them.
use core::ops::Range;

/// Which boot protocol started the kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// GRUB's `multiboot2` command (the ISO).
    Multiboot2,
    /// QEMU's `-kernel` (the fast path for tests).
    Multiboot1,
}

/// EAX at entry under Multiboot2.
pub const MULTIBOOT2_MAGIC: u32 = 0x36d7_6289;
/// EAX at entry under Multiboot1.
pub const MULTIBOOT1_MAGIC: u32 = 0x2bad_b002;

/// Kind of a memory-map region (Multiboot numbering).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegionKind {
    Available,
    Reserved,
    AcpiReclaimable,
    AcpiNvs,
    Defective,
    Other(u32),
}

impl RegionKind {
    fn from_raw(raw: u32) -> Self {
        match raw {
            1 => RegionKind::Available,
            2 => RegionKind::Reserved,
            3 => RegionKind::AcpiReclaimable,
            4 => RegionKind::AcpiNvs,
            5 => RegionKind::Defective,
            other => RegionKind::Other(other),
        }
    }
}

/// One entry of the firmware memory map.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryRegion {
    pub start: u64,
    pub length: u64,
    pub kind: RegionKind,
}

const MAX_REGIONS: usize = 32;
const MAX_TEXT: usize = 256;

/// Length of an ACPI 2.0+ RSDP (an ACPI 1.0 one is the first 20 bytes).
pub const RSDP_LENGTH: usize = 36;
const RSDP_V1_LENGTH: usize = 20;

/// A copy of the ACPI RSDP a Multiboot2 loader handed over, as it was: GRUB
/// copies the firmware's RSDP into an "old" (ACPI 1.0, 20 bytes) or "new"
/// (ACPI 2.0+, 36 bytes) ACPI tag. Unchecked: the checksums are the ACPI
/// parser's to verify.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C, align(16))]
pub struct RsdpCopy {
    /// The RSDP's bytes; an ACPI 1.0 RSDP is followed by 16 zero bytes, so
    /// the copy can always be read as a 36-byte structure.
    pub bytes: [u8; RSDP_LENGTH],
    /// Whether it came from the "new" (ACPI 2.0+) tag.
    pub from_new_tag: bool,
}

/// The BIOS data area's pointers used to search for firmware tables (ACPI's
/// RSDP, the MP floating pointer), read at boot while page 0 was mapped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BiosArea {
    /// Start of the extended BIOS data area (the segment at 0x40E × 16), if
    /// the word there points into the range an EBDA may occupy
    /// (0x80000–0x9FFFF).
    pub ebda_start: Option<usize>,
    /// End of base memory (the KiB count at 0x413 × 1024), if it is a
    /// plausible value (512 to 640 KiB).
    pub base_memory_end: Option<usize>,
}

/// Everything the kernel keeps from the loader.
#[derive(Debug)]
pub struct BootInfo {
    /// The protocol that started us.
    pub protocol: Protocol,
    /// Physical range of the loader's info structure (never handed out).
    pub info_range: Range<usize>,
    cmdline: [u8; MAX_TEXT],
    cmdline_len: usize,
    loader: [u8; MAX_TEXT],
    loader_len: usize,
    regions: [MemoryRegion; MAX_REGIONS],
    region_count: usize,
    /// The RSDP from the loader's ACPI tag, if it gave one (Multiboot2 only;
    /// the "new" tag is preferred when both are present).
    pub rsdp: Option<RsdpCopy>,
    /// Where the BIOS says its data areas are (both protocols).
    pub bios_area: BiosArea,
}

impl BootInfo {
    const fn empty(protocol: Protocol) -> Self {
        BootInfo {
            protocol,
            info_range: 0..0,
            cmdline: [0; MAX_TEXT],
            cmdline_len: 0,
            loader: [0; MAX_TEXT],
            loader_len: 0,
            regions: [MemoryRegion { start: 0, length: 0, kind: RegionKind::Reserved }; MAX_REGIONS],
            region_count: 0,
            rsdp: None,
            bios_area: BiosArea { ebda_start: None, base_memory_end: None },
        }
    }

    /// The kernel command line (empty if none was given).
    pub fn command_line(&self) -> &str {
        core::str::from_utf8(&self.cmdline[..self.cmdline_len]).unwrap_or("")
    }

    /// The boot loader's name, if it gave one.
    pub fn bootloader_name(&self) -> &str {
        core::str::from_utf8(&self.loader[..self.loader_len]).unwrap_or("")
    }

    /// The firmware memory map.
    pub fn memory_map(&self) -> &[MemoryRegion] {
        &self.regions[..self.region_count]
    }

    /// Total bytes of available RAM in the memory map.
    pub fn available_memory(&self) -> u64 {
        self.memory_map().iter().filter(|r| r.kind == RegionKind::Available).map(|r| r.length).sum()
    }

    fn set_text(target: &mut [u8; MAX_TEXT], len: &mut usize, text: &[u8]) {
        let n = text.len().min(MAX_TEXT);
        target[..n].copy_from_slice(&text[..n]);
        *len = n;
    }

    fn push_region(&mut self, region: MemoryRegion) {
        if self.region_count < MAX_REGIONS {
            self.regions[self.region_count] = region;
            self.region_count += 1;
        }
    }
}

static BOOT_INFO: spin::Once<BootInfo> = spin::Once::new();

/// The boot information, once [`parse`] has run.
pub fn get() -> Option<&'static BootInfo> {
    BOOT_INFO.get()
}

/// Parses the loader's structure at `address` according to `magic`.
///
/// Called once by the boot code, before paging and before any allocation.
pub fn parse(magic: u32, address: u32) -> &'static BootInfo {
    BOOT_INFO.call_once(|| {
        let mut info = match magic {
            MULTIBOOT2_MAGIC => parse_multiboot2(address),
            MULTIBOOT1_MAGIC => parse_multiboot1(address),
            other => panic!("unknown boot loader magic {other:#010x}"),
        };
        info.bios_area = read_bios_area();
        info
    })
}

/// Reads the BIOS data area's EBDA segment (0x40E) and base memory size in
/// KiB (0x413), keeping only plausible values (Intel's MultiProcessor
/// Specification 1.4, section 4, and ACPI's RSDP search use both).
fn read_bios_area() -> BiosArea {
    // SAFETY: paging is still off (boot parses before paging::init), so
    // physical addresses 0x40E and 0x413 are readable. On a BIOS machine they
    // hold the BIOS data area's words; on anything else they hold some value
    // that the plausibility checks below reject or that leads at worst to a
    // search of memory below 1 MiB that finds no valid signature. 0x413 is
    // odd: the words are read unaligned.
    let (segment, kib) =
        unsafe { (core::ptr::read_unaligned(0x40e as *const u16), core::ptr::read_unaligned(0x413 as *const u16)) };
    let ebda = usize::from(segment) << 4;
    let base_end = usize::from(kib) * 1024;
    BiosArea {
        ebda_start: (0x8_0000..0xa_0000).contains(&ebda).then_some(ebda),
        base_memory_end: (512 * 1024..=640 * 1024).contains(&base_end).then_some(base_end),
    }
}

/// Copies an RSDP of `length` bytes (20 or 36) that starts at `bytes`.
///
/// # Safety
/// `bytes` must be readable for `length` bytes.
unsafe fn copy_rsdp(bytes: *const u8, length: usize, from_new_tag: bool) -> RsdpCopy {
    let mut copy = RsdpCopy { bytes: [0; RSDP_LENGTH], from_new_tag };
    // SAFETY: the caller vouches for `length` readable bytes; the copy holds
    // at most RSDP_LENGTH, so a smaller `length` leaves zeros after it.
    unsafe { core::ptr::copy_nonoverlapping(bytes, copy.bytes.as_mut_ptr(), length.min(RSDP_LENGTH)) };
    copy
}

fn parse_multiboot2(address: u32) -> BootInfo {
    use multiboot2::{BootInformation, BootInformationHeader};
    let mut info = BootInfo::empty(Protocol::Multiboot2);
    // SAFETY: the Multiboot2 magic says EBX holds the address of a valid info
    // structure; paging is still off, so the physical address is usable.
    let mbi = unsafe { BootInformation::load(address as *const BootInformationHeader) }
        .expect("malformed Multiboot2 information");
    info.info_range = mbi.start_address()..mbi.end_address();
    if let Some(Ok(cmdline)) = mbi.command_line_tag().map(|t| t.cmdline()) {
        BootInfo::set_text(&mut info.cmdline, &mut info.cmdline_len, cmdline.as_bytes());
    }
    if let Some(Ok(name)) = mbi.boot_loader_name_tag().map(|t| t.name()) {
        BootInfo::set_text(&mut info.loader, &mut info.loader_len, name.as_bytes());
    }
    // A Multiboot2 ACPI tag is its 8-byte tag header followed by a copy of
    // the RSDP (Multiboot2 specification, 3.6.11 and 3.6.12).
    const TAG_HEADER: usize = 8;
    if let Some(tag) = mbi.rsdp_v2_tag() {
        // SAFETY: the tag lies in the info structure, readable now; the
        // multiboot2 crate checked it is at least 8 + 36 bytes long.
        let rsdp = unsafe { copy_rsdp(core::ptr::from_ref(tag).cast::<u8>().add(TAG_HEADER), RSDP_LENGTH, true) };
        info.rsdp = Some(rsdp);
    } else if let Some(tag) = mbi.rsdp_v1_tag() {
        // SAFETY: as above, with a tag of at least 8 + 20 bytes.
        let rsdp = unsafe { copy_rsdp(core::ptr::from_ref(tag).cast::<u8>().add(TAG_HEADER), RSDP_V1_LENGTH, false) };
        info.rsdp = Some(rsdp);
    }
    if let Some(map) = mbi.memory_map_tag() {
        for area in map.memory_areas() {
            info.push_region(MemoryRegion {
                start: area.start_address(),
                length: area.size(),
                kind: RegionKind::from_raw(u32::from(area.typ())),
            });
        }
    }
    info
}

/// Reads a NUL-terminated string at a physical address (paging is off).
///
/// # Safety
/// `address` must point at a NUL-terminated string the loader provided.
unsafe fn c_string(address: u32) -> &'static [u8] {
    // SAFETY: forwarded to the caller.
    unsafe { core::ffi::CStr::from_ptr(address as *const core::ffi::c_char).to_bytes() }
}

fn parse_multiboot1(address: u32) -> BootInfo {
    const FLAG_CMDLINE: u32 = 1 << 2;
    const FLAG_MMAP: u32 = 1 << 6;
    const FLAG_LOADER_NAME: u32 = 1 << 9;
    let mut info = BootInfo::empty(Protocol::Multiboot1);
    let word = |index: usize| -> u32 {
        // SAFETY: the Multiboot1 magic says EBX points at an info structure of
        // at least 88 bytes (up to the boot loader name field we read).
        unsafe { core::ptr::read_unaligned((address as *const u32).add(index)) }
    };
    info.info_range = address as usize..address as usize + 88;
    let flags = word(0);
    if flags & FLAG_CMDLINE != 0 {
        // SAFETY: the flag says word 4 is the address of a C string.
        let text = unsafe { c_string(word(4)) };
        BootInfo::set_text(&mut info.cmdline, &mut info.cmdline_len, text);
    }
    if flags & FLAG_LOADER_NAME != 0 {
        // SAFETY: the flag says word 16 is the address of a C string.
        let text = unsafe { c_string(word(16)) };
        BootInfo::set_text(&mut info.loader, &mut info.loader_len, text);
    }
    if flags & FLAG_MMAP != 0 {
        let (length, base) = (word(11) as usize, word(12) as usize);
        let mut entry = base;
        while entry + 24 <= base + length {
            // SAFETY: the flag says [base, base+length) holds mmap entries:
            // size (u32, not counting itself), base (u64), length (u64), type (u32).
            let (size, start, len, kind) = unsafe {
                let p = entry as *const u8;
                (
                    core::ptr::read_unaligned(p as *const u32),
                    core::ptr::read_unaligned(p.add(4) as *const u64),
                    core::ptr::read_unaligned(p.add(12) as *const u64),
                    core::ptr::read_unaligned(p.add(20) as *const u32),
                )
            };
            info.push_region(MemoryRegion { start, length: len, kind: RegionKind::from_raw(kind) });
            entry += size as usize + 4;
        }
    }
    info
}
