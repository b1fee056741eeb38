//! Jump-optimized probes: the detour a probe's `jmp` leads to.
//!
//! An optimized probe's first five bytes are `jmp rel32` to its detour, a
//! detour slot (`slots::Kind::Detour`) holding a copy of
//! [`detour_template`] with this probe's addresses written in, then the
//! relocated displaced instructions and a jump back: Linux's
//! `optprobe_template` (`arch/x86/kernel/kprobes/opt.c`), copied and
//! patched the same way. The detour builds the same [`PtRegs`] frame a
//! breakpoint trap would (vector 3, error code 0), takes this CPU's control
//! block if it is idle, calls its probe's entry routine with the frame,
//! and unless the handler redirected or moved ESP, restores the frame and
//! returns with `iretd` into its copy. No exception is taken, and nothing
//! is looked up: the detour knows its site, its copy and where its probe
//! is kept.
//!
//! ```text
//!   pushfd; cli; push cs; push <probe address>; push 0; push 3; pushad
//!   add [esp + esp], 20          the probed code's ESP
//!   cld
//!   mov ebx, <this CPU's block>  (a lane query, see `lane`)
//!   bts [ebx], 0; jc busy        taken if idle (see `control::State`)
//!   mov edx, [<record>]          the probe to run (`registry::DETOUR_RECORDS`)
//!   mov [ebx + site], <site>; mov [ebx + running], edx
//!   mov ecx, esp; call [edx + entry]
//!   test al, al; jnz redirected
//!   mov [esp + eip], <copy>
//!   mov byte [ebx], idle
//!   ESP moved? jne probe_engine_trap_return
//!   popad; add esp, 8; iretd
//! busy:
//!   call optprobe_slow
//!   <copy>: the displaced instructions, relocated; jmp back
//! ```
//!
//! The record (one word per detour slot) names the site's fast probe while
//! the detour is its site's and the site has one; otherwise `GONE`,
//! whose entry routine gives the block back and sends the hit to the
//! generic dispatcher (`optimize::optimized_dispatch`), as a busy block
//! does. That covers a site with several probes or a disabled one, and a
//! detour its site dropped while a CPU had stopped at its first
//! instruction (interrupts are still on there): the dispatcher then runs
//! this detour's copy, which is kept as long as anyone may resume inside
//! it. The detour's own exit restores the frame; a handler that redirected
//! or moved ESP, and every hit of the dispatcher, leave through the host's
//! trap exit (`probe_engine_trap_return`), which moves the frame to end at
//! the new ESP.
//!
//! A site whose one probe is a kretprobe with no entry handler gets a
//! detour from a second template, [`kretprobe_detour_template`], which
//! builds no frame at all on the common entry (see there).
use super::lane;
use super::regs::PtRegs;
use crate::control::layout as cpu;
use crate::probe::Kprobe;
use crate::slots::DETOUR_SIZE;
use probe_engine_core::optimize::{Displaced, JUMP_LEN, MAX_DISPLACED_COPY};

/// The vector handlers see in an optimized hit's frame: a breakpoint's, as
/// the same probe hit through its `int3` would show.
pub const OPTIMIZED_HIT_VECTOR: u32 = 3;

/// Where the relocated copy starts inside a detour: after the template.
pub const DETOUR_COPY_OFFSET: usize = DETOUR_SIZE - MAX_DISPLACED_COPY;

/// The rest of a breakpoint's frame, above the EFLAGS a template has just
/// pushed (interrupts then off): CS, EIP (the probe's address, an `imm32`
/// field ending at the global label `$address`), the error code 0 and the
/// vector 3, `pushad` with ESP made the probed code's, and DF clear.
/// Operands: `breakpoint`, `esp`, `above`.
macro_rules! breakpoint_frame {
    ($address:literal) => {
        concat!(
            ".byte 0x0e\n", // push cs, 32-bit
            ".byte 0x68\n", // push imm32
            ".long 0\n",
            ".global ",
            $address,
            "\n",
            $address,
            ":\n",
            ".byte 0x6a, 0\n",            // push 0
            ".byte 0x6a, {breakpoint}\n", // push 3
            "pushad\n",
            "add dword ptr [esp + {esp}], {above}\n", // ESP as it was before the pushes
            "cld"
        )
    };
}

/// The code of every detour, never run where it is: [`detour_image`]
/// copies it into a detour slot and writes in the probe's addresses, at
/// the fields its labels name (each label ends the field it names, or the
/// instruction whose `rel32` it follows). Its lane query is rewritten
/// along with the lanes' (`lane::inline_queries`) before any detour is
/// made.
///
/// # Safety
/// Never called.
#[unsafe(naked)]
#[unsafe(link_section = ".kprobes.text")]
pub unsafe extern "C" fn detour_template() {
    core::arch::naked_asm!(
        "pushfd",
        "cli", // after pushfd: the frame keeps IF
        breakpoint_frame!("probe_engine_detour_address"),
        // This CPU's block, taken if idle (in EBX, which the entry keeps).
        lane::take_idle_block_or!("ebx", "3f", "probe_engine_query_optprobe"),
        ".byte 0x8b, 0x15", // mov edx, [record]
        ".long 0",
        ".global probe_engine_detour_record",
        "probe_engine_detour_record:",
        ".byte 0xc7, 0x43, {handlers_site}", // mov dword ptr [ebx + site], imm32
        ".long 0",
        ".global probe_engine_detour_site",
        "probe_engine_detour_site:",
        "mov [ebx + {handlers_running}], edx",
        "mov ecx, esp", // fastcall: the frame, and EDX the probe
        "call dword ptr [edx + {probe_entry}]",
        ".global probe_engine_detour_return",
        "probe_engine_detour_return:",
        "test al, al",
        ".byte 0x0f, 0x85", // jnz rel32: redirected
        ".long {redirected} - (. + 4)",
        ".global probe_engine_detour_redirected",
        "probe_engine_detour_redirected:",
        ".byte 0xc7, 0x44, 0x24, {eip}", // mov dword ptr [esp + eip], imm32
        ".long 0",
        ".global probe_engine_detour_copy",
        "probe_engine_detour_copy:",
        "mov byte ptr [ebx], {idle}",
        "lea ecx, [esp + {size}]",
        "cmp [esp + {esp}], ecx",
        ".byte 0x0f, 0x85", // jne rel32: a handler moved ESP
        ".long probe_engine_trap_return - (. + 4)",
        ".global probe_engine_detour_moved",
        "probe_engine_detour_moved:",
        "popad",
        "add esp, 8", // vector, error code
        "iretd",
        "3:",
        ".byte 0xe8", // call rel32: the block is busy
        ".long {slow} - (. + 4)",
        ".global probe_engine_detour_busy",
        "probe_engine_detour_busy:",
        ".global probe_engine_detour_end",
        "probe_engine_detour_end:",
        breakpoint = const OPTIMIZED_HIT_VECTOR,
        esp = const core::mem::offset_of!(PtRegs, esp),
        above = const super::regs::FRAME_SIZE - core::mem::offset_of!(PtRegs, vector),
        current_cpu = sym crate::host::__probe_engine_lane_current_cpu,
        state_bytes = sym crate::control::STATE_BYTES,
        handlers_site = const cpu::HANDLERS_SITE,
        handlers_running = const cpu::HANDLERS_RUNNING,
        probe_entry = const crate::probe::layout::ENTRY,
        redirected = sym optprobe_redirected,
        eip = const core::mem::offset_of!(PtRegs, eip),
        idle = const cpu::IDLE,
        size = const super::regs::FRAME_SIZE,
        slow = sym optprobe_slow,
    );
}

/// The code of a lean kretprobe detour, for a site whose one probe is a
/// kretprobe with no entry handler: [`detour_image`] places its slow path
/// at the detour's start and its entry so that it ends where the copy
/// begins, and writes in the probe's address and the record's.
///
/// ```text
///   detour + 0:  popad                      the slow path: the full frame,
///                push cs; push <address>    as the other detour builds it,
///                push 0; push 3; pushad     then the dispatcher
///                add [esp + esp], 20; cld
///                call optprobe_slow
///   entry:       pushfd; cli; pushad
///                mov esi, [<record>]
///                call kretprobe_entry_lean  (back to detour + 0 if it
///                popad; popfd                cannot take the entry)
///   copy:        the displaced instructions, relocated; jmp back
/// ```
///
/// No `PtRegs` is built and no control block taken on the common entry:
/// see `trampoline::kretprobe_entry_lean`. Its slow path gives every other
/// entry what the other detour gives it.
///
/// # Safety
/// Never called.
#[unsafe(naked)]
#[unsafe(link_section = ".kprobes.text")]
pub unsafe extern "C" fn kretprobe_detour_template() {
    core::arch::naked_asm!(
        "popad",
        breakpoint_frame!("probe_engine_lean_address"),
        ".byte 0xe8", // call rel32: the dispatcher
        ".long {slow} - (. + 4)",
        ".global probe_engine_lean_busy",
        "probe_engine_lean_busy:",
        ".global probe_engine_lean_entry",
        "probe_engine_lean_entry:",
        "pushfd",
        "cli",
        "pushad",
        ".byte 0x8b, 0x35", // mov esi, [record]
        ".long 0",
        ".global probe_engine_lean_record",
        "probe_engine_lean_record:",
        ".byte 0xe8", // call rel32: the entry's work
        ".long {entry} - (. + 4)",
        ".global probe_engine_lean_call",
        "probe_engine_lean_call:",
        "popad",
        "popfd",
        ".global probe_engine_lean_end",
        "probe_engine_lean_end:",
        breakpoint = const OPTIMIZED_HIT_VECTOR,
        esp = const core::mem::offset_of!(PtRegs, esp),
        above = const super::regs::FRAME_SIZE - core::mem::offset_of!(PtRegs, vector),
        slow = sym optprobe_slow,
        entry = sym super::trampoline::kretprobe_entry_lean,
    );
}

/// Declares `$name`, a template's labels as offsets from its start (each
/// label ends the field or `rel32` it names), with `$name::get()` reading
/// them from the linked template.
macro_rules! template_labels {
    ($(#[$doc:meta])* $name:ident of $template:ident { $($field:ident: $label:ident),* $(,)? }) => {
        $(#[$doc])*
        struct $name {
            base: usize,
            $($field: usize),*
        }

        impl $name {
            fn get() -> Self {
                unsafe extern "C" {
                    $(static $label: u8;)*
                }
                let base = $template as *const () as usize;
                $name { base, $($field: &raw const $label as usize - base),* }
            }
        }
    };
}

template_labels! {
    /// [`detour_template`]'s labels.
    Template of detour_template {
        address: probe_engine_detour_address,
        record: probe_engine_detour_record,
        site: probe_engine_detour_site,
        query: probe_engine_query_optprobe,
        call_return: probe_engine_detour_return,
        redirected: probe_engine_detour_redirected,
        copy: probe_engine_detour_copy,
        moved: probe_engine_detour_moved,
        busy: probe_engine_detour_busy,
        end: probe_engine_detour_end,
    }
}

template_labels! {
    /// [`kretprobe_detour_template`]'s labels.
    LeanTemplate of kretprobe_detour_template {
        address: probe_engine_lean_address,
        busy: probe_engine_lean_busy,
        entry: probe_engine_lean_entry,
        record: probe_engine_lean_record,
        call: probe_engine_lean_call,
        end: probe_engine_lean_end,
    }
}

/// Where a detour's call of its probe's entry routine returns, from the
/// detour's start (for the unwinder).
fn return_offset() -> usize {
    Template::get().call_return
}

/// Whether `address` is where a detour's call of its probe's entry routine
/// returns (the frame is at the caller's stack pointer).
pub fn is_detour_return_site(address: usize) -> bool {
    let detours = crate::slots::detour_region();
    detours.contains(&address) && (address - detours.start) % DETOUR_SIZE == return_offset()
}

/// The record of a detour whose site dropped it, or whose site has no
/// single fast probe: its entry routine ([`optprobe_gone`]) sends the hit
/// to the generic dispatcher. Never registered.
pub(crate) static GONE: Kprobe = Kprobe::new().with_entry(optprobe_gone);

/// [`GONE`]'s entry routine, called by a detour as any probe's (the frame
/// in ECX, the block taken in EBX, the return address naming the detour):
/// gives the block back and goes to the dispatcher.
///
/// # Safety
/// Only a detour calls it, as above.
#[unsafe(naked)]
#[unsafe(link_section = ".kprobes.text")]
unsafe extern "fastcall" fn optprobe_gone(_: &mut PtRegs, _: &'static Kprobe) -> bool {
    core::arch::naked_asm!(
        "mov byte ptr [ebx], {idle}",
        "jmp {slow}",
        idle = const cpu::IDLE,
        slow = sym optprobe_slow,
    );
}

/// The generic dispatcher for a detour's hit: called by the detour (its
/// CPU's block busy) or jumped to by [`optprobe_gone`], with the return
/// address, inside the detour, above the frame and interrupts off (detour
/// slots are [`DETOUR_SIZE`]-aligned, so it names the detour). Leaves
/// through the host's trap exit.
///
/// # Safety
/// Only as above.
#[unsafe(naked)]
#[unsafe(link_section = ".kprobes.text")]
unsafe extern "C" fn optprobe_slow() {
    core::arch::naked_asm!(
        "pop eax",
        "and eax, {align}",
        "push eax", // the detour
        "lea eax, [esp + 4]",
        "push eax", // the frame
        "call {dispatch}",
        ".global optprobe_dispatch_return_site",
        "optprobe_dispatch_return_site:",
        "add esp, 8",
        "jmp probe_engine_trap_return", // the host's trap exit (see `Host`)
        align = const !(DETOUR_SIZE - 1),
        dispatch = sym crate::optimize::optimized_dispatch,
    );
}

/// A detour whose handler redirected: the block given back, then the
/// host's trap exit, which honours a moved ESP.
///
/// # Safety
/// Only a detour jumps here, with its frame at ESP and its block in EBX.
#[unsafe(naked)]
#[unsafe(link_section = ".kprobes.text")]
unsafe extern "C" fn optprobe_redirected() {
    core::arch::naked_asm!(
        "mov byte ptr [ebx], {idle}",
        "jmp probe_engine_trap_return",
        idle = const cpu::IDLE,
    );
}

/// The return address of the dispatcher's call in `optprobe_slow`: the
/// unwinder continues through the frame, its first argument.
pub fn dispatch_return_site() -> usize {
    unsafe extern "C" {
        static optprobe_dispatch_return_site: u8;
    }
    &raw const optprobe_dispatch_return_site as usize
}

/// Which template a detour is made from.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum DetourKind {
    /// [`detour_template`]: any probe.
    Full,
    /// [`kretprobe_detour_template`]: a kretprobe with no entry handler.
    LeanKretprobe,
}

/// A detour being made in a buffer: the template parts copied to where
/// they go in the slot at `base`, and the fields written in.
struct Image {
    bytes: [u8; DETOUR_SIZE],
    base: usize,
}

impl Image {
    /// Copies the template bytes `from..to` (addresses) to `at` in the image.
    fn place(&mut self, from: usize, to: usize, at: usize) {
        // SAFETY: `from..to` is part of a template, the engine's text.
        let part = unsafe { core::slice::from_raw_parts(from as *const u8, to - from) };
        self.bytes[at..at + part.len()].copy_from_slice(part);
    }

    /// Writes `value` in the four bytes before `end` (an image offset).
    fn put(&mut self, end: usize, value: usize) {
        self.bytes[end - 4..end].copy_from_slice(&(value as u32).to_le_bytes());
    }

    /// Moves the `rel32` that ends at `end` (an image offset), copied from
    /// the template where it ended at `template_end` (an address), so it
    /// keeps its target.
    fn relocate(&mut self, end: usize, template_end: usize) {
        let old = u32::from_le_bytes(self.bytes[end - 4..end].try_into().unwrap());
        let moved = template_end.wrapping_sub(self.base + end);
        self.put(end, old.wrapping_add(moved as u32) as usize);
    }
}

/// The detour of `kind` for the probe at `displaced.address`, of the site
/// at `site_address`, whose record (see `GONE`) is at `record`, to be
/// placed at `base`; and the offset in it where the probe's jump goes.
pub fn detour_image(
    kind: DetourKind,
    site_address: usize,
    record: usize,
    displaced: &Displaced,
    base: usize,
) -> ([u8; DETOUR_SIZE], usize) {
    let mut image = Image { bytes: [0xcc; DETOUR_SIZE], base };
    let entry = match kind {
        DetourKind::Full => {
            let t = Template::get();
            assert!(t.end <= DETOUR_COPY_OFFSET, "the detour template outgrew its room");
            image.place(t.base, t.base + t.end, 0);
            image.put(t.address, displaced.address);
            image.put(t.record, record);
            image.put(t.site, site_address);
            image.put(t.copy, base + DETOUR_COPY_OFFSET);
            for end in [t.redirected, t.moved, t.busy] {
                image.relocate(end, t.base + end);
            }
            // The lane query: still a call (`ds call rel32`), or a GS load.
            // SAFETY: the template's query is six bytes of its text.
            if unsafe { *((t.base + t.query + 1) as *const u8) } == 0xe8 {
                image.relocate(t.query + 6, t.base + t.query + 6);
            }
            0
        }
        DetourKind::LeanKretprobe => {
            let t = LeanTemplate::get();
            let entry = DETOUR_COPY_OFFSET - (t.end - t.entry);
            assert!(t.entry <= entry, "the lean detour template outgrew its room");
            image.place(t.base, t.base + t.entry, 0);
            image.put(t.address, displaced.address);
            image.relocate(t.busy, t.base + t.busy);
            image.place(t.base + t.entry, t.base + t.end, entry);
            // The entry part moved from `t.entry` to `entry`.
            let at = |offset: usize| offset - t.entry + entry;
            image.put(at(t.record), record);
            image.relocate(at(t.call), t.base + t.call);
            entry
        }
    };
    let (copy, len) = displaced.relocated(base + DETOUR_COPY_OFFSET);
    image.bytes[DETOUR_COPY_OFFSET..DETOUR_COPY_OFFSET + len].copy_from_slice(&copy[..len]);
    (image.bytes, entry)
}

/// `jmp rel32` placed at `at`, to `target`.
pub fn jump(at: usize, target: usize) -> [u8; JUMP_LEN] {
    let mut bytes = [0xe9, 0, 0, 0, 0];
    bytes[1..].copy_from_slice(&(target.wrapping_sub(at + JUMP_LEN) as u32).to_le_bytes());
    bytes
}
