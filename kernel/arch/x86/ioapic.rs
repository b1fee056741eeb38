//! The I/O APIC: device interrupt lines routed to a chosen CPU's local APIC.
//!
//! An I/O APIC has one redirection entry per input pin. Each entry names
//! the vector, the destination (a local APIC id, physical mode here), the
//! line's polarity and trigger mode, and a mask bit. ISA IRQ `n` reaches
//! the pin of its global system interrupt (GSI): usually pin `n`, except
//! where ACPI or the MP table lists an override (on PCs the PIT's IRQ 0
//! arrives at GSI 2). The registers are reached indirectly: write an index
//! to IOREGSEL (offset 0x00), then read or write IOWIN (offset 0x10).
//!
//! Register layout: Intel's 82093AA I/O APIC datasheet, section 3.
use super::platform::{IoApic, Polarity, Topology, Trigger};
use crate::sync::SpinLock;

const REGISTER_SELECT: usize = 0x00;
const REGISTER_WINDOW: usize = 0x10;
const VERSION: u32 = 0x01;
/// Redirection entry `n` is the register pair `0x10 + 2n` (low), `+ 1` (high).
const REDIRECTION_BASE: u32 = 0x10;

const ENTRY_MASKED: u32 = 1 << 16;
const ENTRY_LEVEL: u32 = 1 << 15;
const ENTRY_ACTIVE_LOW: u32 = 1 << 13;

/// The I/O APIC in use: its register window, first GSI and pin count.
#[derive(Clone, Copy, Debug)]
struct Chip {
    base: usize,
    gsi_base: u32,
    pins: u32,
}

/// The chip, once [`init`] has found it. The lock makes each select-then-
/// access pair one step (two CPUs routing at once would otherwise select
/// each other's registers); it is taken at boot and when a route changes,
/// never on an interrupt's path.
static CHIP: SpinLock<Option<Chip>> = SpinLock::new(None);

impl Chip {
    fn read(&self, register: u32) -> u32 {
        // SAFETY: `base` is the I/O APIC's register page, mapped uncached by
        // `platform::init`; IOREGSEL and IOWIN are aligned 32-bit registers,
        // and the caller holds `CHIP`'s lock across the pair.
        unsafe {
            core::ptr::write_volatile((self.base + REGISTER_SELECT) as *mut u32, register);
            core::ptr::read_volatile((self.base + REGISTER_WINDOW) as *const u32)
        }
    }

    fn write(&self, register: u32, value: u32) {
        // SAFETY: as in `read`. Writing a redirection entry only changes where
        // (and whether) that pin's interrupts are delivered.
        unsafe {
            core::ptr::write_volatile((self.base + REGISTER_SELECT) as *mut u32, register);
            core::ptr::write_volatile((self.base + REGISTER_WINDOW) as *mut u32, value);
        }
    }

    fn write_entry(&self, pin: u32, low: u32, high: u32) {
        // Masked while half written, so no interrupt goes out with the new
        // vector and the old destination.
        self.write(REDIRECTION_BASE + 2 * pin, ENTRY_MASKED);
        self.write(REDIRECTION_BASE + 2 * pin + 1, high);
        self.write(REDIRECTION_BASE + 2 * pin, low);
    }
}

/// Takes the I/O APIC that discovery found and masks every pin. Returns
/// its pin count, or `None` when the machine has none.
///
/// # Safety
/// Call once at boot, after `platform::init` (which maps the register
/// page), before any pin is routed.
pub unsafe fn init(ioapic: Option<IoApic>) -> Option<u32> {
    let ioapic = ioapic?;
    let mut chip = Chip { base: ioapic.base, gsi_base: ioapic.gsi_base, pins: 0 };
    chip.pins = ((chip.read(VERSION) >> 16) & 0xff) + 1;
    for pin in 0..chip.pins {
        chip.write_entry(pin, ENTRY_MASKED, 0);
    }
    *CHIP.lock() = Some(chip);
    Some(chip.pins)
}

/// Why an ISA IRQ could not be routed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RouteError {
    /// [`init`] found no I/O APIC.
    NoIoApic,
    /// The IRQ's GSI is not one of this I/O APIC's pins.
    NoSuchPin {
        /// The GSI the IRQ arrives at.
        gsi: u32,
    },
}

/// The redirection entry's low word for ISA IRQ `irq` on `vector`, with the
/// line's polarity and trigger from its override, if any (ISA's default is
/// active high, edge triggered). `masked` leaves it masked.
pub fn entry_low(topology: &Topology, irq: u8, vector: u8, masked: bool) -> u32 {
    let mut low = u32::from(vector); // fixed delivery, physical destination
    if let Some(entry) = topology.isa_overrides().iter().find(|o| o.isa_irq == irq) {
        if entry.polarity == Polarity::ActiveLow {
            low |= ENTRY_ACTIVE_LOW;
        }
        if entry.trigger == Trigger::Level {
            low |= ENTRY_LEVEL;
        }
    }
    if masked {
        low |= ENTRY_MASKED;
    }
    low
}

/// Routes ISA IRQ `irq` to `vector` on the CPU whose local APIC id is
/// `apic_id`, unmasked unless `masked`. Not from a trap path (takes a lock).
pub fn route_isa_irq(topology: &Topology, irq: u8, vector: u8, apic_id: u8, masked: bool) -> Result<(), RouteError> {
    let guard = CHIP.lock();
    let chip = guard.ok_or(RouteError::NoIoApic)?;
    let gsi = topology.isa_irq_to_gsi(irq);
    let pin = gsi.checked_sub(chip.gsi_base).filter(|&pin| pin < chip.pins).ok_or(RouteError::NoSuchPin { gsi })?;
    chip.write_entry(pin, entry_low(topology, irq, vector, masked), u32::from(apic_id) << 24);
    Ok(())
}

/// The redirection entry of ISA IRQ `irq` as (low, high) words, for tests
/// and diagnostics; `None` without an I/O APIC or a pin for it.
pub fn isa_irq_entry(topology: &Topology, irq: u8) -> Option<(u32, u32)> {
    let guard = CHIP.lock();
    let chip = (*guard)?;
    let pin = topology.isa_irq_to_gsi(irq).checked_sub(chip.gsi_base).filter(|&pin| pin < chip.pins)?;
    Some((chip.read(REDIRECTION_BASE + 2 * pin), chip.read(REDIRECTION_BASE + 2 * pin + 1)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arch::x86::platform::{IsaOverride, Source};

    fn machine_with(overrides: &[IsaOverride]) -> Topology {
        let mut topology = Topology::boot_cpu_only(0);
        topology.source = Source::Acpi;
        for &entry in overrides {
            topology.push_isa_override(entry);
        }
        topology
    }

    #[test_case]
    fn an_isa_irq_without_override_is_edge_triggered_active_high() {
        let topology = machine_with(&[]);
        assert_eq!(entry_low(&topology, 4, 36, false), 36);
        assert_eq!(entry_low(&topology, 4, 36, true), 36 | ENTRY_MASKED);
    }

    #[test_case]
    fn an_override_sets_polarity_and_trigger() {
        let sci = IsaOverride { isa_irq: 9, gsi: 9, polarity: Polarity::ActiveLow, trigger: Trigger::Level };
        let topology = machine_with(&[sci]);
        assert_eq!(entry_low(&topology, 9, 41, false), 41 | ENTRY_ACTIVE_LOW | ENTRY_LEVEL);
        assert_eq!(entry_low(&topology, 4, 36, false), 36);
    }
}
