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
use trace_buffer::{Event, Header, TraceBuffer};

use crate::arch::x86::percpu::MAX_CPUS;

/// Words of ring per CPU (`buffer_size_kb` shows it in KiB).
const RING_WORDS: usize = 16 * 1024 / 4;

static TRACE: spin::Once<TraceBuffer<'static, MAX_CPUS>> = spin::Once::new();

/// The buffer, made (with its memory) on first use. Task context only.
pub fn buffer() -> &'static TraceBuffer<'static, MAX_CPUS> {
    TRACE.call_once(|| {
        let mut buffer = TraceBuffer::new();
        for cpu in 0..MAX_CPUS {
            // A fresh buffer holds no memory yet: nothing comes back.
            let _ = buffer.set_memory(cpu, Box::leak(vec![0u32; RING_WORDS].into_boxed_slice()));
        }
        buffer
    })
}

/// The buffer if it exists: what a handler (trap context) uses, since it
/// must never allocate.
pub fn existing() -> Option<&'static TraceBuffer<'static, MAX_CPUS>> {
    TRACE.get()
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

/// One trace line, as ftrace prints it.
fn line(out: &mut String, event: &Event) {
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
    super::events::format_record(header.type_id, event.payload(), out);
    out.push('\n');
}

/// A task's name for the trace: its slot's last name, kept after it exits
/// (Linux's saved command lines); `<...>` if unknown, as ftrace prints.
fn task_name(pid: usize) -> &'static str {
    crate::task::saved_name(pid).unwrap_or("<...>")
}

/// `trace`: the header, then every record now in the buffers, oldest first.
pub fn read_trace(out: &mut String) {
    let buffer = buffer();
    header(out, buffer);
    let mut event = Event::default();
    let mut records = buffer.iter();
    while records.next_into(&mut event) {
        line(out, &event);
    }
}

/// `trace`, written with `>`: empties every buffer (ftrace's `echo > trace`).
pub fn write_trace(_data: &str, append: bool) -> Result<(), super::Errno> {
    if !append {
        // The crate's contract for a clear: recording off and every CPU
        // out of its writes. A sync of every CPU ends every handler in flight.
        let buffer = buffer();
        let was = buffer.is_recording();
        buffer.set_recording(false);
        crate::arch::x86::smp::sync_cpus();
        buffer.clear();
        buffer.set_recording(was);
    }
    Ok(())
}

/// `trace_pipe`: takes the records out, oldest first (the console reads it
/// once: what is there now).
pub fn read_trace_pipe(out: &mut String) {
    let buffer = buffer();
    let mut event = Event::default();
    while buffer.consume(&mut event) {
        line(out, &event);
    }
}

/// `tracing_on`.
pub fn read_tracing_on(out: &mut String) {
    out.push_str(if buffer().is_recording() { "1\n" } else { "0\n" });
}

/// `tracing_on`, written: `1` records, `0` stops (events stay enabled).
pub fn write_tracing_on(data: &str, _append: bool) -> Result<(), super::Errno> {
    match data.trim_ascii() {
        "1" => buffer().set_recording(true),
        "0" => buffer().set_recording(false),
        _ => return Err(super::Errno::Invalid),
    }
    Ok(())
}

/// `buffer_size_kb`: each CPU's ring, in KiB.
pub fn read_buffer_size_kb(out: &mut String) {
    let _ = writeln!(out, "{}", RING_WORDS * 4 / 1024);
}
