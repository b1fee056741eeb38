//! The trace buffer's single-threaded semantics, case by case: order,
//! contents, wrap-around, the exact overrun and dropped counts of both
//! modes, the merge across CPUs, clearing, resizing, in-place records and
//! the statistics of `per_cpu/cpuN/stats`.
use trace_buffer::{CpuStats, Dropped, Event, Header, Lost, MAX_PAYLOAD, OutOfBounds, Totals, TraceBuffer};

/// A buffer of `CPUS` CPUs with `words` words of memory each.
fn buffer<const CPUS: usize>(words: usize) -> TraceBuffer<'static, CPUS> {
    let mut trace = TraceBuffer::new();
    for cpu in 0..CPUS {
        let old = trace.set_memory(cpu, Box::leak(vec![0xdead_beef; words].into_boxed_slice())).unwrap();
        assert!(old.is_empty());
    }
    trace
}

fn header(ts: u64) -> Header {
    Header { ts, type_id: (ts % 65_536) as u16, flags: (ts % 251) as u8, pid: (ts * 3) as u32 }
}

/// A payload of `len` bytes that says which record it belongs to.
fn payload(seq: u64, len: usize) -> Vec<u8> {
    (0..len).map(|i| (seq as usize * 31 + i * 7) as u8).collect()
}

/// The payload as it comes back: zero-padded to whole words.
fn padded(bytes: &[u8]) -> Vec<u8> {
    let mut padded = bytes.to_vec();
    padded.resize(bytes.len().div_ceil(4) * 4, 0);
    padded
}

fn drain<const CPUS: usize>(trace: &TraceBuffer<'_, CPUS>) -> Vec<Event> {
    let mut events = Vec::new();
    let mut event = Event::new();
    while trace.consume(&mut event) {
        events.push(event.clone());
    }
    events
}

fn timestamps(events: &[Event]) -> Vec<u64> {
    events.iter().map(Event::ts).collect()
}

#[test]
fn records_come_back_oldest_first_with_their_header_and_payload() {
    let trace = buffer::<1>(256);
    let cpu = trace.cpu(0).unwrap();
    for (seq, len) in [(1, 0), (2, 1), (3, 4), (4, 7), (5, 64)] {
        cpu.write(&header(seq), &payload(seq, len)).unwrap();
    }
    let expected: Vec<(Header, Vec<u8>)> =
        [(1, 0), (2, 1), (3, 4), (4, 7), (5, 64)].map(|(seq, len)| (header(seq), padded(&payload(seq, len)))).to_vec();
    let iterated: Vec<_> = trace.iter().map(|event| (*event.header(), event.payload().to_vec())).collect();
    assert_eq!(iterated, expected, "iteration");
    assert_eq!(cpu.stats(0).entries, 5, "iteration takes nothing");
    let consumed: Vec<_> = drain(&trace).iter().map(|event| (*event.header(), event.payload().to_vec())).collect();
    assert_eq!(consumed, expected, "consumption");
    assert_eq!(trace.iter().count(), 0);
    let mut event = Event::new();
    assert!(!trace.consume(&mut event), "nothing left to consume");
}

#[test]
fn overwrite_mode_keeps_the_newest_records_and_counts_the_rest_as_overrun() {
    // 64 words; each record is 4 header + 4 payload words: 8 fit.
    let trace = buffer::<1>(64);
    let cpu = trace.cpu(0).unwrap();
    for seq in 0..100 {
        cpu.write(&header(seq), &payload(seq, 16)).unwrap();
    }
    let stats = cpu.stats(1234);
    assert_eq!(
        stats,
        CpuStats {
            entries: 8,
            overrun: 92,
            commit_overrun: 0,
            bytes: 8 * 32,
            oldest_ts: Some(92),
            now_ts: 1234,
            dropped: 0,
            read: 0,
            written: 100,
        }
    );
    assert_eq!(trace.totals(), Totals { entries: 8, written: 100 });
    let events = drain(&trace);
    assert_eq!(timestamps(&events), (92..100).collect::<Vec<_>>());
    for event in &events {
        assert_eq!(event.payload(), payload(event.ts(), 16));
    }
    assert_eq!(events[0].lost_before(), Lost::Exactly(92), "the first read reports what was overwritten");
    assert!(events[1..].iter().all(|event| event.lost_before() == Lost::None));
    let stats = cpu.stats(0);
    assert_eq!((stats.entries, stats.read, stats.overrun, stats.bytes, stats.oldest_ts), (0, 8, 92, 0, None));
    assert_eq!(trace.totals(), Totals { entries: 0, written: 92 }, "consumed records are in neither total");
}

#[test]
fn stop_mode_drops_new_records_and_counts_them() {
    let trace = buffer::<1>(64);
    trace.set_overwrite(false);
    let cpu = trace.cpu(0).unwrap();
    let results: Vec<_> = (0..12).map(|seq| cpu.write(&header(seq), &payload(seq, 16))).collect();
    assert!(results[..8].iter().all(Result::is_ok));
    assert!(results[8..].iter().all(|result| *result == Err(Dropped::Full)));
    let stats = cpu.stats(0);
    assert_eq!((stats.entries, stats.dropped, stats.overrun, stats.written), (8, 4, 0, 8));
    // Consuming makes room again, record by record.
    let mut event = Event::new();
    assert!(trace.consume(&mut event) && event.ts() == 0);
    assert_eq!(cpu.write(&header(100), &payload(100, 16)), Ok(()));
    assert_eq!(cpu.write(&header(101), &payload(101, 16)), Err(Dropped::Full));
    assert_eq!(timestamps(&drain(&trace)), [1, 2, 3, 4, 5, 6, 7, 100]);
    assert_eq!(cpu.stats(0).dropped, 5);
}

#[test]
fn the_mode_switches_at_run_time() {
    let trace = buffer::<1>(64);
    let cpu = trace.cpu(0).unwrap();
    assert!(trace.overwrite(), "overwrite is the default, as in Linux");
    for seq in 0..10 {
        cpu.write(&header(seq), &payload(seq, 16)).unwrap();
    }
    trace.set_overwrite(false);
    assert_eq!(cpu.write(&header(10), &payload(10, 16)), Err(Dropped::Full));
    trace.set_overwrite(true);
    assert_eq!(cpu.write(&header(11), &payload(11, 16)), Ok(()));
    let stats = cpu.stats(0);
    assert_eq!((stats.overrun, stats.dropped, stats.entries), (3, 1, 8));
    assert_eq!(timestamps(&drain(&trace)), [3, 4, 5, 6, 7, 8, 9, 11]);
}

#[test]
fn variable_sizes_stay_exact_through_many_wraps_of_an_odd_sized_ring() {
    // 97 words: records straddle the ring's end at every offset.
    let trace = buffer::<1>(97);
    let cpu = trace.cpu(0).unwrap();
    let mut model: std::collections::VecDeque<(u64, usize)> = Default::default();
    let (mut used, mut overrun) = (0, 0);
    let mut state = 12345u64;
    for seq in 0..5000 {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let len = (state >> 33) as usize % 150;
        let words = 4 + len.div_ceil(4);
        cpu.write(&header(seq), &payload(seq, len)).unwrap();
        model.push_back((seq, len));
        used += words;
        while used > 97 {
            let (_, len) = model.pop_front().unwrap();
            used -= 4 + len.div_ceil(4);
            overrun += 1;
        }
        if seq % 97 == 0 || seq > 4990 {
            let present: Vec<_> = trace.iter().map(|event| (*event.header(), event.payload().to_vec())).collect();
            let expected: Vec<_> = model.iter().map(|&(seq, len)| (header(seq), padded(&payload(seq, len)))).collect();
            assert_eq!(present, expected, "after record {seq}");
            let stats = cpu.stats(0);
            assert_eq!((stats.entries, stats.overrun, stats.bytes), (model.len(), overrun, used * 4));
        }
    }
}

#[test]
fn a_record_that_can_never_fit_is_refused_and_not_counted() {
    let trace = buffer::<2>(32);
    let cpu = trace.cpu(0).unwrap();
    // 4 header words + 28 payload words = 32 words: exactly the ring.
    assert_eq!(cpu.write(&header(1), &[7; 112]), Ok(()));
    assert_eq!(cpu.write(&header(2), &[7; 113]), Err(Dropped::TooLarge), "one word more than the ring");
    assert_eq!(cpu.write(&header(3), &vec![0; MAX_PAYLOAD + 1]), Err(Dropped::TooLarge));
    assert!(cpu.reserve(&header(3), MAX_PAYLOAD + 1).is_err());
    let stats = cpu.stats(0);
    assert_eq!((stats.entries, stats.written, stats.dropped, stats.overrun), (1, 1, 0, 0));
    // The largest payload fits a ring large enough.
    let big = buffer::<1>(255);
    let cpu = big.cpu(0).unwrap();
    assert_eq!(cpu.write(&header(1), &vec![9; MAX_PAYLOAD]), Ok(()));
    assert_eq!(big.iter().next().unwrap().payload(), vec![9; MAX_PAYLOAD]);
    // A CPU without memory takes nothing; a CPU past the last does not exist.
    let none = TraceBuffer::<'static, 2>::new();
    assert_eq!(none.cpu(1).unwrap().write(&header(1), &[]), Err(Dropped::TooLarge));
    assert!(none.cpu(2).is_none());
    assert_eq!(none.cpu(1).unwrap().stats(0), CpuStats::default());
}

#[test]
fn readers_merge_the_cpus_by_timestamp_with_ties_to_the_lower_cpu() {
    let trace = buffer::<3>(256);
    let writes = [(2, 1), (0, 1), (1, 1), (0, 3), (2, 5), (1, 4), (1, 5), (0, 5), (2, 9)];
    // Each CPU's timestamps grow; the order of writes across CPUs is free.
    for (cpu, ts) in writes {
        trace.cpu(cpu).unwrap().write(&header(ts), &[cpu as u8; 3]).unwrap();
    }
    let expected = [(0, 1), (1, 1), (2, 1), (0, 3), (1, 4), (0, 5), (1, 5), (2, 5), (2, 9)];
    let iterated: Vec<_> = trace.iter().map(|event| (event.cpu(), event.ts())).collect();
    assert_eq!(iterated, expected);
    for event in trace.iter() {
        assert_eq!(event.payload(), [event.cpu() as u8, event.cpu() as u8, event.cpu() as u8, 0]);
    }
    let only_one: Vec<_> = trace.iter_cpu(1).map(|event| (event.cpu(), event.ts())).collect();
    assert_eq!(only_one, [(1, 1), (1, 4), (1, 5)]);
    assert_eq!(trace.iter_cpu(3).count(), 0);
    let mut event = Event::new();
    assert!(trace.consume_cpu(2, &mut event) && (event.cpu(), event.ts()) == (2, 1));
    assert!(!trace.consume_cpu(3, &mut event));
    let consumed: Vec<_> = drain(&trace).iter().map(|event| (event.cpu(), event.ts())).collect();
    assert_eq!(consumed, [(0, 1), (1, 1), (0, 3), (1, 4), (0, 5), (1, 5), (2, 5), (2, 9)]);
}

#[test]
fn an_iteration_shows_what_was_there_when_it_began() {
    let trace = buffer::<1>(64);
    let cpu = trace.cpu(0).unwrap();
    for seq in 0..4 {
        cpu.write(&header(seq), &payload(seq, 16)).unwrap();
    }
    let mut iter = trace.iter();
    let mut event = Event::new();
    assert!(iter.next_into(&mut event) && event.ts() == 0);
    // Six more records: 0..=1 are overwritten, 2 and 3 survive, 4..=9 are new.
    for seq in 4..10 {
        cpu.write(&header(seq), &payload(seq, 16)).unwrap();
    }
    assert!(iter.next_into(&mut event));
    assert_eq!((event.ts(), event.lost_before()), (2, Lost::Unknown), "record 1 was overwritten under the iteration");
    assert!(iter.next_into(&mut event));
    assert_eq!((event.ts(), event.lost_before()), (3, Lost::None));
    assert!(!iter.next_into(&mut event), "records written after it began are not part of it");
    assert!(!iter.next_into(&mut event));
}

#[test]
fn consuming_reports_exactly_how_many_records_were_overwritten_in_between() {
    let trace = buffer::<2>(64);
    for seq in 0..10 {
        trace.cpu(0).unwrap().write(&header(seq), &payload(seq, 16)).unwrap();
    }
    trace.cpu(1).unwrap().write(&header(100), &[]).unwrap();
    let mut event = Event::new();
    assert!(trace.consume(&mut event));
    assert_eq!((event.cpu(), event.ts(), event.lost_before()), (0, 2, Lost::Exactly(2)));
    for seq in 10..15 {
        trace.cpu(0).unwrap().write(&header(seq), &payload(seq, 16)).unwrap();
    }
    // 7 present + 5 new = 12 > 8: records 3, 4, 5 and 6 go.
    assert!(trace.consume(&mut event));
    assert_eq!((event.ts(), event.lost_before()), (7, Lost::Exactly(4)));
    assert!(trace.consume(&mut event));
    assert_eq!((event.ts(), event.lost_before()), (8, Lost::None));
    let rest = drain(&trace);
    assert_eq!(timestamps(&rest), [9, 10, 11, 12, 13, 14, 100]);
    assert_eq!(rest.last().unwrap().lost_before(), Lost::None, "CPU 1 lost nothing");
}

#[test]
fn writes_while_recording_is_off_leave_no_trace() {
    let trace = buffer::<1>(64);
    let cpu = trace.cpu(0).unwrap();
    cpu.write(&header(1), &[1]).unwrap();
    trace.set_recording(false);
    assert!(!trace.is_recording());
    assert_eq!(cpu.write(&header(2), &[2]), Err(Dropped::TracingOff));
    assert!(cpu.reserve(&header(2), 4).is_err());
    trace.set_recording(true);
    cpu.write(&header(3), &[3]).unwrap();
    assert_eq!(timestamps(&drain(&trace)), [1, 3]);
    let stats = cpu.stats(0);
    assert_eq!((stats.written, stats.dropped, stats.read), (2, 0, 2));
}

#[test]
fn clearing_empties_every_cpu_and_zeroes_its_counters() {
    let trace = buffer::<2>(64);
    trace.set_overwrite(false);
    for seq in 0..10 {
        trace.cpu(0).unwrap().write(&header(seq), &payload(seq, 16)).unwrap_or(());
        trace.cpu(1).unwrap().write(&header(seq), &payload(seq, 4)).unwrap();
    }
    let mut event = Event::new();
    assert!(trace.consume(&mut event));
    trace.set_overwrite(true);
    trace.clear();
    assert_eq!(trace.iter().count(), 0);
    assert!(!trace.consume(&mut event));
    for cpu in 0..2 {
        assert_eq!(trace.cpu(cpu).unwrap().stats(7), CpuStats { now_ts: 7, ..CpuStats::default() });
    }
    assert_eq!(trace.totals(), Totals::default());
    // The buffer works on from where it was (positions never go back).
    for seq in 20..30 {
        trace.cpu(0).unwrap().write(&header(seq), &payload(seq, 16)).unwrap();
    }
    assert_eq!(timestamps(&trace.iter().collect::<Vec<_>>()), (22..30).collect::<Vec<_>>());
    assert_eq!(trace.cpu(0).unwrap().stats(0).overrun, 2);
}

#[test]
fn replacing_memory_keeps_the_newest_records_that_fit() {
    let mut trace = buffer::<1>(64);
    for seq in 0..6 {
        trace.cpu(0).unwrap().write(&header(seq), &payload(seq, 16)).unwrap();
    }
    // Grow (and move the records to an odd offset): all six stay.
    let old = trace.set_memory(0, Box::leak(vec![0; 100].into_boxed_slice())).unwrap();
    assert_eq!(old.len(), 64);
    assert_eq!(trace.cpu(0).unwrap().capacity_bytes(), 400);
    assert_eq!(timestamps(&trace.iter().collect::<Vec<_>>()), [0, 1, 2, 3, 4, 5]);
    for seq in 6..20 {
        trace.cpu(0).unwrap().write(&header(seq), &payload(seq, 16)).unwrap();
    }
    // 100 words hold 12 records of 8 words.
    assert_eq!(timestamps(&trace.iter().collect::<Vec<_>>()), (8..20).collect::<Vec<_>>());
    // Shrink through the shared-reference path: the oldest go, as overrun.
    trace.set_recording(false);
    // SAFETY: no other thread touches the buffer.
    let old = unsafe { trace.replace_memory(0, Box::leak(vec![0; 20].into_boxed_slice())) }.unwrap();
    trace.set_recording(true);
    assert_eq!(old.len(), 100);
    let events: Vec<_> = trace.iter().collect();
    assert_eq!(timestamps(&events), [18, 19]);
    assert!(events.iter().all(|event| event.payload() == payload(event.ts(), 16)));
    let stats = trace.cpu(0).unwrap().stats(0);
    assert_eq!((stats.entries, stats.overrun, stats.bytes), (2, 18, 64));
    // Down to nothing: every record goes and every write is too large.
    trace.set_memory(0, &mut []).unwrap();
    assert_eq!(trace.iter().count(), 0);
    assert_eq!(trace.cpu(0).unwrap().write(&header(30), &[]), Err(Dropped::TooLarge));
    assert_eq!(trace.cpu(0).unwrap().stats(0).overrun, 20);
    assert!(trace.set_memory(1, &mut []).is_err(), "no CPU 1");
}

#[test]
fn a_reservation_is_filled_in_place_and_seen_only_once_committed() {
    let trace = buffer::<1>(64);
    let cpu = trace.cpu(0).unwrap();
    let mut record = cpu.reserve(&header(1), 15).unwrap();
    assert_eq!(record.payload_len(), 15);
    record.put_u32(0, 0x1122_3344).unwrap();
    record.put_u16(4, 0x5566).unwrap();
    record.put_u8(6, 0x77).unwrap();
    record.put_u64(7, 0x0102_0304_0506_0708).unwrap(); // straddles words
    assert_eq!(record.put_u8(15, 0), Err(OutOfBounds));
    assert_eq!(record.put_bytes(usize::MAX, &[1]), Err(OutOfBounds));
    assert_eq!(trace.iter().count(), 0, "not committed yet");
    record.commit();
    let mut expected = Vec::new();
    expected.extend(0x1122_3344u32.to_ne_bytes());
    expected.extend(0x5566u16.to_ne_bytes());
    expected.push(0x77);
    expected.extend(0x0102_0304_0506_0708u64.to_ne_bytes());
    expected.push(0); // padding
    assert_eq!(trace.iter().next().unwrap().payload(), expected);
    // A reservation dropped without commit leaves nothing behind.
    drop(cpu.reserve(&header(2), 8).unwrap());
    cpu.write(&header(3), &[3; 4]).unwrap();
    assert_eq!(timestamps(&trace.iter().collect::<Vec<_>>()), [1, 3]);
    assert_eq!(cpu.stats(0).written, 2);
}

#[test]
fn the_header_fields_keep_their_full_range() {
    let trace = buffer::<1>(64);
    let cpu = trace.cpu(0).unwrap();
    let extreme = Header { ts: u64::MAX - 1, type_id: u16::MAX, flags: u8::MAX, pid: u32::MAX };
    cpu.write(&Header { ts: 0, type_id: 0, flags: 0, pid: 0 }, &[]).unwrap();
    cpu.write(&extreme, &[0xff; 8]).unwrap();
    let headers: Vec<_> = trace.iter().map(|event| *event.header()).collect();
    assert_eq!(headers, [Header::default(), extreme]);
}

/// The kernel's way: a `static` buffer, memory given and replaced through
/// a shared reference (tracing stopped), records written and read through
/// it.
#[test]
fn a_static_buffer_is_set_up_and_resized_through_shared_references() {
    static TRACE: TraceBuffer<'static, 2> = TraceBuffer::new();
    for cpu in 0..2 {
        // SAFETY: nothing else uses TRACE yet.
        let old = unsafe { TRACE.replace_memory(cpu, Box::leak(vec![0; 64].into_boxed_slice())) }.unwrap();
        assert!(old.is_empty());
    }
    TRACE.cpu(1).unwrap().write(&header(5), &payload(5, 10)).unwrap();
    TRACE.cpu(0).unwrap().write(&header(6), &payload(6, 10)).unwrap();
    // buffer_size_kb: recording off, (every CPU quiesced), swap, free, on.
    TRACE.set_recording(false);
    for cpu in 0..2 {
        // SAFETY: recording is off and no other thread uses TRACE.
        let old = unsafe { TRACE.replace_memory(cpu, Box::leak(vec![0; 128].into_boxed_slice())) }.unwrap();
        // SAFETY: `old` is the boxed slice leaked above, given back whole
        // and used by nothing else any more.
        drop(unsafe { Box::from_raw(old) });
    }
    TRACE.set_recording(true);
    assert_eq!(TRACE.cpu(0).unwrap().capacity_bytes(), 512);
    let events: Vec<_> = TRACE.iter().map(|event| (event.cpu(), event.ts(), event.payload().to_vec())).collect();
    assert_eq!(events, [(1, 5, padded(&payload(5, 10))), (0, 6, padded(&payload(6, 10)))]);
}
