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
use std::sync::Barrier;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use trace_buffer::{Dropped, Event, Header, TraceBuffer};

const CPUS: usize = 3;
const WRITES: u64 = 60_000;
/// Ring size: a dozen or so records, so writers overwrite constantly.
const WORDS: usize = 331;

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

/// Writes `WRITES` records on `cpu`, half whole and half in place; returns
/// how many were refused as full.
fn writer(trace: &TraceBuffer<'_, CPUS>, cpu: usize, clock: &AtomicU64) -> u64 {
    let writer = trace.cpu(cpu).unwrap();
    let mut full = 0;
    for seq in 0..WRITES {
        let ts = clock.fetch_add(1, Ordering::Relaxed);
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
    }
    full
}

/// Consumes until the writers are done and the buffer is empty; returns
/// the sequence numbers taken, per CPU, each CPU's in increasing order.
fn consumer(trace: &TraceBuffer<'_, CPUS>, done: &AtomicBool) -> Vec<Vec<u64>> {
    let mut taken = vec![Vec::new(); CPUS];
    let mut event = Event::new();
    loop {
        let finished = done.load(Ordering::Acquire);
        if trace.consume(&mut event) {
            let (seq, _) = check(&event).unwrap();
            let mine: &mut Vec<u64> = &mut taken[event.cpu()];
            assert!(mine.last().is_none_or(|&last| last < seq), "CPU {} went back: {seq} after {mine:?}", event.cpu());
            mine.push(seq);
        } else if finished {
            return taken;
        } else {
            thread::yield_now();
        }
    }
}

/// Iterates over and over until the writers are done: every record
/// intact, each CPU's in increasing order, the merge in timestamp order.
/// Returns how many records it saw.
fn iterator(trace: &TraceBuffer<'_, CPUS>, done: &AtomicBool) -> u64 {
    let mut seen = 0;
    let mut event = Event::new();
    while !done.load(Ordering::Acquire) {
        let mut iter = trace.iter();
        let mut last_seq = [None::<u64>; CPUS];
        let mut last_ts = 0;
        while iter.next_into(&mut event) {
            let (seq, ts) = check(&event).unwrap();
            let last = &mut last_seq[event.cpu()];
            assert!(last.is_none_or(|last| last < seq), "CPU {} went back to {seq} from {last:?}", event.cpu());
            *last = Some(seq);
            assert!(ts >= last_ts, "merge out of order: {ts} after {last_ts}");
            last_ts = ts;
            seen += 1;
        }
    }
    seen
}

fn memory() -> &'static mut [u32] {
    Box::leak(vec![0; WORDS].into_boxed_slice())
}

/// Runs the writers against two consumers and an iterator, then checks
/// the counts; `overwrite` chooses the mode.
fn run(overwrite: bool) {
    let mut trace = TraceBuffer::<'static, CPUS>::new();
    for cpu in 0..CPUS {
        trace.set_memory(cpu, memory()).unwrap();
    }
    trace.set_overwrite(overwrite);
    let (clock, done, start) = (AtomicU64::new(1), AtomicBool::new(false), Barrier::new(CPUS + 3));
    let (full, taken, seen) = thread::scope(|scope| {
        let (trace, clock, done, start) = (&trace, &clock, &done, &start);
        let writers: Vec<_> = (0..CPUS)
            .map(|cpu| {
                scope.spawn(move || {
                    start.wait();
                    writer(trace, cpu, clock)
                })
            })
            .collect();
        let consumers: Vec<_> = (0..2)
            .map(|_| {
                scope.spawn(move || {
                    start.wait();
                    consumer(trace, done)
                })
            })
            .collect();
        let iterator = scope.spawn(move || {
            start.wait();
            iterator(trace, done)
        });
        let full: Vec<u64> = writers.into_iter().map(|writer| writer.join().unwrap()).collect();
        done.store(true, Ordering::Release);
        let taken: Vec<Vec<Vec<u64>>> = consumers.into_iter().map(|consumer| consumer.join().unwrap()).collect();
        (full, taken, iterator.join().unwrap())
    });
    let mut total_taken = 0;
    let mut total_lost = 0;
    for cpu in 0..CPUS {
        let stats = trace.cpu(cpu).unwrap().stats(0);
        let mut both: Vec<u64> = taken.iter().flat_map(|taken| taken[cpu].iter().copied()).collect();
        let returned = both.len() as u64;
        both.sort_unstable();
        both.dedup();
        assert_eq!(both.len() as u64, returned, "CPU {cpu}: a record was returned to both consumers");
        assert_eq!(stats.entries, 0, "the consumers drained CPU {cpu}");
        assert_eq!(stats.read as u64, returned, "CPU {cpu}: read events");
        if overwrite {
            assert_eq!((stats.written as u64, stats.dropped, full[cpu]), (WRITES, 0, 0));
            assert_eq!(returned + stats.overrun as u64, WRITES, "CPU {cpu}: returned + overwritten = written");
        } else {
            assert_eq!(stats.overrun, 0);
            assert_eq!(stats.dropped as u64, full[cpu]);
            assert_eq!(returned + full[cpu], WRITES, "CPU {cpu}: returned + dropped = attempted");
        }
        total_taken += returned;
        total_lost += stats.overrun as u64 + stats.dropped as u64;
    }
    // The test means something only if both readers raced the writers.
    eprintln!("overwrite={overwrite}: taken {total_taken}, lost {total_lost}, iterated {seen}");
    assert!(total_lost > 0 && total_taken > 0 && seen > 0);
}

#[test]
fn overwrite_mode_under_concurrent_readers_returns_only_intact_records_and_exact_counts() {
    run(true);
}

#[test]
fn stop_mode_under_concurrent_readers_returns_only_intact_records_and_exact_counts() {
    run(false);
}

/// An iterator alone (no consumer) against the writers: the iteration's
/// copies are checked only by its re-read of `start`.
#[test]
fn iteration_alone_never_returns_a_torn_record() {
    let mut trace = TraceBuffer::<'static, CPUS>::new();
    for cpu in 0..CPUS {
        trace.set_memory(cpu, memory()).unwrap();
    }
    let (clock, done) = (AtomicU64::new(1), AtomicBool::new(false));
    let seen = thread::scope(|scope| {
        let (trace, clock, done) = (&trace, &clock, &done);
        let iterators: Vec<_> = (0..2).map(|_| scope.spawn(move || iterator(trace, done))).collect();
        let writers: Vec<_> = (0..CPUS).map(|cpu| scope.spawn(move || writer(trace, cpu, clock))).collect();
        writers.into_iter().for_each(|writer| assert_eq!(writer.join().unwrap(), 0));
        done.store(true, Ordering::Release);
        iterators.into_iter().map(|iterator| iterator.join().unwrap()).sum::<u64>()
    });
    for cpu in 0..CPUS {
        let stats = trace.cpu(cpu).unwrap().stats(0);
        assert_eq!(stats.written as u64, WRITES);
        assert_eq!(stats.entries + stats.overrun, stats.written, "CPU {cpu}: present + overwritten = written");
    }
    eprintln!("iterated {seen}");
    assert!(seen > 0);
}

/// One writer and one consumer on one CPU's ring of a few records, each
/// thread with a core of its own: the consumer peeks at the oldest
/// record, which is exactly the one the writer overwrites next, so the
/// copy races the overwrite all the time. Only the compare-and-swap that
/// takes a record stands between that race and a torn record. The writer
/// goes on until the consumer has taken enough records, and overwrites
/// plenty, for the race to have been run many times, however the threads
/// were scheduled.
#[test]
fn a_consumer_racing_the_writer_over_a_tiny_ring_never_returns_a_torn_record() {
    const TAKEN: u64 = 50_000;
    const AT_LEAST: u64 = 500_000;
    const AT_MOST: u64 = 50_000_000;
    let mut trace = TraceBuffer::<'static, CPUS>::new();
    trace.set_memory(1, Box::leak(vec![0; 97].into_boxed_slice())).unwrap();
    let (taken, done) = (AtomicU64::new(0), AtomicBool::new(false));
    let (written, returned) = thread::scope(|scope| {
        let (trace, taken, done) = (&trace, &taken, &done);
        let consumer = scope.spawn(move || {
            let (mut event, mut last) = (Event::new(), None);
            loop {
                let finished = done.load(Ordering::Acquire);
                if trace.consume(&mut event) {
                    let (seq, _) = check(&event).unwrap();
                    assert!(last.is_none_or(|last| last < seq), "went back to {seq} from {last:?}");
                    last = Some(seq);
                    taken.fetch_add(1, Ordering::Relaxed);
                } else if finished {
                    return taken.load(Ordering::Relaxed);
                }
            }
        });
        let writer = trace.cpu(1).unwrap();
        let mut seq = 0;
        while seq < AT_LEAST || (seq < AT_MOST && taken.load(Ordering::Relaxed) < TAKEN) {
            let (header, payload) = record(1, seq, seq + 1);
            writer.write(&header, &payload).unwrap();
            seq += 1;
        }
        done.store(true, Ordering::Release);
        (seq, consumer.join().unwrap())
    });
    let stats = trace.cpu(1).unwrap().stats(0);
    eprintln!("written {written}, taken {returned}, overwritten {}", stats.overrun);
    assert_eq!((stats.entries, stats.read as u64, stats.written as u64), (0, returned, written));
    assert_eq!(returned + stats.overrun as u64, written, "returned + overwritten = written");
    assert!(returned >= TAKEN && stats.overrun > 0);
}
