//! The run command's default demo: probes at work, in the spirit of Linux's
//! `samples/kprobes/kprobe_example.c` and `kretprobe_example.c`.
//!
//! It is written against the public API only, exactly as a user's kernel
//! code would be: four tasks, spread over the online CPUs (task `i` pinned
//! to CPU `i mod N`), call two ordinary kernel functions; a kprobe
//! on one prints the registers at each hit (pre and post handler), a
//! kretprobe on the other reports each call's return value and duration
//! (the entry timestamp lives in the instance's private data), and a
//! summary gives hits and misses, and hits per CPU. Every line says which
//! CPU it came from.
use crate::arch::cpu::rdtsc;
use crate::arch::x86::percpu::MAX_CPUS;
use crate::kprobes::{
    CallingConvention, EntryAction, Kprobe, KprobeFlags, Kretprobe, KretprobeInstance, PreAction, PtRegs,
    register_kprobe, register_kretprobe, regs_get_kernel_argument, regs_return_value, unregister_kprobe,
    unregister_kretprobe,
};
use crate::println;
use core::sync::atomic::{AtomicUsize, Ordering};
use zerocopy::{FromBytes, Immutable, IntoBytes};

/// Calls per task.
pub const CALLS_PER_TASK: usize = 3;
/// Tasks calling the probed functions.
pub const TASKS: usize = 4;

/// A checksum over a few bytes: the function the kprobe watches.
/// `extern "C"` so probes know where its argument is (see
/// [`CallingConvention`]).
#[inline(never)]
pub extern "C" fn checksum(seed: u32) -> u32 {
    let mut sum = core::hint::black_box(seed);
    for byte in 0..64u32 {
        sum = sum.rotate_left(5) ^ byte.wrapping_mul(0x9e37_79b9);
    }
    sum
}

/// Work whose length depends on `n`, sleeping in the middle so calls from
/// different tasks overlap: the function the kretprobe watches.
#[inline(never)]
pub extern "C" fn slow_square(n: u32) -> u32 {
    crate::task::sleep(5 + n as u64 % 3);
    core::hint::black_box(n) * n
}

/// Taking the probed functions' addresses pins their `extern "C"`
/// convention: LLVM may otherwise give a function that is only ever called
/// directly a register convention of its own (it did: `slow_square`
/// received its argument in ECX), and the probes read the stack.
#[used]
static PINNED_CONVENTION: [extern "C" fn(u32) -> u32; 2] = [checksum, slow_square];

static PRE_HITS: AtomicUsize = AtomicUsize::new(0);
static POST_HITS: AtomicUsize = AtomicUsize::new(0);
static RETURNS: AtomicUsize = AtomicUsize::new(0);
/// Kprobe hits per CPU.
static HITS_BY_CPU: [AtomicUsize; MAX_CPUS] = [const { AtomicUsize::new(0) }; MAX_CPUS];

/// The CPU a handler runs on (handlers run with interrupts off, so it
/// cannot change under them).
fn this_cpu() -> usize {
    crate::arch::x86::percpu::cpu_id()
}

fn handler_pre(probe: &Kprobe, regs: &mut PtRegs) -> PreAction {
    PRE_HITS.fetch_add(1, Ordering::Relaxed);
    HITS_BY_CPU[this_cpu()].fetch_add(1, Ordering::Relaxed);
    let seed = regs_get_kernel_argument(regs, 0, CallingConvention::C).unwrap_or(u32::MAX);
    println!(
        "  [cpu {}] <checksum> pre_handler: task {}, seed = {seed}, p->addr = {:#x}, eip = {:#x}, esp = {:#x}, eflags = {:#x}",
        this_cpu(),
        crate::task::current_id(),
        probe.addr().unwrap_or(0),
        regs.eip,
        regs.esp,
        regs.eflags
    );
    PreAction::Continue
}

fn handler_post(_probe: &Kprobe, regs: &mut PtRegs) {
    POST_HITS.fetch_add(1, Ordering::Relaxed);
    println!("  [cpu {}] <checksum> post_handler: eip = {:#x}, eflags = {:#x}", this_cpu(), regs.eip, regs.eflags);
}

static CHECKSUM_PROBE: Kprobe =
    Kprobe::new().symbol("probe_kernel::demo::checksum", 0).pre_handler(handler_pre).post_handler(handler_post);

/// What the kretprobe's entry handler keeps for the return (the instance's
/// private data; zerocopy's derives check it has no padding and that any
/// bytes are a valid value).
#[derive(Clone, Copy, FromBytes, IntoBytes, Immutable)]
#[repr(C)]
struct CallStart {
    timestamp: u64,
    argument: u32,
    _reserved: u32,
}

fn entry_handler(instance: &mut KretprobeInstance, regs: &mut PtRegs) -> EntryAction {
    let argument = regs_get_kernel_argument(regs, 0, CallingConvention::C).unwrap_or(u32::MAX);
    instance.store(CallStart { timestamp: rdtsc(), argument, _reserved: 0 });
    EntryAction::Report
}

fn return_handler(instance: &mut KretprobeInstance, regs: &mut PtRegs) {
    let start: CallStart = instance.load();
    if RETURNS.fetch_add(1, Ordering::Relaxed) == 0 {
        // The first report shows the mechanism once.
        println!(
            "  [cpu {}] how this report got here: at slow_square's entry, the stack slot {:#x} held the return \
             address {}; the kretprobe swapped it for kretprobe_trampoline ({:#x}), so slow_square's `ret` \
             jumped there, and the trampoline ran this handler before returning to the real address",
            this_cpu(),
            instance.stack_slot(),
            crate::symbols::DescribeReturn(instance.ret_addr()),
            crate::arch::x86::kprobes::trampoline::address()
        );
    }
    println!(
        "  [cpu {}] slow_square({}) returned {} and took {} cycles (task {}, back to {})",
        this_cpu(),
        start.argument,
        regs_return_value(regs),
        rdtsc() - start.timestamp,
        instance.task(),
        crate::symbols::DescribeReturn(instance.ret_addr())
    );
}

static SQUARE_PROBE: Kretprobe = Kretprobe::new()
    .symbol("probe_kernel::demo::slow_square")
    .entry_handler(entry_handler)
    .handler(return_handler)
    .data_size(core::mem::size_of::<CallStart>())
    .maxactive(2);

fn worker(first: usize) -> usize {
    let mut total: usize = 0;
    for i in 0..CALLS_PER_TASK {
        total = total.wrapping_add(checksum((first * 10 + i) as u32) as usize);
        total = total.wrapping_add(slow_square((first + i) as u32) as usize);
    }
    total
}

/// What the demo observed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Summary {
    /// Pre-handler runs on `checksum`.
    pub kprobe_hits: usize,
    /// Post-handler runs on `checksum`.
    pub kprobe_post_hits: usize,
    /// `checksum`'s kprobe `nmissed`.
    pub kprobe_missed: usize,
    /// Return-handler runs on `slow_square`.
    pub kretprobe_reports: usize,
    /// `slow_square`'s kretprobe `nmissed` (calls beyond `maxactive` = 2).
    pub kretprobe_missed: usize,
    /// Calls of each function.
    pub calls: usize,
}

/// The first `N` bytes of kernel text at `address`, as they are now.
fn text_bytes<const N: usize>(address: usize) -> [u8; N] {
    core::array::from_fn(|i| crate::testing::text_byte(address + i))
}

/// `55 89 e5 ...`.
struct Hex<const N: usize>([u8; N]);

impl<const N: usize> core::fmt::Display for Hex<N> {
    fn fmt(&self, f: &mut core::fmt::Formatter) -> core::fmt::Result {
        for (i, byte) in self.0.iter().enumerate() {
            write!(f, "{}{byte:02x}", if i == 0 { "" } else { " " })?;
        }
        Ok(())
    }
}

/// How hits at a probe run its instruction, and why, from its flags.
fn how_hits_run(flags: KprobeFlags) -> &'static str {
    if flags.contains(KprobeFlags::OPTIMIZED) {
        "jump-optimized: its first bytes are a `jmp` to a detour that saves the registers, calls the \
         handler and runs a relocated copy of the displaced instructions: no trap at all"
    } else if flags.contains(KprobeFlags::BOOSTED) {
        "boosted: an int3 traps, the handler runs, and the hit resumes in a copy of the instruction \
         followed by a jump back: one trap"
    } else {
        "single-stepped: a post handler must run after the instruction, so each hit runs a copy of it \
         with TF set and takes a debug trap after it (two traps; no boost, no jump)"
    }
}

/// Runs the demo and prints as it goes; returns the counts.
pub fn run() -> Summary {
    for counter in [&PRE_HITS, &POST_HITS, &RETURNS].into_iter().chain(&HITS_BY_CPU) {
        counter.store(0, Ordering::Relaxed);
    }
    let cpus = crate::arch::x86::smp::online_cpus();
    println!("\n== kprobe on probe_kernel::demo::checksum (like samples/kprobes/kprobe_example.c) ==");
    println!("== kretprobe on probe_kernel::demo::slow_square, maxactive 2 (like kretprobe_example.c) ==");
    let (checksum_at, square_at) = (checksum as *const () as usize, slow_square as *const () as usize);
    let (checksum_before, square_before) = (text_bytes::<6>(checksum_at), text_bytes::<6>(square_at));
    if let Err(error) = register_kprobe(&CHECKSUM_PROBE) {
        println!("register_kprobe failed: {error}");
    }
    if let Err(error) = register_kretprobe(&SQUARE_PROBE) {
        println!("register_kretprobe failed: {error}");
    }
    println!("checksum's first bytes:    {} before, {} armed", Hex(checksum_before), Hex(text_bytes::<6>(checksum_at)));
    println!("  its kprobe is {}", how_hits_run(CHECKSUM_PROBE.flags()));
    println!("slow_square's first bytes: {} before, {} armed", Hex(square_before), Hex(text_bytes::<6>(square_at)));
    println!("  its kretprobe's entry probe is {}", how_hits_run(SQUARE_PROBE.kp.flags()));
    println!(
        "Planted kprobe at {:#x}, kretprobe at {:#x}; {TASKS} tasks x {CALLS_PER_TASK} calls each, on {cpus} CPU{}",
        CHECKSUM_PROBE.addr().unwrap_or(0),
        SQUARE_PROBE.kp.addr().unwrap_or(0),
        if cpus == 1 { "" } else { "s" }
    );
    let mut ids = [0; TASKS];
    for (i, id) in ids.iter_mut().enumerate() {
        *id = crate::task::spawn_on(i % cpus, "demo", worker, i + 1).expect("demo task");
    }
    for id in ids {
        crate::task::join(id);
    }
    let summary = Summary {
        kprobe_hits: PRE_HITS.load(Ordering::Relaxed),
        kprobe_post_hits: POST_HITS.load(Ordering::Relaxed),
        kprobe_missed: CHECKSUM_PROBE.nmissed(),
        kretprobe_reports: RETURNS.load(Ordering::Relaxed),
        kretprobe_missed: SQUARE_PROBE.nmissed(),
        calls: TASKS * CALLS_PER_TASK,
    };
    let _ = unregister_kprobe(&CHECKSUM_PROBE);
    let _ = unregister_kretprobe(&SQUARE_PROBE);
    println!("\nsummary:");
    println!(
        "  kprobe    checksum:    {} calls, {} hits (pre), {} post, {} missed",
        summary.calls, summary.kprobe_hits, summary.kprobe_post_hits, summary.kprobe_missed
    );
    println!(
        "  kretprobe slow_square: {} calls, {} returns reported, {} missed (maxactive 2)",
        summary.calls, summary.kretprobe_reports, summary.kretprobe_missed
    );
    crate::print!("  kprobe hits by CPU:");
    for (cpu, hits) in HITS_BY_CPU.iter().enumerate().take(cpus) {
        crate::print!(" cpu{cpu} {}", hits.load(Ordering::Relaxed));
    }
    println!();
    if summary.kretprobe_missed > 0 {
        println!(
            "  why {} slow_square calls were missed: each running call holds one of the kretprobe's \
             maxactive = 2 instances until it returns; {TASKS} tasks sleep inside slow_square at once, so a \
             call that finds both taken runs unprobed and counts in nmissed (raise maxactive to catch them)",
            summary.kretprobe_missed
        );
    }
    if summary.kprobe_missed > 0 {
        println!(
            "  why {} checksum hits were missed: a hit while this CPU was already handling a probe \
             (a handler called probed code) runs the instruction without handlers and counts in nmissed",
            summary.kprobe_missed
        );
    }
    println!("\nThe same at the console (make run ARGS=shell), as Linux's tracefs does it:");
    println!("  cd /sys/kernel/tracing");
    println!("  echo 'p:demo_in probe_kernel::demo::checksum seed=$arg1' > kprobe_events");
    println!("  echo 'r2:demo_out probe_kernel::demo::slow_square ret=$retval' >> kprobe_events");
    println!("  echo 1 > events/kprobes/enable");
    println!("  demo");
    println!("  cat trace");
    println!("  cat kprobe_profile");
    println!("  cat /sys/kernel/debug/kprobes/list");
    summary
}

#[cfg(test)]
mod tests {
    use alloc::vec::Vec;

    /// The number after `key` in `line`, up to the next non-digit.
    fn number_after(line: &str, key: &str) -> u32 {
        let start = line.find(key).expect(key) + key.len();
        let digits: &str = &line[start..];
        let end = digits.find(|c: char| !c.is_ascii_digit()).unwrap_or(digits.len());
        digits[..end].parse().expect("a number")
    }

    #[test_case]
    fn demo_prints_the_arguments_the_probed_functions_received() {
        let mut buffer = [0u8; 8192];
        crate::console::capture_begin();
        let summary = super::run();
        let text = core::str::from_utf8(crate::console::capture_end(&mut buffer)).expect("text");
        assert!(text.contains("(maxactive 2)\n  kprobe hits by CPU: cpu0 "), "the capture holds the whole demo");
        assert!(text.ends_with("cat /sys/kernel/debug/kprobes/list\n"), "the capture holds the whole demo");
        // The teaching: the bytes before and after arming, the way each
        // probe runs, the return-address swap once, each miss explained.
        let bytes = text.lines().find(|l| l.starts_with("checksum's first bytes:")).expect("bytes line");
        let before = &bytes[bytes.find(":").unwrap() + 1..bytes.find(" before").unwrap()].trim();
        let armed = &bytes[bytes.find("before, ").unwrap() + 8..bytes.find(" armed").unwrap()];
        assert_eq!(&armed[..2], "cc", "{bytes}");
        assert_eq!(before[2..], armed[2..], "only the first byte changes: {bytes}");
        assert!(text.contains("  its kprobe is single-stepped: a post handler must run after the instruction"));
        assert_eq!(text.matches("how this report got here: at slow_square's entry, the stack slot").count(), 1);
        assert_eq!(summary.kretprobe_missed > 0, text.contains("slow_square calls were missed: each running call"));
        assert!(text.contains("echo 1 > events/kprobes/enable\n  demo\n"));
        let mut seeds: Vec<u32> =
            text.lines().filter(|l| l.contains("<checksum> pre_handler")).map(|l| number_after(l, "seed = ")).collect();
        seeds.sort();
        let mut expected: Vec<u32> =
            (1..=super::TASKS as u32).flat_map(|first| (0..3).map(move |i| first * 10 + i)).collect();
        expected.sort();
        assert_eq!(seeds, expected, "checksum's seeds as the workers passed them");
        let returns: Vec<(u32, u32)> = text
            .lines()
            .filter(|l| l.contains("] slow_square("))
            .map(|l| (number_after(l, "slow_square("), number_after(l, ") returned ")))
            .collect();
        assert_eq!(returns.len(), summary.kretprobe_reports);
        for (argument, value) in &returns {
            assert!((1..=6).contains(argument), "slow_square({argument}): the workers pass 1..=6");
            assert_eq!(*value, argument * argument, "slow_square({argument}) returned {value}");
        }
    }

    #[test_case]
    fn demo_counts_every_call_exactly() {
        let summary = super::run();
        assert_eq!(summary.kprobe_hits, summary.calls);
        assert_eq!(summary.kprobe_post_hits, summary.calls);
        assert_eq!(summary.kprobe_missed, 0);
        assert_eq!(summary.kretprobe_reports + summary.kretprobe_missed, summary.calls);
        assert!(summary.kretprobe_missed > 0, "4 overlapping tasks exceed maxactive 2");
    }
}
