//! The per-CPU trace ring buffer behind the tracing console (`trace`,
//! `trace_pipe`, `buffer_size_kb`, `tracing_on`, `per_cpu/cpuN/stats`),
//! behaving for its users as Linux's ftrace ring buffer does.
//!
//! # Roles
//!
//! - **Writers** run on a probe's trap path: interrupts off, no lock, no
//!   allocation, no panic, bounded time. Each CPU writes only its own
//!   buffer, through [`TraceBuffer::cpu`], and never re-enters a write on
//!   that CPU (the *writer contract*, which the caller keeps; breaking it
//!   garbles records until the next [`TraceBuffer::clear`], but is still
//!   memory-safe, panics nowhere and hangs no reader).
//!   A record is written whole ([`Cpu::write`]) or reserved, filled in
//!   place and committed ([`Cpu::reserve`], [`Reservation`]), so fetched
//!   arguments go straight into the ring.
//! - **Readers** run in task context, on any CPU, truly in parallel with
//!   the writers: [`TraceBuffer::iter`] shows what is in the buffers
//!   without taking it (the `trace` file), [`TraceBuffer::consume`] takes
//!   records out (`trace_pipe`). Both merge the CPUs oldest first by
//!   timestamp, ties going to the lower CPU number. Readers take no lock
//!   that a writer takes; they need none among themselves either (two
//!   consumers never get the same record), though a console will
//!   serialize them so that one reader sees one merged order.
//! - **Control**: [`TraceBuffer::set_recording`] (`tracing_on`),
//!   [`TraceBuffer::set_overwrite`] (the `overwrite` option),
//!   [`TraceBuffer::clear`] (`echo > trace`), memory installation and
//!   replacement ([`TraceBuffer::set_memory`],
//!   [`TraceBuffer::replace_memory`]: `buffer_size_kb`), statistics
//!   ([`Cpu::stats`], [`TraceBuffer::totals`]).
//!
//! # The ring
//!
//! Each CPU's buffer is memory the caller hands in, used as a ring of
//! 32-bit words; the crate allocates nothing. A record is a 16-byte header
//! and a payload padded to whole words (layout in [`record`]), stored
//! contiguously modulo the ring's end. Two 64-bit *positions* describe the
//! ring: `head`, where the next record goes, and `start`, the oldest record
//! present; both count words written since the buffer was made and only
//! ever grow, so a position names one record for the life of the buffer
//! (no wrap-around, no ABA), and a record at position `p` lives at word `p
//! % capacity`. Records present are exactly those between `start` and
//! `head`, and `head - start` never exceeds the capacity.
//!
//! # The protocol
//!
//! Each record leaves the ring in exactly one way, decided by whoever moves
//! `start` past it with a compare-and-swap: the writer when it needs the
//! room (an *overrun*), or a consuming reader (a *read*). Clearing moves
//! `start` to `head` with the same kind of compare-and-swap, deciding at
//! once for every record before it. That single decision per record is
//! what makes the counts exact: between two clears, records written =
//! read + overrun + present.
//!
//! The writer, for a record of `n` words at `head`:
//!
//! - **W1** While `start` is less than `head + n - capacity` (a record that
//!   shares memory with the new one): in overwrite mode, claim the oldest
//!   records in the way, and once it has to claim, those in the way of the
//!   batch ([`TraceBuffer::set_overwrite_batch`]) too, by moving `start`
//!   past them all with one compare-and-swap (if a reader took the oldest
//!   first, just look again), counting an overrun each; in stop-when-full
//!   mode, count a drop and give up. `start` is loaded with Acquire. The
//!   writer keeps count of the room it last saw past `head` (less what it
//!   has claimed since): while that covers the record (`start` only
//!   grows), W1 loads nothing and claims nothing, and the W2 fence that
//!   followed that observation precedes this record's stores as well.
//! - **W2** A Release fence, then the header and payload are stored (as
//!   relaxed atomic stores: the memory is `[AtomicU32]`).
//! - **W3** Commit: `head` moves past the record with Release. Only the
//!   writer stores `head`, so it is published as two 32-bit halves: one
//!   store of the low half, unless the high half changes (once every 2^32
//!   words), when readers that meet the change load again.
//!
//! A reader, for the record at position `p`:
//!
//! - **R1** Load `start`, then `head` with Acquire: records up to `head`
//!   are wholly written, as far as it can see.
//! - **R2** Copy the record's words out (relaxed atomic loads), its length
//!   checked against what a record can be so that a torn header cannot send
//!   the copy astray.
//! - **R3** An Acquire fence, then check that `start` has not passed `p`:
//!   iterating, a plain load (`start <= p`); consuming, the compare-and-swap
//!   of `start` from `p` to past the record, which both checks and takes.
//!   If the check fails, the copy is thrown away: the record was overwritten
//!   (or taken by another reader) and is counted where that happened.
//!
//! # Why no reader returns a torn record
//!
//! A torn copy is one where some word copied in R2 came from a store the
//! writer made into the record's memory after the record was gone. The
//! writer stores there (W2) only after W1 saw `start` past the record,
//! either by its own claim or by loading a value a consumer's or clear's
//! compare-and-swap left (possibly in an earlier write, whose W2 fence
//! then also precedes this store). So suppose a word was read from such a
//! store: the writer's Release fence (W2) precedes that store and the
//! reader's Acquire
//! fence (R3) follows that load, so the fences synchronize, and the
//! writer's claim or load of `start` in W1 happens before the reader's R3
//! access of `start`. By coherence that access sees `start` at least where
//! the writer saw it, which is past `p`: the check fails. Conversely, when a
//! consumer's compare-and-swap succeeds, it is ordered before any later
//! claim of the record, and its Release makes the copy happen before the
//! writer's Acquire load in W1 that sees the record gone, so the writer's
//! later stores cannot have reached the copy. The fences cost nothing on
//! x86 (its stores are not reordered with older loads or stores, its
//! loads not with older loads); they are what makes the argument hold in
//! the language's memory model, which the host tests run under.
//!
//! Positions are 64-bit, so a check can never be fooled by a position that
//! came round again. A reader retries when the record it was copying went
//! away; each retry means the writer made progress (lock-free, not
//! wait-free: the writer never waits for a reader, and a consumer racing a
//! writer that overwrites without pause may retry many times). An
//! iteration always ends: it stops at the `head` it saw when it began.
//!
//! # Modes, clearing, resizing
//!
//! The overwrite mode ([`TraceBuffer::set_overwrite`]) and recording
//! switch ([`TraceBuffer::set_recording`]) may change at any time; each
//! write follows the values it read. Clearing and memory replacement have
//! their contracts on [`TraceBuffer::clear`] and
//! [`TraceBuffer::replace_memory`].
//!
//! # Differences from Linux's ring buffer
//!
//! No pages and no swapped-in reader page: one contiguous ring per CPU,
//! which keeps the lock-free argument to one compare-and-swap deciding the
//! fate of each record (a claim decides a run of them at once, as a clear
//! does).
//! The price: Linux's consumer takes a whole page out of the writer's way
//! and reads it at leisure, while a consumer here copies one record at a
//! time from where the writer overwrites next, and loses those races.
//! Timestamps are absolute in every header (no deltas and no time-extend
//! records). Writers do not nest on a CPU, so the commit overrun that
//! nesting causes in Linux is always zero. Records carry no per-record
//! preempt count; the flags byte is the caller's.
#![no_std]
#![deny(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]

#[cfg(test)]
extern crate std;

mod cpu;
pub mod record;

use core::sync::atomic::Ordering::Relaxed;
use core::sync::atomic::{AtomicBool, AtomicUsize};

pub use cpu::{CpuStats, Dropped, OutOfBounds, Reservation};
pub use record::{Event, Header, Lost, MAX_PAYLOAD};

use cpu::{Control, CpuBuffer};

/// The trace buffers of up to `CPUS` CPUs and the switches they share.
///
/// `'m` is how long the memory handed in lives (`'static` in the kernel).
/// Constant-constructible, for a `static`; a CPU has no memory (and takes
/// no record) until [`set_memory`](Self::set_memory) or
/// [`replace_memory`](Self::replace_memory) gives it some.
pub struct TraceBuffer<'m, const CPUS: usize> {
    control: Control,
    cpus: [CpuBuffer<'m>; CPUS],
}

/// Totals over every CPU, for the `trace` file's header line
/// (`# entries-in-buffer/entries-written: N/M   #P:CPUS`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    /// Records in the buffers now.
    pub entries: usize,
    /// Records in the buffers plus those overwritten, as Linux counts
    /// "entries-written" (consumed records are in neither).
    pub written: usize,
}

impl<'m, const CPUS: usize> TraceBuffer<'m, CPUS> {
    /// Buffers with no memory, recording on and in overwrite mode (Linux's
    /// defaults).
    pub const fn new() -> TraceBuffer<'m, CPUS> {
        TraceBuffer {
            control: Control {
                recording: AtomicBool::new(true),
                overwrite: AtomicBool::new(true),
                batch: AtomicUsize::new(0),
            },
            cpus: [const { CpuBuffer::new() }; CPUS],
        }
    }

    /// CPU `cpu`'s buffer: its writer's entry point and its statistics.
    /// `None` if `cpu >= CPUS`.
    #[inline(always)]
    pub fn cpu(&self, cpu: usize) -> Option<Cpu<'_, 'm>> {
        self.cpus.get(cpu).map(|buffer| Cpu { index: cpu, buffer, control: &self.control })
    }

    /// Turns recording on or off (`tracing_on`): while it is off, writes
    /// return [`Dropped::TracingOff`] and leave no trace in the counters.
    pub fn set_recording(&self, on: bool) {
        self.control.recording.store(on, Relaxed);
    }

    /// Whether recording is on.
    pub fn is_recording(&self) -> bool {
        self.control.recording.load(Relaxed)
    }

    /// Chooses what a write into a full buffer does: overwrite the oldest
    /// records, counted as overrun (`true`, the default, as Linux's
    /// `overwrite` option), or drop the new one, counted as dropped.
    pub fn set_overwrite(&self, overwrite: bool) {
        self.control.overwrite.store(overwrite, Relaxed);
    }

    /// Whether writes into a full buffer overwrite the oldest records.
    pub fn overwrite(&self) -> bool {
        self.control.overwrite.load(Relaxed)
    }

    /// How many words an overwriting write frees beyond its own record
    /// when the buffer is full (0, the default: just enough for it). Freed
    /// in whole records, oldest first, counted as overrun, and never more
    /// than leaves the buffer empty. The next writes then find room
    /// without claiming any, which makes a write into a full buffer about
    /// as cheap as one into a buffer with room; Linux frees a whole page
    /// at a time.
    pub fn set_overwrite_batch(&self, words: usize) {
        self.control.batch.store(words, Relaxed);
    }

    /// Takes the oldest record of all CPUs out into `out` (`trace_pipe`):
    /// the lowest timestamp, ties to the lowest CPU. `false` when every
    /// buffer is empty: the caller may wait and try again.
    /// [`Event::lost_before`] says how many records of that CPU were
    /// overwritten since the previous consuming read from it.
    pub fn consume(&self, out: &mut Event) -> bool {
        self.consume_from(None, out)
    }

    /// [`consume`](Self::consume) from CPU `cpu` alone
    /// (`per_cpu/cpuN/trace_pipe`); `false` also if there is no such CPU.
    pub fn consume_cpu(&self, cpu: usize, out: &mut Event) -> bool {
        cpu < CPUS && self.consume_from(Some(cpu), out)
    }

    fn consume_from(&self, only: Option<usize>, out: &mut Event) -> bool {
        loop {
            let mut oldest: Option<Candidate> = None;
            for (cpu, buffer) in self.cpus.iter().enumerate() {
                if only.is_some_and(|only| only != cpu) {
                    continue;
                }
                if let Some((position, header, len)) = buffer.peek_oldest() {
                    Candidate { ts: header.ts, cpu, position, len }.keep_older(&mut oldest);
                }
            }
            let Some(Candidate { cpu: index, position, len, .. }) = oldest else {
                return false;
            };
            // Taken only if it is still the oldest of its CPU: otherwise it
            // was overwritten (or taken) since, and the choice starts over.
            if let Some(buffer) = self.cpus.get(index)
                && buffer.consume_at(position, len, out)
            {
                out.cpu = index;
                return true;
            }
        }
    }

    /// An iteration over the records in the buffers now (the `trace`
    /// file), oldest first across CPUs, without taking them. It stops at
    /// the newest record present when it was made; records overwritten
    /// before it reaches them are skipped and reported as
    /// [`Lost::Unknown`] on the next record of their CPU.
    pub fn iter(&self) -> Iter<'_, 'm, CPUS> {
        self.iter_from(None)
    }

    /// [`iter`](Self::iter) over CPU `cpu` alone (`per_cpu/cpuN/trace`);
    /// empty if there is no such CPU.
    pub fn iter_cpu(&self, cpu: usize) -> Iter<'_, 'm, CPUS> {
        self.iter_from(Some(cpu))
    }

    fn iter_from(&self, only: Option<usize>) -> Iter<'_, 'm, CPUS> {
        let mut cursor = [0; CPUS];
        let mut end = [0; CPUS];
        for (index, ((cursor, end), buffer)) in cursor.iter_mut().zip(&mut end).zip(&self.cpus).enumerate() {
            if only.is_none_or(|only| only == index) {
                (*cursor, *end) = buffer.span();
            }
        }
        Iter { buffer: self, cursor, end, missed: [false; CPUS] }
    }

    /// Empties every CPU's buffer and zeroes its counters (`echo > trace`).
    ///
    /// The caller stops the writers first, as Linux does: recording off
    /// ([`set_recording`](Self::set_recording)), then wait until every CPU
    /// has left any write it began (the kernel's quiesce), then clear, then
    /// recording back on. Without that it is still safe: a record written
    /// during the clear may survive it or not, and the counters may count
    /// it or not, but no reader returns a torn record.
    ///
    /// It also repairs a ring that two writers at once on one CPU (a broken
    /// writer contract) left inconsistent: each CPU's writer realigns its
    /// ring at its next write.
    pub fn clear(&self) {
        self.cpus.iter().for_each(CpuBuffer::clear);
    }

    /// Gives CPU `cpu` the memory `memory` (its capacity is `memory`'s
    /// length in words; the initial contents do not matter) and returns the
    /// memory it had (empty the first time). The newest records that fit
    /// are moved over; older ones count as overrun (as Linux's shrinking
    /// does). `Err(memory)` if there is no such CPU.
    ///
    /// Safe because `&mut self` excludes every writer and reader; the
    /// kernel, whose buffer is a shared `static`, resizes with
    /// [`replace_memory`](Self::replace_memory).
    pub fn set_memory(&mut self, cpu: usize, memory: &'m mut [u32]) -> Result<&'m mut [u32], &'m mut [u32]> {
        match self.cpus.get_mut(cpu) {
            Some(buffer) => Ok(buffer.set_memory(memory)),
            None => Err(memory),
        }
    }

    /// [`set_memory`](Self::set_memory) through a shared reference: the
    /// resizing of `buffer_size_kb` while the buffer is in use.
    ///
    /// The protocol: recording off ([`set_recording`](Self::set_recording)),
    /// wait until every CPU has left any write (or [`Reservation`]) it began,
    /// hold the readers' lock so that no read call runs, replace each CPU's
    /// memory, free what comes back, recording on again. [`Iter`]s made
    /// before stay usable.
    ///
    /// # Safety
    ///
    /// While this runs, nothing else touches CPU `cpu`'s buffer: no write or
    /// reservation is in progress on it, and no call of
    /// [`consume`](Self::consume), [`consume_cpu`](Self::consume_cpu),
    /// [`Iter::next_into`], [`Cpu::stats`], [`totals`](Self::totals) or
    /// [`clear`](Self::clear) runs (a concurrent access could pair the new
    /// memory's address with the old one's length).
    pub unsafe fn replace_memory(&self, cpu: usize, memory: &'m mut [u32]) -> Result<&'m mut [u32], &'m mut [u32]> {
        match self.cpus.get(cpu) {
            // SAFETY: the caller's guarantee is `replace_memory`'s.
            Some(buffer) => Ok(unsafe { buffer.replace_memory(memory) }),
            None => Err(memory),
        }
    }

    /// Totals over every CPU for the `trace` header.
    pub fn totals(&self) -> Totals {
        self.cpus.iter().fold(Totals::default(), |totals, buffer| {
            let stats = buffer.stats(0);
            Totals {
                entries: totals.entries.wrapping_add(stats.entries),
                written: totals.written.wrapping_add(stats.entries).wrapping_add(stats.overrun),
            }
        })
    }
}

impl<const CPUS: usize> Default for TraceBuffer<'_, CPUS> {
    fn default() -> Self {
        TraceBuffer::new()
    }
}

/// A CPU's next record, as a merge weighs it.
struct Candidate {
    ts: u64,
    cpu: usize,
    position: u64,
    len: usize,
}

impl Candidate {
    /// Makes `self` the oldest if it is older than `oldest`: the CPUs are
    /// offered in increasing order, so a tie stays with the lower CPU.
    #[inline(always)]
    fn keep_older(self, oldest: &mut Option<Candidate>) {
        if oldest.as_ref().is_none_or(|oldest| self.ts < oldest.ts) {
            *oldest = Some(self);
        }
    }
}

/// One CPU's buffer within a [`TraceBuffer`]: where its writer writes.
#[derive(Clone, Copy)]
pub struct Cpu<'a, 'm> {
    index: usize,
    buffer: &'a CpuBuffer<'m>,
    control: &'a Control,
}

impl<'a> Cpu<'a, '_> {
    /// The CPU's number.
    pub fn index(&self) -> usize {
        self.index
    }

    /// Writes a record: `header`, then `payload` (zero-padded to whole
    /// words). Trap-path safe: no lock, no allocation, no panic, bounded.
    /// Call it only on this CPU, never re-entered (the writer contract).
    #[inline]
    pub fn write(&self, header: &Header, payload: &[u8]) -> Result<(), Dropped> {
        self.buffer.write(self.control, header, payload)
    }

    /// Reserves a record of `payload_len` bytes to be filled in place and
    /// committed ([`Reservation`]); the same contract as
    /// [`write`](Self::write), until the commit.
    #[inline]
    pub fn reserve(&self, header: &Header, payload_len: usize) -> Result<Reservation<'a>, Dropped> {
        self.buffer.reserve(self.control, header, payload_len)
    }

    /// This CPU's statistics (`per_cpu/cpuN/stats`); `now` is the caller's
    /// clock, reported as [`CpuStats::now_ts`].
    pub fn stats(&self, now: u64) -> CpuStats {
        self.buffer.stats(now)
    }

    /// The size of this CPU's memory, in bytes (`buffer_size_kb` × 1024).
    pub fn capacity_bytes(&self) -> usize {
        self.buffer.capacity_bytes()
    }
}

/// An iteration over the records in the buffers ([`TraceBuffer::iter`]).
///
/// [`next_into`](Self::next_into) fills an [`Event`] the caller keeps (no
/// allocation, no 1 KiB copy per record); it is also an [`Iterator`] of
/// [`Event`]s by value.
pub struct Iter<'a, 'm, const CPUS: usize> {
    buffer: &'a TraceBuffer<'m, CPUS>,
    /// Per CPU: the next record's position, and where to stop.
    cursor: [u64; CPUS],
    end: [u64; CPUS],
    /// Per CPU: records were skipped since the last one returned.
    missed: [bool; CPUS],
}

impl<const CPUS: usize> Iter<'_, '_, CPUS> {
    /// Copies the next record, in merged order, into `out`; `false` at the
    /// end.
    pub fn next_into(&mut self, out: &mut Event) -> bool {
        loop {
            let mut oldest: Option<Candidate> = None;
            let cpus = self.buffer.cpus.iter().zip(&mut self.cursor).zip(&self.end).zip(&mut self.missed);
            for (cpu, (((buffer, cursor), &end), missed)) in cpus.enumerate() {
                if let Some((header, len)) = buffer.peek_at(cursor, end, missed) {
                    Candidate { ts: header.ts, cpu, position: *cursor, len }.keep_older(&mut oldest);
                }
            }
            let Some(Candidate { cpu: index, position, len, .. }) = oldest else {
                return false;
            };
            let (Some(buffer), Some(cursor), Some(missed)) =
                (self.buffer.cpus.get(index), self.cursor.get_mut(index), self.missed.get_mut(index))
            else {
                return false;
            };
            if buffer.copy_at(position, len, out) {
                *cursor = position + len as u64;
                out.cpu = index;
                out.lost = if *missed { Lost::Unknown } else { Lost::None };
                *missed = false;
                return true;
            }
            // Overwritten while copied: the next peek moves this CPU's
            // cursor to what is left and marks the loss.
        }
    }
}

impl<const CPUS: usize> Iterator for Iter<'_, '_, CPUS> {
    type Item = Event;

    fn next(&mut self) -> Option<Event> {
        let mut event = Event::new();
        self.next_into(&mut event).then_some(event)
    }
}
