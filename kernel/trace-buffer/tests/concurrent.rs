//! The buffer under real parallelism: one writer thread per "CPU" writing
//! into small rings as fast as it can (so records are overwritten all the
//! time, often while a reader copies them), against consuming and
//! iterating reader threads.
//!
//! Every record's payload says which record it is (CPU, sequence number,
//! timestamp), has a length and filler that follow from them, and ends
//! with a checksum of the rest; its header repeats some of it. A torn
//! record (words of two records) fails one of those checks. The counts
//! must then add up exactly: per CPU, records taken by the readers plus
//! overwritten (or dropped) plus still present equal those written.
//!
//! How much the threads overlap depends on the scheduler (the host may
//! have two cores and other work), so writers go on past their minimum
//! until the readers have done enough for the race to have been run many
//! times, and each test asserts that they did.
use std::sync::Barrier;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};
use trace_buffer::{Dropped, Event, Header, TraceBuffer};

const CPUS: usize = 3;
/// Records each writer writes at least.
const WRITES: u64 = 60_000;
/// Ring size: a few dozen records, so writers overwrite constantly and a
/// consumer still gets some records past three writers.
const WORDS: usize = 1031;

fn fnv(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5u32, |hash, &byte| (hash ^ byte as u32).wrapping_mul(0x0100_0193))
}

fn payload_len(seq: u64) -> usize {
    24 + (seq % 23) as usize * 4 + 4
}

/// Record `seq` of `cpu`, written at `ts`: header and payload.
fn record(cpu: usize, seq: u64, ts: u64) -> (Header, Vec<u8>) {
    let len = payload_len(seq);
    let mut payload = Vec::with_capacity(len);
    payload.extend(seq.to_ne_bytes());
    payload.extend(ts.to_ne_bytes());
    payload.extend((cpu as u32).to_ne_bytes());
    payload.extend((0..len - 28).map(|i| (seq as usize).wrapping_mul(7).wrapping_add(i * 13 + cpu) as u8));
    let checksum = fnv(&payload);
    payload.extend(checksum.to_ne_bytes());
    let header = Header {
        ts,
        type_id: seq as u16,
        flags: (seq as u8) ^ 0x5a,
        pid: (cpu as u32 * 1_000_000).wrapping_add(seq as u32),
    };
    (header, payload)
}

/// The record an event says it is, `(seq, ts)`, if it is intact: exactly
/// what `record` makes for it.
fn check(event: &Event) -> Result<(u64, u64), String> {
    let payload = event.payload();
    let word = |at: usize| payload.get(at..at + 8).map(|b| u64::from_ne_bytes(b.try_into().unwrap()));
    let (Some(seq), Some(ts)) = (word(0), word(8)) else {
        return Err(format!("payload too short: {event:?}"));
    };
    let (header, expected) = record(event.cpu(), seq, ts);
    if *event.header() != header || payload != expected {
        return Err(format!("torn record on CPU {}: {event:?}", event.cpu()));
    }
    Ok((seq, ts))
}

/// What the threads of one test share.
struct Race {
    /// The timestamps: one clock, so each writer's are increasing.
    clock: AtomicU64,
    /// The writers are finished.
    done: AtomicBool,
    /// A reader thread panicked: writers stop waiting for readers.
    failed: AtomicBool,
    /// Records taken by consumers, and seen by iterators, so far.
    consumed: AtomicU64,
    iterated: AtomicU64,
    /// How many of each the readers must reach before writers stop.
    consumed_enough: u64,
    iterated_enough: u64,
}

/// How long writers wait for the readers to have done enough.
const PATIENCE: Duration = Duration::from_secs(60);

impl Race {
    fn new(consumed_enough: u64, iterated_enough: u64) -> Race {
        Race {
            clock: AtomicU64::new(1),
            done: AtomicBool::new(false),
            failed: AtomicBool::new(false),
            consumed: AtomicU64::new(0),
            iterated: AtomicU64::new(0),
            consumed_enough,
            iterated_enough,
        }
    }

    /// Whether a writer that wrote `seq` records goes on: below `at_least`,
    /// or until the readers have done enough (not beyond `PATIENCE`, nor
    /// once a reader failed).
    fn more(&self, seq: u64, at_least: u64, began: Instant) -> bool {
        let enough = self.consumed.load(Ordering::Relaxed) >= self.consumed_enough
            && self.iterated.load(Ordering::Relaxed) >= self.iterated_enough;
        seq < at_least
            || (!enough && !self.failed.load(Ordering::Relaxed) && (seq % 1024 != 0 || began.elapsed() < PATIENCE))
    }

    /// Asserts that the readers did enough for the test to mean something.
    fn assert_raced(&self) {
        let (consumed, iterated) = (self.consumed.load(Ordering::Relaxed), self.iterated.load(Ordering::Relaxed));
        eprintln!("consumed {consumed}, iterated {iterated}");
        assert!(consumed >= self.consumed_enough && iterated >= self.iterated_enough, "the readers hardly ran");
    }
}

/// Held by a reader thread: records in [`Race::failed`] that it panicked.
struct ReaderGuard<'a>(&'a Race);

impl Drop for ReaderGuard<'_> {
    fn drop(&mut self) {
        if thread::panicking() {
            self.0.failed.store(true, Ordering::Relaxed);
        }
    }
}

/// Writes records on `cpu` for as long as [`Race::more`] says (at least
/// `at_least`), alternately whole and in place. Returns how many it wrote
/// and how many of those were refused as full.
fn writer<const N: usize>(trace: &TraceBuffer<'_, N>, cpu: usize, race: &Race, at_least: u64) -> (u64, u64) {
    let writer = trace.cpu(cpu).unwrap();
    let (mut seq, mut full, began) = (0, 0, Instant::now());
    while race.more(seq, at_least, began) {
        let ts = race.clock.fetch_add(1, Ordering::Relaxed);
        let (header, payload) = record(cpu, seq, ts);
        let result = if seq % 2 == 0 {
            writer.write(&header, &payload)
        } else {
            writer.reserve(&header, payload.len()).map(|mut reservation| {
                reservation.put_bytes(0, &payload).unwrap();
                reservation.commit();
            })
        };
        match result {
            Ok(()) => {}
            Err(Dropped::Full) => full += 1,
            Err(other) => panic!("write refused: {other:?}"),
        }
        seq += 1;
    }
    (seq, full)
}

/// Consumes until the writers are done and the buffer is empty, checking
/// every record; returns the sequence numbers taken, per CPU, each CPU's
/// in increasing order.
fn consumer<const N: usize>(trace: &TraceBuffer<'_, N>, race: &Race) -> Vec<Vec<u64>> {
    let _guard = ReaderGuard(race);
    let mut taken = vec![Vec::new(); N];
    let mut event = Event::new();
    loop {
        let finished = race.done.load(Ordering::Acquire);
        if trace.consume(&mut event) {
            let (seq, _) = check(&event).unwrap();
            let mine: &mut Vec<u64> = &mut taken[event.cpu()];
            assert!(mine.last().is_none_or(|&last| last < seq), "CPU {} went back: {seq} after {mine:?}", event.cpu());
            mine.push(seq);
            race.consumed.fetch_add(1, Ordering::Relaxed);
        } else if finished {
            return taken;
        } else {
            thread::yield_now();
        }
    }
}

/// Iterates over and over until the writers are done: every record
/// intact, each CPU's in increasing order, the merge in timestamp order.
fn iterator<const N: usize>(trace: &TraceBuffer<'_, N>, race: &Race) {
    let _guard = ReaderGuard(race);
    let mut event = Event::new();
    while !race.done.load(Ordering::Acquire) {
        let mut iter = trace.iter();
        let mut last_seq = [None::<u64>; N];
        let mut last_ts = 0;
        while iter.next_into(&mut event) {
            let (seq, ts) = check(&event).unwrap();
            let last = &mut last_seq[event.cpu()];
            assert!(last.is_none_or(|last| last < seq), "CPU {} went back to {seq} from {last:?}", event.cpu());
            *last = Some(seq);
            assert!(ts >= last_ts, "merge out of order: {ts} after {last_ts}");
            last_ts = ts;
            race.iterated.fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn memory(words: usize) -> &'static mut [u32] {
    Box::leak(vec![0; words].into_boxed_slice())
}

/// Runs the writers against two consumers and an iterator, then checks
/// the counts; `overwrite` chooses the mode, `batch` the overwrite batch.
fn run(overwrite: bool, batch: usize) {
    let mut trace = TraceBuffer::<'static, CPUS>::new();
    for cpu in 0..CPUS {
        trace.set_memory(cpu, memory(WORDS)).unwrap();
    }
    trace.set_overwrite(overwrite);
    trace.set_overwrite_batch(batch);
    let race = Race::new(2_000, 2_000);
    let start = Barrier::new(CPUS + 3);
    let (written, taken) = thread::scope(|scope| {
        let (trace, race, start) = (&trace, &race, &start);
        let writers: Vec<_> = (0..CPUS)
            .map(|cpu| {
                scope.spawn(move || {
                    start.wait();
                    writer(trace, cpu, race, WRITES)
                })
            })
            .collect();
        let consumers: Vec<_> = (0..2)
            .map(|_| {
                scope.spawn(move || {
                    start.wait();
                    consumer(trace, race)
                })
            })
            .collect();
        let iterator = scope.spawn(move || {
            start.wait();
            iterator(trace, race)
        });
        let written: Vec<(u64, u64)> = writers.into_iter().map(|writer| writer.join().unwrap()).collect();
        race.done.store(true, Ordering::Release);
        iterator.join().unwrap();
        let taken: Vec<Vec<Vec<u64>>> = consumers.into_iter().map(|consumer| consumer.join().unwrap()).collect();
        (written, taken)
    });
    race.assert_raced();
    let mut lost = 0;
    for (cpu, &(written, full)) in written.iter().enumerate() {
        let stats = trace.cpu(cpu).unwrap().stats(0);
        let mut both: Vec<u64> = taken.iter().flat_map(|taken| taken[cpu].iter().copied()).collect();
        let returned = both.len() as u64;
        both.sort_unstable();
        both.dedup();
        assert_eq!(both.len() as u64, returned, "CPU {cpu}: a record was returned to both consumers");
        assert_eq!(stats.entries, 0, "the consumers drained CPU {cpu}");
        assert_eq!(stats.read as u64, returned, "CPU {cpu}: read events");
        if overwrite {
            assert_eq!((stats.written as u64, stats.dropped, full), (written, 0, 0));
            assert_eq!(returned + stats.overrun as u64, written, "CPU {cpu}: returned + overwritten = written");
        } else {
            assert_eq!(stats.overrun, 0);
            assert_eq!((stats.written as u64, stats.dropped as u64), (written - full, full));
            assert_eq!(returned + full, written, "CPU {cpu}: returned + dropped = attempted");
        }
        lost += stats.overrun + stats.dropped;
    }
    assert!(lost > 0, "the writers never filled a ring");
}

#[test]
fn overwrite_mode_under_concurrent_readers_returns_only_intact_records_and_exact_counts() {
    run(true, 0);
}

#[test]
fn batched_overwrites_under_concurrent_readers_return_only_intact_records_and_exact_counts() {
    // Each claim frees 24 words (a few records) more than it needs: the writers
    // mostly write from their own bound of `start`, which the consumers
    // move on meanwhile.
    run(true, 3 * 8);
}

#[test]
fn stop_mode_under_concurrent_readers_returns_only_intact_records_and_exact_counts() {
    run(false, 0);
}

/// One writer and one iterator (no consumer) on one CPU's ring of three
/// records or so, each thread with a core of its own: the iteration starts
/// at the oldest record, the next to be overwritten, so its copies race
/// the writer all the time and are checked only by its re-read of `start`.
#[test]
fn an_iteration_racing_the_writer_over_a_tiny_ring_never_returns_a_torn_record() {
    let mut trace = TraceBuffer::<'static, 1>::new();
    trace.set_memory(0, memory(97)).unwrap();
    let race = Race::new(0, 100_000);
    let written = thread::scope(|scope| {
        let (trace, race) = (&trace, &race);
        let iterator = scope.spawn(move || iterator(trace, race));
        let (written, full) = writer(trace, 0, race, 500_000);
        assert_eq!(full, 0);
        race.done.store(true, Ordering::Release);
        iterator.join().unwrap();
        written
    });
    race.assert_raced();
    let stats = trace.cpu(0).unwrap().stats(0);
    assert_eq!(stats.written as u64, written);
    assert_eq!(stats.entries + stats.overrun, stats.written, "present + overwritten = written");
}

/// One writer and one consumer on one CPU's ring of three records or so:
/// the consumer peeks at the oldest record, which is exactly the one the
/// writer overwrites next, so the copy races the overwrite all the time.
/// Only the compare-and-swap that takes a record stands between that race
/// and a torn record.
#[test]
fn a_consumer_racing_the_writer_over_a_tiny_ring_never_returns_a_torn_record() {
    let mut trace = TraceBuffer::<'static, 1>::new();
    trace.set_memory(0, memory(97)).unwrap();
    let race = Race::new(20_000, 0);
    let (written, taken) = thread::scope(|scope| {
        let (trace, race) = (&trace, &race);
        let consumer = scope.spawn(move || consumer(trace, race));
        let (written, full) = writer(trace, 0, race, 500_000);
        assert_eq!(full, 0);
        race.done.store(true, Ordering::Release);
        (written, consumer.join().unwrap())
    });
    race.assert_raced();
    let stats = trace.cpu(0).unwrap().stats(0);
    let returned = taken[0].len() as u64;
    eprintln!("written {written}, taken {returned}, overwritten {}", stats.overrun);
    assert_eq!((stats.entries, stats.read as u64, stats.written as u64), (0, returned, written));
    assert_eq!(returned + stats.overrun as u64, written, "returned + overwritten = written");
    assert!(stats.overrun > 0);
}

/// The writer contract broken on purpose: two threads write into the same
/// CPU's ring at once, in both modes and through both write paths, while a
/// consumer and an iterator read it. Records may come out garbled; what
/// must hold is what the crate promises regardless: no panic, no hang, and
/// a ring that works again once one writer is left and it is cleared.
#[test]
fn two_writers_on_one_cpu_garble_records_but_nothing_panics_or_hangs() {
    let mut trace = TraceBuffer::<'static, 1>::new();
    trace.set_memory(0, Box::leak(vec![0; 97].into_boxed_slice())).unwrap();
    let done = AtomicBool::new(false);
    thread::scope(|scope| {
        let (trace, done) = (&trace, &done);
        let readers = [
            scope.spawn(move || {
                let mut event = Event::new();
                while !done.load(Ordering::Acquire) {
                    trace.consume(&mut event);
                }
            }),
            scope.spawn(move || {
                let mut event = Event::new();
                while !done.load(Ordering::Acquire) {
                    let mut iter = trace.iter();
                    while iter.next_into(&mut event) {}
                    let _ = trace.cpu(0).unwrap().stats(0);
                }
            }),
        ];
        let writers: Vec<_> = (0..2u64)
            .map(|id| {
                scope.spawn(move || {
                    let writer = trace.cpu(0).unwrap();
                    for seq in 0..200_000u64 {
                        if id == 0 && seq % 50_000 == 0 {
                            trace.set_overwrite(seq % 100_000 == 0);
                        }
                        let (header, payload) = record(0, seq, seq);
                        let payload = &payload[..(seq as usize * 7) % payload.len()];
                        let _ = if seq % 3 == id {
                            writer.write(&header, payload)
                        } else {
                            writer.reserve(&header, payload.len()).map(|mut reservation| {
                                reservation.put_bytes(0, payload).unwrap();
                                reservation.commit();
                            })
                        };
                    }
                })
            })
            .collect();
        writers.into_iter().for_each(|writer| writer.join().unwrap());
        done.store(true, Ordering::Release);
        readers.into_iter().for_each(|reader| reader.join().unwrap());
    });
    // One writer again, and a clear: records come back intact.
    trace.clear();
    trace.set_overwrite(true);
    let writer = trace.cpu(0).unwrap();
    for seq in 0..100 {
        let (header, payload) = record(0, seq, 1_000_000 + seq);
        writer.write(&header, &payload).unwrap();
    }
    let events: Vec<Event> = trace.iter().collect();
    let seqs: Vec<u64> = events.iter().map(|event| check(event).unwrap().0).collect();
    // The newest records that fit in 97 words, whole.
    let mut fit = Vec::new();
    let mut used = 0;
    for seq in (0..100).rev() {
        used += 4 + payload_len(seq) / 4;
        if used > 97 {
            break;
        }
        fit.insert(0, seq);
    }
    assert_eq!(seqs, fit);
    let stats = trace.cpu(0).unwrap().stats(0);
    assert_eq!((stats.written, stats.entries + stats.overrun), (100, 100));
}
