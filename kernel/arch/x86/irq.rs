//! Device interrupts: the 16 ISA IRQs, through the I/O APIC to any CPU or
//! through the 8259 PIC to the boot CPU, one handler per line, counted per
//! line and CPU.
//!
//! Both controllers deliver IRQ `n` on vector `32 + n`, so the trap
//! dispatcher needs not know which one is in use. [`init`] picks the I/O
//! APIC when platform discovery found one and the command line does not
//! say `noapic`; the PIC is then masked entirely, and so is the boot CPU's
//! LINT0 behind it. A driver installs its handler ([`set_handler`]), then
//! unmasks its line on a CPU ([`enable`]); [`enable`] again moves the line
//! to another CPU.
//!
//! Handlers run with interrupts off, in interrupt context, on the CPU the
//! line is routed to; the interrupted task is recorded for the probe
//! engine's quiescence checks as for every interrupt.
use super::platform::Topology;
use super::trap::TrapFrame;
use super::{apic, ioapic, percpu, pic, smp};
use crate::sync::SpinLock;
use core::sync::atomic::{AtomicU8, AtomicU32, AtomicUsize, Ordering};

/// ISA IRQ lines.
pub const LINES: u8 = 16;
/// The vector of IRQ 0 (the others follow it).
pub const VECTOR_BASE: u8 = super::trap::vector::IRQ_BASE;

/// The interrupt controller that delivers device interrupts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Controller {
    /// The I/O APIC: any line to any CPU.
    IoApic,
    /// The 8259 PIC, to the boot CPU only (`noapic`, or no I/O APIC).
    Pic,
}

/// Why a line could not be set up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IrqError {
    /// Not an ISA IRQ (0–15), or IRQ 2 (the PIC's cascade).
    NoSuchLine(u8),
    /// The line has a handler already.
    Taken(u8),
    /// No handler was installed for the line.
    NoHandler(u8),
    /// The CPU is not online.
    NoSuchCpu(usize),
    /// The PIC reaches the boot CPU only.
    PicReachesBootCpuOnly,
    /// The I/O APIC has no pin for the line.
    NoPin {
        /// The global system interrupt the line arrives at.
        gsi: u32,
    },
}

/// A device's interrupt handler, given its IRQ.
pub type Handler = fn(irq: u8);

const NO_CONTROLLER: u8 = 0;
const IO_APIC: u8 = 1;
const PIC: u8 = 2;
static CONTROLLER: AtomicU8 = AtomicU8::new(NO_CONTROLLER);

/// Each line's handler as a `Handler` pointer, 0 for none. Written once per
/// line, before the line is unmasked, so the dispatcher reads it without a lock.
static HANDLERS: [AtomicUsize; LINES as usize] = [const { AtomicUsize::new(0) }; LINES as usize];
/// Interrupts taken, per line and CPU (the table of Linux's /proc/interrupts).
static COUNTS: [[AtomicU32; percpu::MAX_CPUS]; LINES as usize] =
    [const { [const { AtomicU32::new(0) }; percpu::MAX_CPUS] }; LINES as usize];
/// Spurious PIC interrupts (IRQ 7 or 15 with nothing in service).
static SPURIOUS: AtomicU32 = AtomicU32::new(0);

/// Serializes changes of routing and masks (the PIC's mask register is a
/// read-modify-write). Taken only by `set_handler`/`enable`/`disable`,
/// never on an interrupt's path.
static CONFIGURATION: SpinLock<()> = SpinLock::new(());

/// Chooses the controller and masks every line. Returns the choice.
///
/// # Safety
/// Call once at boot with interrupts off, after `platform::init` and
/// `apic::init_this_cpu` on the boot CPU, with gates for vectors 32–47.
pub unsafe fn init(topology: &Topology, noapic: bool) -> Controller {
    // SAFETY: the caller's contract is `pic::init`'s.
    unsafe { pic::init() };
    // SAFETY: once, at boot, after `platform::init` mapped the registers.
    let pins = if noapic { None } else { unsafe { ioapic::init(topology.ioapic) } };
    let controller = match pins {
        Some(_) => {
            pic::mask_all();
            apic::mask_lint0();
            Controller::IoApic
        }
        None => Controller::Pic,
    };
    CONTROLLER.store(if controller == Controller::IoApic { IO_APIC } else { PIC }, Ordering::Release);
    controller
}

/// The controller [`init`] chose (`None` before it ran).
pub fn controller() -> Option<Controller> {
    match CONTROLLER.load(Ordering::Acquire) {
        IO_APIC => Some(Controller::IoApic),
        PIC => Some(Controller::Pic),
        _ => None,
    }
}

fn check_line(irq: u8) -> Result<(), IrqError> {
    if irq >= LINES || irq == 2 { Err(IrqError::NoSuchLine(irq)) } else { Ok(()) }
}

/// Installs `handler` for IRQ `irq`, still masked.
pub fn set_handler(irq: u8, handler: Handler) -> Result<(), IrqError> {
    check_line(irq)?;
    let _guard = CONFIGURATION.lock();
    HANDLERS[irq as usize]
        .compare_exchange(0, handler as usize, Ordering::AcqRel, Ordering::Acquire)
        .map(|_| ())
        .map_err(|_| IrqError::Taken(irq))
}

/// Unmasks IRQ `irq`, delivered to CPU `cpu`; with the line enabled
/// already, moves it there. Its handler must be installed.
pub fn enable(irq: u8, cpu: usize) -> Result<(), IrqError> {
    route(irq, cpu, false)
}

/// Masks IRQ `irq` (its handler stays installed).
pub fn disable(irq: u8) -> Result<(), IrqError> {
    route(irq, 0, true)
}

fn route(irq: u8, cpu: usize, masked: bool) -> Result<(), IrqError> {
    check_line(irq)?;
    if cpu >= smp::online_cpus() {
        return Err(IrqError::NoSuchCpu(cpu));
    }
    let _guard = CONFIGURATION.lock();
    if HANDLERS[irq as usize].load(Ordering::Acquire) == 0 {
        return Err(IrqError::NoHandler(irq));
    }
    match controller() {
        Some(Controller::IoApic) => {
            let topology = super::platform::topology();
            ioapic::route_isa_irq(topology, irq, VECTOR_BASE + irq, smp::apic_id_of(cpu), masked).map_err(|error| {
                match error {
                    ioapic::RouteError::NoSuchPin { gsi } => IrqError::NoPin { gsi },
                    ioapic::RouteError::NoIoApic => unreachable!("the I/O APIC was chosen at init"),
                }
            })
        }
        Some(Controller::Pic) | None if cpu != 0 => Err(IrqError::PicReachesBootCpuOnly),
        Some(Controller::Pic) | None => {
            pic::set_masked(irq, masked);
            Ok(())
        }
    }
}

/// Interrupts IRQ `irq` has raised on CPU `cpu` so far.
pub fn count(irq: u8, cpu: usize) -> u32 {
    COUNTS[irq as usize][cpu].load(Ordering::Relaxed)
}

/// Spurious PIC interrupts seen so far.
pub fn spurious_count() -> u32 {
    SPURIOUS.load(Ordering::Relaxed)
}

/// IRQ `irq` (0–15) arrived, interrupting `frame`: runs its handler and
/// acknowledges it at the controller that sent it.
#[unsafe(link_section = ".kprobes.text")]
pub fn handle_irq(irq: u8, frame: &mut TrapFrame) {
    let pic = CONTROLLER.load(Ordering::Relaxed) != IO_APIC;
    if pic && pic::is_spurious(irq) {
        SPURIOUS.fetch_add(1, Ordering::Relaxed);
        if irq == 15 {
            pic::end_of_interrupt(2); // the master did see the cascade
        }
        return;
    }
    let outer = crate::task::interrupt_enter(frame.eip as usize);
    COUNTS[irq as usize][percpu::cpu_id()].fetch_add(1, Ordering::Relaxed);
    let handler = HANDLERS[irq as usize].load(Ordering::Acquire);
    if handler != 0 {
        // SAFETY: a non-zero entry was stored from a `Handler` by
        // `set_handler` and is never changed afterwards.
        let handler: Handler = unsafe { core::mem::transmute::<usize, Handler>(handler) };
        handler(irq);
    }
    // After the handler: the device has been served, so a level-triggered
    // line is down by now, and an edge that came meanwhile is latched.
    if pic {
        pic::end_of_interrupt(irq);
    } else {
        apic::eoi();
    }
    crate::task::interrupt_leave(outer);
}
