//! Function-return probes (kretprobes), as Linux's i386 design has them —
//! without its 2005 limitations.
//!
//! Entry: a kprobe on the function's first instruction takes an instance
//! from the kretprobe's pool, saves the stacked return address in it, and
//! swaps in the trampoline's address (on i386 a kernel trap pushes no
//! ESP/SS, so the slot is exactly where the probed ESP points). With no free
//! instance the call runs normally and counts in `nmissed`.
//!
//! Return: the function's `ret` lands in the trampoline, which calls
//! `trampoline_dispatch`: it takes, from the current task's list of active
//! instances (newest first), every instance that replaced this very stack
//! slot — several kretprobes on one function share one trampoline pass — runs
//! their handlers newest first, and resumes at the real return address.
//!
//! What the 2005 design lacked, and this one has:
//! - instances are matched by task *and* stack slot, so tasks, recursion
//!   and interrupts never cross;
//! - the unwinder and [`return_address`](crate::unwind::return_address)
//!   see the real return address, not the trampoline;
//! - a kretprobe shares its function with kprobes, jprobes and other
//!   kretprobes;
//! - unregistering while calls are in flight is safe: they return normally,
//!   their handlers do not run, and the instance memory is reused only
//!   once they are back.
use super::control::{self, Active, Status};
use super::error::KprobeError;
use super::instances::{self, KretprobeInstance, Pool};
use super::probe::{Kprobe, KprobeFlags, ProbeKind, PtRegs};
use super::registry;
use crate::arch::x86::kprobes::trampoline;
use crate::task::{TaskId, MAX_TASKS};
use core::ptr;
use core::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};

/// Most private bytes an instance can hold.
pub const MAX_DATA_SIZE: usize = 4096;
/// CPUs in this kernel.
pub const NR_CPUS: usize = 1;
/// `maxactive` when the user gives 0 or less: Linux's `max(10, 2 * NR_CPUS)`.
pub const DEFAULT_MAXACTIVE: usize = if 2 * NR_CPUS > 10 { 2 * NR_CPUS } else { 10 };

/// What an entry handler decides.
#[must_use]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryAction {
    /// Report this call's return to the handler.
    Report,
    /// Do not report this call's return (Linux: entry handler returned non-zero).
    Skip,
}

/// Runs when the probed function returns: `regs.eax` is the return value,
/// `regs.eip` the real return address (changing either changes the return).
pub type ReturnHandler = fn(&mut KretprobeInstance, &mut PtRegs);
/// Runs at the function's entry, before its return address is replaced.
pub type EntryHandler = fn(&mut KretprobeInstance, &mut PtRegs) -> EntryAction;

/// A function-return probe.
///
/// ```ignore
/// use probe_kernel::kprobes::{register_kretprobe, regs_return_value, Kretprobe,
///     KretprobeInstance, PtRegs, EntryAction};
///
/// fn entry(ri: &mut KretprobeInstance, _regs: &mut PtRegs) -> EntryAction {
///     ri.store(probe_kernel::arch::cpu::rdtsc());
///     EntryAction::Report
/// }
/// fn returned(ri: &mut KretprobeInstance, regs: &mut PtRegs) {
///     let start: u64 = ri.load();
///     probe_kernel::println!("returned {} after {} cycles", regs_return_value(regs),
///         probe_kernel::arch::cpu::rdtsc() - start);
/// }
///
/// static RP: Kretprobe = Kretprobe::new().symbol("my_crate::work")
///     .entry_handler(entry).handler(returned).data_size(8).maxactive(20);
/// register_kretprobe(&RP).expect("kretprobe refused");
/// ```
pub struct Kretprobe {
    /// The entry probe (on the function's first instruction).
    pub kp: Kprobe,
    handler: Option<ReturnHandler>,
    entry_handler: Option<EntryHandler>,
    data_size: usize,
    maxactive: i32,
    missed: AtomicUsize,
    pool: AtomicPtr<Pool>,
}

impl Kretprobe {
    /// A return probe with no location or handlers yet; `maxactive` 0 (the default).
    pub const fn new() -> Self {
        Kretprobe {
            kp: Kprobe::new().with_kind(ProbeKind::Kretprobe),
            handler: None,
            entry_handler: None,
            data_size: 0,
            maxactive: 0,
            missed: AtomicUsize::new(0),
            pool: AtomicPtr::new(ptr::null_mut()),
        }
    }

    /// On the function called `name` (offset 0: return probes go on entries).
    pub const fn symbol(mut self, name: &'static str) -> Self {
        self.kp = self.kp.symbol(name, 0);
        self
    }

    /// On the function at `address`.
    pub const fn address(mut self, address: *const ()) -> Self {
        self.kp = self.kp.address(address);
        self
    }

    /// Sets the return handler.
    pub const fn handler(mut self, handler: ReturnHandler) -> Self {
        self.handler = Some(handler);
        self
    }

    /// Sets the entry handler.
    pub const fn entry_handler(mut self, handler: EntryHandler) -> Self {
        self.entry_handler = Some(handler);
        self
    }

    /// Private bytes per instance (at most [`MAX_DATA_SIZE`]).
    pub const fn data_size(mut self, bytes: usize) -> Self {
        self.data_size = bytes;
        self
    }

    /// How many calls may be active at once; 0 or less means
    /// [`DEFAULT_MAXACTIVE`].
    pub const fn maxactive(mut self, count: i32) -> Self {
        self.maxactive = count;
        self
    }

    /// The number of instances registration allocates.
    pub const fn effective_maxactive(&self) -> usize {
        if self.maxactive <= 0 { DEFAULT_MAXACTIVE } else { self.maxactive as usize }
    }

    /// Calls whose return was not reported for lack of a free instance, or
    /// because the entry probe hit while another probe was being handled.
    pub fn nmissed(&self) -> usize {
        self.missed.load(Ordering::Relaxed) + self.kp.nmissed()
    }

    /// Whether registered and enabled.
    pub fn is_enabled(&self) -> bool {
        self.kp.is_enabled()
    }
}

impl Default for Kretprobe {
    fn default() -> Self {
        Self::new()
    }
}

/// Registers a return probe: allocates its `maxactive` instances, then its
/// entry probe. On error nothing changed.
pub fn register_kretprobe(rp: &'static Kretprobe) -> Result<(), KprobeError> {
    if control::in_probe_context() {
        return Err(KprobeError::InProbeHandler);
    }
    if rp.data_size > MAX_DATA_SIZE {
        return Err(KprobeError::DataTooLarge { max: MAX_DATA_SIZE });
    }
    if !rp.kp.flags().contains(KprobeFlags::GONE) {
        return Err(KprobeError::AlreadyRegistered);
    }
    registry::resolve(&rp.kp)?;
    let pool = instances::create(rp, rp.effective_maxactive(), rp.data_size)
        .ok_or(KprobeError::TableFull("kretprobe instance memory"))?;
    rp.missed.store(0, Ordering::Relaxed);
    rp.pool.store(pool, Ordering::Release);
    rp.kp.owner.store(rp as *const Kretprobe as *mut (), Ordering::Release);
    if let Err(error) = registry::register_kprobe(&rp.kp) {
        rp.pool.store(ptr::null_mut(), Ordering::Release);
        instances::retire(pool);
        return Err(error);
    }
    Ok(())
}

/// Unregisters a return probe. Calls in flight return normally to their
/// callers without running the handler.
pub fn unregister_kretprobe(rp: &'static Kretprobe) -> Result<(), KprobeError> {
    registry::unregister_kprobe(&rp.kp)?;
    let pool = rp.pool.swap(ptr::null_mut(), Ordering::AcqRel);
    if !pool.is_null() {
        instances::retire(pool);
    }
    Ok(())
}

/// Registers every return probe or none.
pub fn register_kretprobes(rps: &[&'static Kretprobe]) -> Result<(), KprobeError> {
    registry::register_all(rps, |rp| register_kretprobe(rp), |rp| {
        let _ = unregister_kretprobe(rp);
    })
}

/// Unregisters every registered return probe in `rps`.
pub fn unregister_kretprobes(rps: &[&'static Kretprobe]) {
    for rp in rps {
        let _ = unregister_kretprobe(rp);
    }
}

/// Enables a disabled return probe (new calls are tracked again).
pub fn enable_kretprobe(rp: &'static Kretprobe) -> Result<(), KprobeError> {
    registry::enable_kprobe(&rp.kp)
}

/// Disables a return probe: new calls are not tracked; calls already in
/// flight still report.
pub fn disable_kretprobe(rp: &'static Kretprobe) -> Result<(), KprobeError> {
    registry::disable_kprobe(&rp.kp)
}

/// The return value in a return handler's registers.
pub fn regs_return_value(regs: &PtRegs) -> u32 {
    regs.eax
}

/// Each task's active instances, newest first.
static ACTIVE: [AtomicPtr<KretprobeInstance>; MAX_TASKS] = [const { AtomicPtr::new(ptr::null_mut()) }; MAX_TASKS];

/// The newest active instance of `task` that replaced `slot`.
#[unsafe(link_section = ".kprobes.text")]
fn find(task: TaskId, slot: usize) -> Option<&'static mut KretprobeInstance> {
    active(task).find(|instance| instance.stack_slot == slot)
}

/// Walks a list of active instances, newest first. Each instance's `next`
/// is read before the instance is yielded, so the caller may put it back
/// into its pool.
struct ActiveList {
    next: *mut KretprobeInstance,
}

impl Iterator for ActiveList {
    type Item = &'static mut KretprobeInstance;
    #[unsafe(link_section = ".kprobes.text")]
    fn next(&mut self) -> Option<Self::Item> {
        // SAFETY: list nodes are live instances (unlinked before they are freed).
        let instance = unsafe { self.next.as_mut()? };
        self.next = instance.next;
        Some(instance)
    }
}

/// `task`'s active instances, newest first (none for an unknown task).
#[unsafe(link_section = ".kprobes.text")]
fn active(task: TaskId) -> ActiveList {
    ActiveList { next: ACTIVE.get(task).map_or(ptr::null_mut(), |head| head.load(Ordering::Acquire)) }
}

/// Removes `instance` from `task`'s active list.
#[unsafe(link_section = ".kprobes.text")]
fn unlink(task: TaskId, instance: &mut KretprobeInstance) {
    let head = &ACTIVE[task];
    if ptr::eq(head.load(Ordering::Acquire), instance) {
        head.store(instance.next, Ordering::Release);
    } else if let Some(previous) = active(task).find(|node| ptr::eq(node.next, instance)) {
        previous.next = instance.next;
    }
    instance.next = ptr::null_mut();
}

/// The entry probe's part of a hit (called by the trap path with the
/// function's registers; interrupts off).
#[unsafe(link_section = ".kprobes.text")]
pub(crate) fn on_entry(probe: &'static Kprobe, regs: &mut PtRegs) {
    // SAFETY: registration stored the owning `&'static Kretprobe`.
    let rp = unsafe { &*(probe.owner.load(Ordering::Acquire) as *const Kretprobe) };
    let pool = rp.pool.load(Ordering::Acquire);
    let Some(instance) = (!pool.is_null()).then(|| instances::get(pool)).flatten() else {
        rp.missed.fetch_add(1, Ordering::Relaxed);
        return;
    };
    let task = crate::task::current_id();
    let slot = regs.esp as usize;
    // SAFETY: at a function's first instruction ESP points at the return address.
    let stacked = unsafe { ptr::read(slot as *const usize) };
    instance.return_address = if stacked == trampoline::address() {
        // Another kretprobe on this function already swapped this call.
        find(task, slot).map_or(stacked, |other| other.return_address)
    } else {
        stacked
    };
    instance.stack_slot = slot;
    instance.task = task;
    if let Some(entry) = rp.entry_handler {
        if entry(instance, regs) == EntryAction::Skip {
            instances::put(instance);
            return;
        }
    }
    // SAFETY: as above; the slot now sends the return to the trampoline.
    unsafe { ptr::write(slot as *mut usize, trampoline::address()) };
    instance.next = ACTIVE[task].load(Ordering::Acquire);
    ACTIVE[task].store(instance, Ordering::Release);
}

/// The newest instance of the call that just returned into the trampoline,
/// whose ESP is now `esp`. A plain `ret` leaves ESP just above the replaced
/// slot, but `ret imm16` (a callee that pops its own arguments, such as the
/// hidden struct-return pointer on i386) leaves it up to 65535 bytes higher:
/// then the returning call is the task's newest instance below `esp`.
#[unsafe(link_section = ".kprobes.text")]
fn returning_instance(task: TaskId, esp: usize) -> Option<&'static mut KretprobeInstance> {
    let plain = esp.wrapping_sub(4);
    if let Some(instance) = find(task, plain) {
        return Some(instance);
    }
    active(task).find(|instance| instance.stack_slot < plain && plain - instance.stack_slot <= 0xffff)
}

/// Called by the trampoline (interrupts off) with the frame it built.
#[unsafe(link_section = ".kprobes.text")]
pub(crate) extern "C" fn trampoline_dispatch(regs: &mut PtRegs) {
    // Probe hits from here on (handlers, or functions this code calls)
    // are reentries: they count misses instead of recursing.
    let outer = control::with(|kcb| {
        let outer = kcb.current;
        kcb.current = Active { status: Status::Handlers, site: ptr::null(), running: ptr::null(), step: Default::default() };
        outer
    });
    let task = crate::task::current_id();
    let Some(first) = returning_instance(task, regs.esp as usize) else {
        let esp = regs.esp;
        crate::println!("\n!!! kretprobe trampoline: no instance for task {task} below esp {esp:#x}");
        crate::fatal::exception(regs);
    };
    let slot = first.stack_slot;
    // Handlers and unwinders see the real return address from the start.
    regs.eip = first.return_address as u32;
    while let Some(instance) = find(task, slot) {
        unlink(task, instance);
        if let Some(rp) = instance.kretprobe() {
            if let Some(handler) = rp.handler {
                control::with(|kcb| kcb.current.running = &rp.kp);
                handler(instance, regs);
            }
        }
        instances::put(instance);
    }
    control::with(|kcb| kcb.current = outer);
}

/// The real return address for a stack slot holding the trampoline's
/// address (for the unwinder); other values are returned unchanged.
#[unsafe(link_section = ".kprobes.text")]
pub fn resolve_return_address(slot: usize, value: usize) -> usize {
    if value != trampoline::address() {
        return value;
    }
    find(crate::task::current_id(), slot).map_or(value, |instance| instance.return_address)
}

/// For the unwinder: the real return address of the call that a trap caught
/// inside the trampoline before its dispatcher ran (`eip` between the
/// trampoline's entry and its call to the dispatcher, `esp` the interrupted
/// ESP, `frame_at` the trap frame's own address). That call's instance is
/// still active: the newest one of this task whose slot lies between the
/// trap frame (calls made by the trap's own handlers have slots below it)
/// and what the trampoline can have pushed so far above `esp`. `None` if
/// `eip` is elsewhere or no instance matches.
#[unsafe(link_section = ".kprobes.text")]
pub fn resolve_trampoline_trap(eip: usize, esp: usize, frame_at: usize) -> Option<usize> {
    if !(trampoline::address()..trampoline::dispatch_return_site()).contains(&eip) {
        return None;
    }
    // Pushed by the trampoline before its call: a trap frame and its address.
    let highest = esp + crate::arch::x86::trap::FRAME_SIZE + 4;
    active(crate::task::current_id())
        .find(|instance| instance.stack_slot > frame_at && instance.stack_slot < highest)
        .map(|instance| instance.return_address)
}

/// Whether `address` is where the trampoline's call to the dispatcher
/// returns (the unwinder continues through the trampoline's frame).
pub fn is_dispatcher_return_site(address: usize) -> bool {
    address == trampoline::dispatch_return_site()
}

/// A task exited: its active instances go back to their pools.
pub fn task_exited(task: TaskId) {
    if task >= MAX_TASKS {
        return;
    }
    crate::arch::cpu::without_interrupts(|| {
        let list = ActiveList { next: ACTIVE[task].swap(ptr::null_mut(), Ordering::AcqRel) };
        list.for_each(instances::put);
    });
}

/// Active instances of `task` (for tests and the shell).
pub fn active_instances(task: TaskId) -> usize {
    crate::arch::cpu::without_interrupts(|| active(task).count())
}

/// Kretprobe pools unregistered but still waiting for in-flight calls.
pub fn retired_pools() -> usize {
    instances::retired_pools()
}
