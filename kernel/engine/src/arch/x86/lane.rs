//! Pieces of assembly the fast lanes share, as `naked_asm!` template
//! strings: each lane (`fastpath`, `optprobe`, `trampoline`) finds this
//! CPU's control block and takes it in the same few instructions, and the
//! lanes that build their own frames leave them the same way, so these are
//! written once, here.
//!
//! The lanes ask the host for the current CPU and task with a call
//! ([`query!`]), six bytes long. For a host whose `host!` promises both at
//! fixed GS offsets (`per_cpu_gs`), [`inline_queries`] rewrites each such
//! call at [`init`](crate::init) into the load itself, `mov eax, gs:[n]`,
//! also six bytes: the Linux way (`alternatives`) of specializing generic
//! code to the machine once, at boot.
use crate::host;

/// A call of the host's lane query `$query` (the template operand
/// `current_cpu` or `current_task`): result in EAX, ECX and EDX clobbered.
/// The call is `call rel32` behind a DS prefix, six bytes, at the global
/// label `$label`, which `query_sites` lists, so that [`inline_queries`]
/// can rewrite it as a GS load.
macro_rules! query {
    ($query:literal, $label:literal) => {
        concat!(".global ", $label, "\n", $label, ":\n", ".byte 0x3e\n", "call {", $query, "}")
    };
}

/// A call of the host's timestamp (template operand `timestamp`): the
/// stamp in EDX:EAX, ECX clobbered. The call is `call rel32`, five bytes,
/// at the global label `$label`, which `timestamp_sites` lists, so that
/// [`inline_timestamps`] can rewrite it as `rdtsc` and a 3-byte no-op.
macro_rules! timestamp {
    ($label:literal) => {
        concat!(".global ", $label, "\n", $label, ":\n", "call {timestamp}")
    };
}

/// This CPU's control block, taken if idle: asks for the CPU (a
/// [`query!`] at `$label`), leaves register `$block` at the block's state
/// byte (`control::layout::STATE`, loaded from `control::STATE_BYTES`) and
/// sets the byte's bit 0 with `bts`, jumping to `$busy` (a local label,
/// such as "7f") if it was set. Every tag but idle's is odd (see
/// `control::State`), so an idle block becomes `Handlers` and a busy one
/// is left as it was. The lane must then fill in `Handlers` with
/// [`run_probe!`] before anything can look at the block. Clobbers EAX, ECX
/// and EDX. The template's operands must include `current_cpu` and
/// `state_bytes`.
macro_rules! take_idle_block_or {
    ($block:literal, $busy:literal, $label:literal) => {
        concat!(
            $crate::arch::imp::lane::query!("current_cpu", $label),
            "\n",
            "mov ",
            $block,
            ", [{state_bytes} + eax * 4]\n",
            "bts dword ptr [",
            $block,
            "], 0\n",
            "jc ",
            $busy
        )
    };
}

/// Makes the block at `$block` (a register), just taken by
/// [`take_idle_block_or!`], run the probe named by `$probe` (a register)
/// for the site named by `$site` (a register, or 0 for a kretprobe's
/// return): `State::Handlers`, as `ControlBlock::begin_hit` and
/// `begin_return_handlers` set it. Operands: `handlers_site`,
/// `handlers_running`.
macro_rules! run_probe {
    ($block:literal, $site:literal, $probe:literal) => {
        concat!(
            "mov dword ptr [",
            $block,
            " + {handlers_site}], ",
            $site,
            "\n",
            "mov [",
            $block,
            " + {handlers_running}], ",
            $probe
        )
    };
}

/// Leaves a lane whose `PtRegs` frame (at ESP) the engine built itself: if
/// no handler moved its ESP, restores it and returns with `iretd`; else
/// through the host's trap exit (`probe_engine_trap_return`), which moves
/// the frame to end at the new ESP first. The expected ESP is computed from
/// ESP (an entry routine keeps only EBX and ESI, see `EntryLane`).
/// Operands: `size` (the frame's) and `esp` (its `esp` field's offset).
macro_rules! restore_own_frame {
    () => {
        concat!(
            "lea ecx, [esp + {size}]\n",
            "cmp [esp + {esp}], ecx\n",
            "jne probe_engine_trap_return\n",
            "popad\n",
            "add esp, 8\n", // vector, error code
            "iretd"
        )
    };
}

pub(crate) use {query, restore_own_frame, run_probe, take_idle_block_or, timestamp};

/// Every [`query!`] in the lanes: its label, and whether it asks for the
/// CPU (else the task).
macro_rules! query_sites {
    ($($label:ident: $cpu:literal),* $(,)?) => {
        /// The lanes' query calls (see [`query!`]): (address, asks for the CPU).
        fn query_sites() -> [(usize, bool); [$($cpu),*].len()] {
            unsafe extern "C" {
                $(static $label: u8;)*
            }
            [$((&raw const $label as usize, $cpu)),*]
        }
    };
}
query_sites! {
    probe_engine_query_int3_fast: true,
    probe_engine_query_int3_step: true,
    probe_engine_query_debug_fast: true,
    probe_engine_query_optprobe: true,
    probe_engine_query_trampoline_task: false,
    probe_engine_query_trampoline_cpu: true,
    probe_engine_query_kretprobe_entry: false,
    probe_engine_query_kretprobe_lean_cpu: true,
    probe_engine_query_kretprobe_lean_task: false,
}

/// Whether [`inline_queries`] made every lane query a GS load.
static INLINED: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

/// Rewrites every lane query as a GS load when the host promised its CPU
/// and task at fixed GS offsets (`host!(…, unsafe per_cpu_gs: …)`), and
/// only while this CPU is the only one running (no CPU can be executing a
/// lane while its bytes change; with several online the calls stay, which
/// is only slower). From [`init`](crate::init) only, after the queries
/// were checked against the host's methods.
pub(crate) fn inline_queries() {
    let Some(offsets) = host::per_cpu_gs() else { return };
    if host::online_cpus() != 1 {
        return;
    }
    for (site, cpu) in query_sites() {
        let (query, offset) = if cpu {
            (host::__probe_engine_lane_current_cpu as *const () as usize, offsets.cpu)
        } else {
            (host::__probe_engine_lane_current_task as *const () as usize, offsets.task)
        };
        let mut load = [0x65, 0xa1, 0, 0, 0, 0]; // mov eax, gs:[moffs32]
        load[2..].copy_from_slice(&(offset as u32).to_le_bytes());
        // SAFETY: a query site (`query!`): `ds call` of the query, and the
        // load has its effect on what the lane uses (EAX; it clobbers less).
        unsafe { replace_call(site, 1, query, load) };
    }
    INLINED.store(true, core::sync::atomic::Ordering::Relaxed);
}

/// Replaces the lane call at `site` (`prefixes` bytes of prefixes, then
/// `call rel32` to `callee`, `N` bytes in all, which it checks) with
/// `with`. From [`init`](crate::init) only, this CPU the only one online.
///
/// # Safety
/// `site` must be a label the lanes define in front of such a call, in
/// `.kprobes.text`, and `with` must be whole instructions with the call's
/// effect on everything the lane uses after it.
unsafe fn replace_call<const N: usize>(site: usize, prefixes: usize, callee: usize, with: [u8; N]) {
    // SAFETY: `site` starts `N` bytes of the engine's text (the caller's
    // contract).
    let current = unsafe { core::ptr::read(site as *const [u8; N]) };
    let mut call = [0x3e; N]; // (the prefix the lanes use: `ds`)
    call[prefixes] = 0xe8;
    call[prefixes + 1..].copy_from_slice(&(callee.wrapping_sub(site + N) as u32).to_le_bytes());
    assert_eq!(current, call, "lane call at {site:#x} is not the one the lanes emit");
    // SAFETY: one whole instruction of the engine's own lane code is
    // replaced by others of the same length and effect (the caller's
    // contract), while this is the only CPU online and it is not running a
    // lane (it is in `init`): no CPU can be executing the bytes as they
    // change. This is the one write `Host::text_poke` allows outside probe
    // sites.
    unsafe { host::text_poke(site, &with) }.expect("the engine's text is kernel text");
}

/// How many of the lanes' host queries are GS loads rather than calls
/// (all of them on a `per_cpu_gs` host whose engine was initialized with
/// one CPU online; none otherwise).
pub fn inlined_queries() -> usize {
    if INLINED.load(core::sync::atomic::Ordering::Relaxed) { query_sites().len() } else { 0 }
}

/// Every [`timestamp!`] in the lanes.
fn timestamp_sites() -> [usize; 2] {
    unsafe extern "C" {
        static probe_engine_timestamp_kretprobe_entry: u8;
        static probe_engine_timestamp_kretprobe_lean: u8;
    }
    [
        &raw const probe_engine_timestamp_kretprobe_entry as usize,
        &raw const probe_engine_timestamp_kretprobe_lean as usize,
    ]
}

/// Whether [`inline_timestamps`] made every lane timestamp an `rdtsc`.
static INLINED_TIMESTAMPS: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

/// Rewrites every lane call of the host's timestamp as `rdtsc` when the
/// host says its timestamp is the counter (`Host::TIMESTAMP_IS_RDTSC`),
/// and only while this CPU is the only one running, as
/// [`inline_queries`]. From [`init`](crate::init) only.
pub(crate) fn inline_timestamps() {
    if !host::timestamp_is_rdtsc() || host::online_cpus() != 1 {
        return;
    }
    let timestamp = host::__probe_engine_host_timestamp as *const () as usize;
    for site in timestamp_sites() {
        // SAFETY: a timestamp site (`timestamp!`): `call` of the timestamp,
        // and `rdtsc` leaves the stamp in EDX:EAX as the call does (and
        // clobbers less); then `nop dword ptr [eax]`.
        unsafe { replace_call(site, 0, timestamp, [0x0f, 0x31, 0x0f, 0x1f, 0x00]) };
    }
    INLINED_TIMESTAMPS.store(true, core::sync::atomic::Ordering::Relaxed);
}

/// How many of the lanes' timestamp calls are `rdtsc` (all of them on a
/// host whose timestamp is the counter and whose engine was initialized
/// with one CPU online; none otherwise).
pub fn inlined_timestamps() -> usize {
    if INLINED_TIMESTAMPS.load(core::sync::atomic::Ordering::Relaxed) { timestamp_sites().len() } else { 0 }
}
