//! The kretprobe return trampoline.
//!
//! A kretprobe's entry handler replaces the probed function's stacked return
//! address with [`kretprobe_trampoline`]'s. The function's `ret` lands here
//! with ESP just above that slot. The trampoline builds the same
//! [`PtRegs`] a trap would (so handlers get an ordinary `PtRegs`), handles
//! the common return in an assembly lane or calls the generic dispatcher,
//! with interrupts off, and leaves with `iretd` to the EIP the lane or
//! dispatcher wrote (the real return address), with every register and
//! EFLAGS as the function left them. The lane restores its own frame; a
//! return whose handler moved ESP, and the dispatcher's, leave through the
//! host's trap exit (`probe_engine_trap_return`), which honours that.
//!
//! ```text
//!   slot + 4 ->  (caller's stack)          = frame.esp
//!                EFLAGS   pushfd           (then cli: the frame keeps the function's IF)
//!                CS
//!                EIP      0, then the real return address (dispatcher)
//!                error    0
//!                vector   KRETPROBE_VECTOR
//!                pushad   EAX..EDI
//!        ESP ->  &PtRegs argument
//! ```
use super::lane;
use super::regs::{FRAME_SIZE, PtRegs};
use crate::control::layout as cpu;
use crate::instances::layout as instance;
use crate::kretprobe::layout as kretprobe;
use crate::probe::Kprobe;
use core::mem::offset_of;

/// The vector number a trampoline frame carries (no real vector has it).
pub const KRETPROBE_VECTOR: u32 = 0xffff_ffff;

/// Where probed functions return to while a kretprobe instance is active.
///
/// After the frame, the common return takes a lane in assembly: the
/// task's newest instance is this call's (its slot is the one the `ret`
/// popped) and the only one of it, its kretprobe is still registered, and
/// this CPU is handling no probe. The lane then does what
/// `trampoline_dispatch` would: the control block runs the kretprobe, EIP
/// becomes the real return address, the handler runs (called directly: the
/// engine keeps it `fastcall`), the instance is unlinked, the block is
/// idle again and the instance goes back to its pool with one `lock bts`
/// (its bit in the pool's free set), the lane's last access to the
/// instance or the pool. It then restores the frame and returns with
/// `iretd`, or, if the handler moved ESP, leaves through the host's exit.
/// Every other return (several kretprobes on one call, a callee that
/// popped its arguments, a reentry, an unregistered kretprobe, a lost
/// return) goes to `trampoline_dispatch` with nothing changed.
///
/// # Safety
/// Never called: only reached by a `ret` whose stacked return address the
/// engine replaced, with ESP just above that slot.
#[unsafe(naked)]
#[unsafe(link_section = ".kprobes.text")]
pub unsafe extern "C" fn kretprobe_trampoline() {
    core::arch::naked_asm!(
        "pushfd",
        "cli",        // after pushfd: the frame keeps the function's IF
        ".byte 0x0e", // push cs, 32-bit (the assembler's `push cs` is 16-bit)
        "push 0",
        "push 0",
        "push -1", // KRETPROBE_VECTOR
        "pushad",
        "add dword ptr [esp + {esp}], {above}", // ESP as it was before the pushes
        "cld",
        // The task's newest instance, for the slot the `ret` popped...
        lane::query!("current_task", "probe_engine_query_trampoline_task"),
        "cmp eax, {tasks}",
        "jae 8f",
        "lea edi, [{active} + eax * 4]",
        "mov ebx, [edi]",
        "test ebx, ebx",
        "jz 8f",
        "lea ecx, [esp + {size} - 4]", // the slot: just below the frame's ESP
        "cmp ecx, [ebx + {slot}]",
        "jne 8f",
        // ...the only one of this call (else several kretprobes' handlers)...
        "mov edx, [ebx + {next}]",
        "test edx, edx",
        "jz 2f",
        "cmp ecx, [edx + {slot}]",
        "je 8f",
        "2:",
        // ...on a CPU handling no probe (its block taken, in ESI), of a
        // registered kretprobe (else the block is given back).
        lane::take_idle_block_or!("esi", "8f", "probe_engine_query_trampoline_cpu"),
        "mov eax, [ebx + {pool}]",
        "mov eax, [eax + {owner}]",
        "test eax, eax",
        "jz 7f",
        // Taken: the block runs the kretprobe (begin_return_handlers, run).
        lane::run_probe!("esi", "0", "eax"), // (a Kretprobe starts with its entry probe)
        // Handlers see the real return address.
        "mov ecx, [ebx + {ret}]",
        "mov [esp + {eip}], ecx",
        // The return handler, if the kretprobe has one (`fastcall`, frame
        // first). The instance stays linked while it runs, so a stack walk
        // from anywhere in the lane up to here resolves the trampoline's
        // slot (`resolve_trampoline_trap`); with the block busy, nothing
        // links another instance to this task meanwhile.
        "mov eax, [eax + {handler}]",
        "test eax, eax",
        "jz 3f",
        "mov ecx, esp", // fastcall: the frame, the instance
        "mov edx, ebx",
        "call eax",
        ".global kretprobe_fast_return_site",
        "kretprobe_fast_return_site:",
        "3:",
        // Unlinked (still the task's newest: see above; a take clears its
        // `next` again); the block idle.
        "mov ecx, [ebx + {next}]",
        "mov [edi], ecx",
        "mov byte ptr [esi], {idle}",
        // Back to the pool: its bit in the pool's free set, addressed from
        // the instance; the last access to the instance and the pool.
        "mov eax, [ebx + {free_bit}]",
        "lock bts dword ptr [ebx], eax",
        lane::restore_own_frame!(),
        // Every other return: the generic dispatcher.
        "7:",
        "mov byte ptr [esi], {idle}",
        "8:",
        "push esp", // the frame's address (push stores ESP as it was)
        "call {dispatch}",
        ".global kretprobe_dispatch_return_site",
        "kretprobe_dispatch_return_site:",
        "add esp, 4",
        "jmp probe_engine_trap_return",
        size = const FRAME_SIZE,
        above = const FRAME_SIZE - offset_of!(PtRegs, vector),
        esp = const offset_of!(PtRegs, esp),
        eip = const offset_of!(PtRegs, eip),
        current_task = sym crate::host::__probe_engine_lane_current_task,
        tasks = const kretprobe::TASKS,
        active = sym crate::kretprobe::ACTIVE,
        slot = const instance::INSTANCE_STACK_SLOT,
        next = const instance::INSTANCE_NEXT,
        ret = const instance::INSTANCE_RETURN_ADDRESS,
        pool = const instance::INSTANCE_POOL,
        free_bit = const instance::INSTANCE_FREE_BIT,
        owner = const instance::POOL_OWNER,
        current_cpu = sym crate::host::__probe_engine_lane_current_cpu,
        state_bytes = sym crate::control::STATE_BYTES,
        idle = const cpu::IDLE,
        handlers_site = const cpu::HANDLERS_SITE,
        handlers_running = const cpu::HANDLERS_RUNNING,
        handler = const kretprobe::HANDLER,
        dispatch = sym crate::kretprobe::trampoline_dispatch,
    );
}
const _: () = assert!(KRETPROBE_VECTOR == -1i32 as u32);

/// The kretprobe entries' take of an instance from the first word of its
/// pool's free set (`FreeSet::take`): the pool in register `$pool`, the
/// instance's address left in register `$instance`; to `$fail` (a local
/// label) with nothing taken if the word is empty. Clobbers EDX. Operands:
/// `words`, `instance_size`, `instances`.
macro_rules! take_instance {
    ($pool:literal, $instance:literal, $fail:literal) => {
        concat!(
            "mov edx, [",
            $pool,
            " + {words}]\n",
            "2:\n",
            "bsf ",
            $instance,
            ", dword ptr [edx]\n", // ZF: the word is empty
            "jz ",
            $fail,
            "\n",
            "lock btr dword ptr [edx], ",
            $instance,
            "\n",
            "jnc 2b\n", // another CPU took it first: look again
            "imul ",
            $instance,
            ", ",
            $instance,
            ", {instance_size}\n",
            "add ",
            $instance,
            ", [",
            $pool,
            " + {instances}]"
        )
    };
}

/// The kretprobe entries' filling of the instance in register `$instance`
/// (`kretprobe::on_entry`'s): the task (EAX), the slot (ECX, ESP at the
/// function's first instruction) and the real return address in it; then
/// linked first on the task's list, the slot sending the return to the
/// trampoline, and stamped (a [`lane::timestamp!`] at `$label`; nothing
/// reads the entry time before the return, on this CPU with interrupts
/// off). Clobbers EAX, ECX, EDX. Operands: `task`, `slot`, `ret`,
/// `active`, `next`, `trampoline`, `timestamp`, `time`.
macro_rules! fill_and_link {
    ($instance:literal, $label:literal) => {
        concat!(
            "mov [",
            $instance,
            " + {task}], eax\n",
            "mov [",
            $instance,
            " + {slot}], ecx\n",
            "mov edx, [ecx]\n",
            "mov [",
            $instance,
            " + {ret}], edx\n",
            "mov edx, [{active} + eax * 4]\n",
            "mov [",
            $instance,
            " + {next}], edx\n",
            "mov dword ptr [ecx], offset {trampoline}\n",
            "mov [{active} + eax * 4], ",
            $instance,
            "\n",
            lane::timestamp!($label),
            "\n", // EDX:EAX, ECX clobbered
            "mov [",
            $instance,
            " + {time}], eax\n",
            "mov [",
            $instance,
            " + {time} + 4], edx"
        )
    };
}

/// A kretprobe's entry as the fast lanes call it (`Kprobe::entry`):
/// `fastcall`, the entry's frame in ECX and the kretprobe's entry probe in
/// EDX; returns false (an entry never redirects).
///
/// The common entry, in assembly, for a kretprobe with no entry handler
/// (one with an entry handler has the Rust entry as its entry routine): a
/// call no other kretprobe of the function has swapped yet, a known task and a free
/// instance in the first word of the pool's free set. It does what
/// `kretprobe::on_entry` does: takes the instance (`lock btr`, the
/// `FreeSet` take), fills in the real return address, the slot, the task
/// and the entry time, links it first on the task's list and puts the
/// trampoline's address in the slot. Any other entry goes, with nothing
/// changed, to the Rust entry (`handler::call_kretprobe_entry`), which
/// also counts the misses.
///
/// # Safety
/// Only for the fast lanes (interrupts off, the control block running the
/// probe), with `probe` a registered kretprobe's entry probe and `regs` its
/// hit's frame at the function's first instruction.
#[unsafe(naked)]
#[unsafe(link_section = ".kprobes.text")]
pub unsafe extern "fastcall" fn kretprobe_entry(regs: &mut PtRegs, probe: &'static Kprobe) -> bool {
    core::arch::naked_asm!(
        // Only EBX and ESI need keeping (see `EntryLane`): EDI holds the
        // frame, EBP the pool and then the instance.
        "mov edi, ecx",
        "mov ebp, [edx + {kp_owner}]", // the Kretprobe of the entry probe
        "mov ebp, [ebp + {rp_pool}]",
        "test ebp, ebp",
        "jz 9f",
        // The slot (ESP at the first instruction) must hold a real return.
        "mov ecx, [edi + {esp}]",
        "cmp dword ptr [ecx], offset {trampoline}",
        "je 9f",
        lane::query!("current_task", "probe_engine_query_kretprobe_entry"), // clobbers EAX, ECX, EDX only
        "cmp eax, {tasks}",
        "jae 8f",
        take_instance!("ebp", "ecx", "8f"),
        "mov ebp, ecx", // this entry's alone until given back
        "mov ecx, [edi + {esp}]",
        fill_and_link!("ebp", "probe_engine_timestamp_kretprobe_entry"),
        "xor eax, eax",
        "ret",
        // Everything else: the Rust entry, with the same arguments. (After
        // the query, the entry probe is found again as the pool's owner:
        // this CPU holds the pool, with interrupts off, so it is not
        // retired; a Kretprobe's address is its entry probe's.)
        "8:",
        "mov edx, [ebp + {pool_owner}]",
        "9:",
        "mov ecx, edi",
        "jmp {rust_entry}",
        kp_owner = const crate::probe::layout::OWNER,
        rp_pool = const kretprobe::POOL,
        pool_owner = const instance::POOL_OWNER,
        esp = const offset_of!(PtRegs, esp),
        trampoline = sym kretprobe_trampoline,
        current_task = sym crate::host::__probe_engine_lane_current_task,
        tasks = const kretprobe::TASKS,
        words = const instance::POOL_WORDS,
        instances = const instance::POOL_INSTANCES,
        instance_size = const instance::INSTANCE_SIZE,
        slot = const instance::INSTANCE_STACK_SLOT,
        ret = const instance::INSTANCE_RETURN_ADDRESS,
        task = const instance::INSTANCE_TASK,
        time = const instance::INSTANCE_ENTRY_TIME,
        timestamp = sym crate::host::__probe_engine_host_timestamp,
        active = sym crate::kretprobe::ACTIVE,
        next = const instance::INSTANCE_NEXT,
        rust_entry = sym crate::handler::call_kretprobe_entry,
    );
}

/// The entry work of a lean kretprobe detour (see `optprobe`'s
/// `kretprobe_detour_template`): called by the detour with only EFLAGS
/// (interrupts off) and `pushad` on the probed function's stack, its
/// record's probe in ESI. All registers are the detour's to clobber (its
/// `popad` restores them); DF is clear, as at any function's entry.
///
/// It does what [`kretprobe_entry`] does, for the same common case, on a
/// CPU handling no probe: no control block is taken, because nothing it
/// runs can hit a probe (interrupts are off and everything it calls is
/// blacklisted), and no `PtRegs` is built, because no handler sees one.
/// Anything else (a busy CPU, a record that is `GONE`, an unknown task, a
/// return address already the trampoline's, an empty first word of the
/// free set) changes nothing and goes back to the detour's start, its slow
/// path, which builds the frame and sends the hit to the dispatcher.
///
/// The probe in the record is a registered kretprobe's entry probe while
/// it is there: unregistration replaces it with `GONE` before retiring the
/// pool, and syncs every CPU in between, which waits for this one (its
/// interrupts are off).
///
/// # Safety
/// Only a lean detour calls it, as above.
#[unsafe(naked)]
#[unsafe(link_section = ".kprobes.text")]
pub unsafe extern "C" fn kretprobe_entry_lean() {
    core::arch::naked_asm!(
        lane::query!("current_cpu", "probe_engine_query_kretprobe_lean_cpu"),
        "mov ebx, [{state_bytes} + eax * 4]",
        "cmp byte ptr [ebx], {idle}",
        "jne 9f",
        "cmp esi, offset {gone}",
        "je 9f",
        "mov ebp, [esi + {kp_owner}]", // the Kretprobe of the entry probe
        "mov ebp, [ebp + {rp_pool}]",
        lane::query!("current_task", "probe_engine_query_kretprobe_lean_task"),
        "cmp eax, {tasks}",
        "jae 9f",
        // The slot (ESP at the function's first instruction), above this
        // call's return address, the pushad and EFLAGS.
        "lea ecx, [esp + 40]",
        "cmp dword ptr [ecx], offset {trampoline}",
        "je 9f",
        take_instance!("ebp", "edi", "9f"),
        fill_and_link!("edi", "probe_engine_timestamp_kretprobe_lean"),
        "ret",
        // Anything else: the detour's slow path, at its start.
        "9:",
        "pop eax",
        "and eax, {align}",
        "jmp eax",
        current_cpu = sym crate::host::__probe_engine_lane_current_cpu,
        state_bytes = sym crate::control::STATE_BYTES,
        idle = const cpu::IDLE,
        gone = sym super::optprobe::GONE,
        kp_owner = const crate::probe::layout::OWNER,
        rp_pool = const kretprobe::POOL,
        current_task = sym crate::host::__probe_engine_lane_current_task,
        tasks = const kretprobe::TASKS,
        trampoline = sym kretprobe_trampoline,
        words = const instance::POOL_WORDS,
        instance_size = const instance::INSTANCE_SIZE,
        instances = const instance::POOL_INSTANCES,
        task = const instance::INSTANCE_TASK,
        slot = const instance::INSTANCE_STACK_SLOT,
        ret = const instance::INSTANCE_RETURN_ADDRESS,
        active = sym crate::kretprobe::ACTIVE,
        next = const instance::INSTANCE_NEXT,
        timestamp = sym crate::host::__probe_engine_host_timestamp,
        time = const instance::INSTANCE_ENTRY_TIME,
        align = const !(crate::slots::DETOUR_SIZE - 1),
    );
}

/// The highest address the trampoline can have pushed to by its call to the
/// dispatcher, when a trap interrupted it with stack pointer `sp`: a frame
/// and its address. (The lane keeps its instance linked until the handler
/// has returned, and passes the handler's arguments in registers, so the
/// frame is all it pushes. After its unlink, the call's own slot lies just
/// beyond: a trap there, an NMI at most, finds no instance and the
/// unwinder shows the trampoline, rather than risk naming the caller's
/// instance, whose slot can be a word further.)
pub fn pushed_before_dispatch(sp: usize) -> usize {
    sp + FRAME_SIZE + 4
}

/// The trampoline's address (what replaced return addresses hold).
pub fn address() -> usize {
    kretprobe_trampoline as *const () as usize
}

/// The return address of the trampoline's call to the dispatcher; the
/// unwinder continues through the trampoline's frame from there. The
/// trampoline's code up to it (its lane included) runs before the call
/// has been accounted for.
pub fn dispatch_return_site() -> usize {
    unsafe extern "C" {
        static kretprobe_dispatch_return_site: u8;
    }
    &raw const kretprobe_dispatch_return_site as usize
}
