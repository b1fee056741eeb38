//! The trace buffer behind `trace`, `trace_pipe`, `tracing_on` and
//! `buffer_size_kb`: the `trace-buffer` crate's per-CPU rings, filled by
//! the console's probe events from trap context, shown as ftrace shows
//! them.
//!
//! The rings are allocated on the heap the first time an event is enabled
//! (task context), never from a handler: until then a handler finds no
//! buffer and records nothing. Timestamps are raw TSC readings, turned into
//! seconds at read time (`apic::tsc_to_ns`; under `-icount shift=0` one
//! guest instruction is one nanosecond, so traces repeat exactly).
use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec;
use core::fmt::Write;
use core::sync::atomic::{AtomicPtr, Ordering};
use trace_buffer::{Event, Header, TraceBuffer};

use crate::arch::x86::percpu::MAX_CPUS;

/// Words of ring per CPU (`buffer_size_kb` shows it in KiB).
const RING_WORDS: usize = 16 * 1024 / 4;

/// What a write into a full ring frees beyond its own record, in words,
/// for a ring of `words`: a sixteenth of it (Linux frees a page of its
/// ring at a time), so that most writes into a full ring claim nothing.
pub const fn overwrite_batch(words: usize) -> usize {
    words / 16
}

static TRACE: spin::Once<TraceBuffer<'static, MAX_CPUS>> = spin::Once::new();

/// The buffer once made, for handlers: one load to find it (the `Once`'s
/// own check is a state test and a select more on every record).
static MADE: AtomicPtr<TraceBuffer<'static, MAX_CPUS>> = AtomicPtr::new(core::ptr::null_mut());

/// The buffer, made (with its memory) on first use. Task context only.
pub fn buffer() -> &'static TraceBuffer<'static, MAX_CPUS> {
    let buffer = TRACE.call_once(|| {
        let mut buffer = TraceBuffer::new();
        for cpu in 0..MAX_CPUS {
            // A fresh buffer holds no memory yet: nothing comes back.
            let _ = buffer.set_memory(cpu, Box::leak(vec![0u32; RING_WORDS].into_boxed_slice()));
        }
        buffer.set_overwrite_batch(overwrite_batch(RING_WORDS));
        buffer
    });
    // Release: a handler that loads the pointer sees the buffer made.
    MADE.store(core::ptr::from_ref(buffer).cast_mut(), Ordering::Release);
    buffer
}

/// The buffer if it exists: what a handler (trap context) uses, since it
/// must never allocate.
#[inline(always)]
pub fn existing() -> Option<&'static TraceBuffer<'static, MAX_CPUS>> {
    // SAFETY: `MADE` is null or, stored by `buffer`, the address of the
    // value `TRACE` holds, which is never dropped or moved (a static) and
    // only shared from then on; Acquire pairs with that Release store.
    unsafe { MADE.load(Ordering::Acquire).as_ref() }
}

/// Records one event on this CPU (trap context: no lock, no allocation).
/// A full buffer in stop mode, or tracing off, drops the record (counted).
pub fn record(type_id: u16, pid: u32, payload: &[u8]) {
    let Some(buffer) = existing() else { return };
    let Some(cpu) = buffer.cpu(crate::arch::x86::percpu::cpu_id()) else { return };
    let _ = cpu.write(&Header { ts: crate::arch::cpu::rdtsc(), type_id, flags: IRQS_OFF, pid }, payload);
}

/// The flag bit printed as `d` (interrupts off), as ftrace's first column:
/// every record's (handlers run with interrupts off).
pub(super) const IRQS_OFF: u8 = 1;

/// ftrace's header for the `trace` file.
fn header(out: &mut String, buffer: &TraceBuffer<'static, MAX_CPUS>) {
    let totals = buffer.totals();
    let cpus = crate::arch::x86::smp::online_cpus();
    let _ = write!(
        out,
        "# tracer: nop\n#\n# entries-in-buffer/entries-written: {}/{}   #P:{cpus}\n#\n",
        totals.entries, totals.written
    );
    out.push_str(concat!(
        "#                                _-----=> irqs-off/BH-disabled\n",
        "#                               / _----=> need-resched\n",
        "#                              | / _---=> hardirq/softirq\n",
        "#                              || / _--=> preempt-depth\n",
        "#                              ||| / _-=> migrate-disable\n",
        "#                              |||| /     delay\n",
        "#           TASK-PID     CPU#  |||||  TIMESTAMP  FUNCTION\n",
        "#              | |         |   |||||     |         |\n",
    ));
}

/// One trace line, as ftrace prints it. `fatal`: from a fatal report,
/// which must not wait for the events' lock.
fn line(out: &mut impl Write, event: &Event, fatal: bool) {
    let header = event.header();
    let pid = header.pid as usize;
    // Idle tasks print as Linux's: `<idle>-0`.
    let (name, pid) = if pid >= crate::task::MAX_TASKS { ("<idle>", 0) } else { (task_name(pid), pid) };
    let irqs = if header.flags & IRQS_OFF != 0 { 'd' } else { '.' };
    let ns = crate::arch::x86::apic::tsc_to_ns(header.ts);
    // ftrace's context columns: `%16s-%-7d [%03d] %s %5llu.%06lu: `.
    let _ = write!(
        out,
        "{name:>16}-{pid:<7} [{:03}] {irqs}.... {:5}.{:06}: ",
        event.cpu(),
        ns / 1_000_000_000,
        ns % 1_000_000_000 / 1000
    );
    super::events::format_record(header.type_id, event.payload(), out, fatal);
    let _ = out.write_char('\n');
}

/// A task's name for the trace: its slot's last name, kept after it exits
/// (Linux's saved command lines); `<...>` if unknown, as ftrace prints.
fn task_name(pid: usize) -> &'static str {
    crate::task::saved_name(pid).unwrap_or("<...>")
}

/// Held by every reader of the buffer (and its clear and resize), which
/// the crate requires of a resize (see `TraceBuffer::replace_memory`).
/// Task context only; trap-context writers never take it.
static READERS: spin::Mutex<()> = spin::Mutex::new(());

/// `trace`: the header, then every record now in the buffers, oldest first.
pub fn read_trace(out: &mut String) {
    let buffer = buffer();
    let _readers = READERS.lock();
    header(out, buffer);
    let mut event = Event::default();
    let mut records = buffer.iter();
    while records.next_into(&mut event) {
        line(out, &event, false);
    }
}

/// `trace`, written with `>`: empties every buffer (ftrace's `echo > trace`).
pub fn write_trace(_data: &str, append: bool) -> Result<(), super::Errno> {
    if !append {
        with_writers_stopped(|buffer| buffer.clear());
    }
    Ok(())
}

/// Runs `change` on the buffer with no writer or reader in it, as the
/// crate requires of a clear and of a memory replacement: readers locked
/// out (READERS), recording off, and every CPU synced since (every write
/// in progress is in a handler, with interrupts off, and a sync of every
/// CPU waits them out). Recording then resumes as it was. Task context.
fn with_writers_stopped(change: impl FnOnce(&TraceBuffer<'static, MAX_CPUS>)) {
    let buffer = buffer();
    let _readers = READERS.lock();
    let was = buffer.is_recording();
    buffer.set_recording(false);
    crate::arch::x86::smp::sync_cpus();
    change(buffer);
    buffer.set_recording(was);
}

/// `trace_pipe`: takes the records out, oldest first (the console reads it
/// once: what is there now).
pub fn read_trace_pipe(out: &mut String) {
    let buffer = buffer();
    let _readers = READERS.lock();
    let mut event = Event::default();
    while buffer.consume(&mut event) {
        line(out, &event, false);
    }
}

/// What `trace_pipe` gives now (the records are taken out).
pub fn take_pipe_text() -> String {
    let mut text = String::new();
    read_trace_pipe(&mut text);
    text
}

/// `tracing_on`.
pub fn read_tracing_on(out: &mut String) {
    out.push_str(super::switch_text(buffer().is_recording()));
}

/// `tracing_on`, written: `1` records, `0` stops (events stay enabled).
pub fn write_tracing_on(data: &str, _append: bool) -> Result<(), super::Errno> {
    buffer().set_recording(super::parse_switch(data)?);
    Ok(())
}

/// Each CPU's ring now, in KiB (changed by writes of `buffer_size_kb`).
static SIZE_KB: core::sync::atomic::AtomicUsize = core::sync::atomic::AtomicUsize::new(RING_WORDS * 4 / 1024);

/// The largest `buffer_size_kb` taken: the heap holds every CPU's ring.
pub const MAX_SIZE_KB: usize = 256;

/// `buffer_size_kb`: each CPU's ring, in KiB.
pub fn read_buffer_size_kb(out: &mut String) {
    let _ = writeln!(out, "{}", SIZE_KB.load(core::sync::atomic::Ordering::Relaxed));
}

/// `buffer_size_kb`, written: gives each online CPU a ring of that many
/// KiB (1 to [`MAX_SIZE_KB`]), keeping the newest records that fit (the
/// rest count as overrun, as Linux's shrinking does). The new memory is
/// allocated first: if the heap cannot hold it all, nothing changes
/// (`ENOMEM`).
pub fn write_buffer_size_kb(data: &str, _append: bool) -> Result<(), super::Errno> {
    let size_kb: usize = data.trim_ascii().parse().map_err(|_| super::Errno::Invalid)?;
    if !(1..=MAX_SIZE_KB).contains(&size_kb) {
        return Err(super::Errno::Invalid);
    }
    let words = size_kb * 1024 / 4;
    let cpus = crate::arch::x86::smp::online_cpus();
    let mut rings: alloc::vec::Vec<Box<[u32]>> = alloc::vec::Vec::new();
    rings.try_reserve_exact(cpus).map_err(|_| super::Errno::NoMemory)?;
    for _ in 0..cpus {
        let mut ring: alloc::vec::Vec<u32> = alloc::vec::Vec::new();
        ring.try_reserve_exact(words).map_err(|_| super::Errno::NoMemory)?;
        ring.resize(words, 0);
        rings.push(ring.into_boxed_slice());
    }
    with_writers_stopped(|buffer| {
        buffer.set_overwrite_batch(overwrite_batch(words));
        for (cpu, ring) in rings.into_iter().enumerate() {
            // SAFETY: inside `with_writers_stopped`: no write, reservation,
            // read, clear or total is in progress on any ring.
            let old = unsafe { buffer.replace_memory(cpu, Box::leak(ring)) };
            match old {
                // Every ring came from `Box::leak` of a boxed slice (here, or
                // in `buffer`): give it back the same way.
                // SAFETY: the buffer handed the slice back and keeps no
                // reference to it; it was leaked from a `Box<[u32]>`.
                Ok(old) if !old.is_empty() => drop(unsafe { Box::from_raw(old as *mut [u32]) }),
                Ok(_) => {}
                // SAFETY: as above: refused memory is the ring just leaked.
                Err(refused) => drop(unsafe { Box::from_raw(refused as *mut [u32]) }),
            }
        }
    });
    SIZE_KB.store(size_kb, core::sync::atomic::Ordering::Relaxed);
    Ok(())
}

/// `options/overwrite`: `1` when a full ring overwrites its oldest
/// records (the default), `0` when it drops new ones.
pub fn read_overwrite(out: &mut String) {
    out.push_str(super::switch_text(buffer().overwrite()));
}

/// `options/overwrite`, written with `1` or `0`.
pub fn write_overwrite(data: &str, _append: bool) -> Result<(), super::Errno> {
    buffer().set_overwrite(super::parse_switch(data)?);
    Ok(())
}

/// How many of the newest records a fatal report shows.
const DUMP_ON_OOPS: usize = 32;

/// The end of a fatal report, as Linux's `ftrace_dump_on_oops`: the newest
/// records in the trace buffer (if it exists and holds any), oldest first.
/// Allocates nothing and waits for no lock (a lock the crashed code held
/// is skipped: records print without their arguments then).
pub fn dump_on_oops() {
    let Some(buffer) = existing() else { return };
    let mut event = Event::default();
    let total = {
        let mut records = buffer.iter();
        let mut count = 0;
        while records.next_into(&mut event) {
            count += 1;
        }
        count
    };
    if total == 0 {
        return;
    }
    let shown = total.min(DUMP_ON_OOPS);
    crate::println!("Dumping ftrace buffer (the newest {shown} of {total} records):");
    crate::println!("---------------------------------");
    let mut records = buffer.iter();
    let mut index = 0;
    while records.next_into(&mut event) {
        if index >= total - shown {
            // A fatal report must not allocate: the line goes through a
            // fixed buffer (its newline too, unless the line was cut).
            let mut text = crate::console::FixedText::<512>::new();
            line(&mut text, &event, true);
            crate::println!("{}", text.as_str().trim_end_matches('\n'));
        }
        index += 1;
    }
    crate::println!("---------------------------------");
}
