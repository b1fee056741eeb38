//! Random operation sequences on three CPUs against a model made of one
//! `VecDeque` of records per CPU: after every operation, what a write
//! returns, what a consuming read takes (and the loss it reports), what an
//! iteration shows and every statistic must be the model's, exactly.
use proptest::prelude::*;
use std::collections::VecDeque;
use trace_buffer::{CpuStats, Dropped, Event, Header, Lost, Totals, TraceBuffer};

const CPUS: usize = 3;

#[derive(Clone, Debug)]
enum Op {
    /// A record of `len` payload bytes, `tick` clock steps after the last
    /// (0: the same timestamp, so ties happen), written whole or in place.
    Write {
        cpu: usize,
        len: usize,
        tick: u64,
        in_place: bool,
    },
    Consume,
    ConsumeCpu(usize),
    Iterate,
    IterateCpu(usize),
    Overwrite(bool),
    Recording(bool),
    Clear,
    Resize {
        cpu: usize,
        words: usize,
    },
    Stats,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        12 => (0..CPUS, 0usize..120, 0u64..3, any::<bool>())
            .prop_map(|(cpu, len, tick, in_place)| Op::Write { cpu, len, tick, in_place }),
        4 => Just(Op::Consume),
        1 => (0..CPUS).prop_map(Op::ConsumeCpu),
        1 => Just(Op::Iterate),
        1 => (0..CPUS).prop_map(Op::IterateCpu),
        1 => any::<bool>().prop_map(Op::Overwrite),
        1 => prop::bool::weighted(0.7).prop_map(Op::Recording),
        1 => prop::bool::weighted(0.2).prop_map(|clear| if clear { Op::Clear } else { Op::Stats }),
        1 => (0..CPUS, 0usize..100).prop_map(|(cpu, words)| Op::Resize { cpu, words }),
        2 => Just(Op::Stats),
    ]
}

#[derive(Clone, Copy, Debug)]
struct Record {
    seq: u64,
    ts: u64,
    len: usize,
}

impl Record {
    fn words(&self) -> usize {
        4 + self.len.div_ceil(4)
    }

    fn header(&self) -> Header {
        Header { ts: self.ts, type_id: self.seq as u16, flags: (self.seq * 7) as u8, pid: (self.seq * 13) as u32 }
    }

    fn payload(&self) -> Vec<u8> {
        (0..self.len).map(|i| (self.seq as usize * 31 + i * 7 + 1) as u8).collect()
    }

    fn padded(&self) -> Vec<u8> {
        let mut padded = self.payload();
        padded.resize(self.len.div_ceil(4) * 4, 0);
        padded
    }
}

#[derive(Default)]
struct ModelCpu {
    cap: usize,
    records: VecDeque<Record>,
    used: usize,
    written: usize,
    overrun: usize,
    dropped: usize,
    read: usize,
    reported: usize,
}

impl ModelCpu {
    fn shrink_to(&mut self, cap: usize) {
        while self.used > cap {
            let gone = self.records.pop_front().unwrap();
            self.used -= gone.words();
            self.overrun += 1;
        }
    }
}

/// The model's merge: oldest first, ties to the lower CPU.
fn merged(cpus: &[ModelCpu]) -> Vec<(usize, Record)> {
    let mut queues: Vec<VecDeque<Record>> = cpus.iter().map(|cpu| cpu.records.clone()).collect();
    let mut out = Vec::new();
    while let Some(cpu) =
        (0..queues.len()).filter(|&cpu| !queues[cpu].is_empty()).min_by_key(|&cpu| (queues[cpu][0].ts, cpu))
    {
        out.push((cpu, queues[cpu].pop_front().unwrap()));
    }
    out
}

fn seen(event: &Event) -> (usize, Header, Vec<u8>) {
    (event.cpu(), *event.header(), event.payload().to_vec())
}

fn expected(cpu: usize, record: &Record) -> (usize, Header, Vec<u8>) {
    (cpu, record.header(), record.padded())
}

fn memory(words: usize) -> &'static mut [u32] {
    Box::leak(vec![0x5a5a_5a5a; words].into_boxed_slice())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn the_buffer_matches_a_model_of_one_queue_per_cpu(
        caps in proptest::array::uniform3(0usize..100),
        ops in proptest::collection::vec(op(), 1..250),
        batch in prop_oneof![Just(0usize), 0usize..120],
    ) {
        let mut trace = TraceBuffer::<'static, CPUS>::new();
        trace.set_overwrite_batch(batch);
        let mut model: Vec<ModelCpu> = caps.iter().map(|&cap| ModelCpu { cap, ..ModelCpu::default() }).collect();
        for (cpu, &cap) in caps.iter().enumerate() {
            trace.set_memory(cpu, memory(cap)).unwrap();
        }
        let (mut overwrite, mut recording, mut clock, mut seq) = (true, true, 0u64, 0u64);
        let mut event = Event::new();
        for op in ops {
            match op {
                Op::Write { cpu, len, tick, in_place } => {
                    clock += tick;
                    seq += 1;
                    let record = Record { seq, ts: clock, len };
                    let writer = trace.cpu(cpu).unwrap();
                    let result = if in_place {
                        writer.reserve(&record.header(), len).map(|mut reservation| {
                            let payload = record.payload();
                            if seq % 2 == 0 {
                                // In two pieces, at an offset that need not be aligned.
                                let (first, second) = payload.split_at(len / 3);
                                reservation.put_bytes(first.len(), second).unwrap();
                                reservation.put_bytes(0, first).unwrap();
                            } else {
                                // Word by word, the last from the end backwards.
                                let (words, rest) = payload.as_chunks::<4>();
                                for (index, word) in words.iter().enumerate().rev() {
                                    reservation.put_u32(index * 4, u32::from_ne_bytes(*word)).unwrap();
                                }
                                reservation.put_bytes(words.len() * 4, rest).unwrap();
                            }
                            reservation.commit();
                        })
                    } else {
                        writer.write(&record.header(), &record.payload())
                    };
                    let model = &mut model[cpu];
                    let expected = if !recording {
                        Err(Dropped::TracingOff)
                    } else if record.words() > model.cap {
                        Err(Dropped::TooLarge)
                    } else if model.used + record.words() > model.cap && !overwrite {
                        model.dropped += 1;
                        Err(Dropped::Full)
                    } else {
                        // A write that must claim frees `batch` words more
                        // (at most down to an empty ring).
                        if model.used + record.words() > model.cap {
                            let batch = batch.min(model.cap - record.words());
                            model.shrink_to(model.cap - record.words() - batch);
                        }
                        model.records.push_back(record);
                        model.used += record.words();
                        model.written += 1;
                        Ok(())
                    };
                    prop_assert_eq!(result, expected);
                }
                Op::Consume | Op::ConsumeCpu(_) => {
                    let only = if let Op::ConsumeCpu(cpu) = op { Some(cpu) } else { None };
                    let next = merged(&model).into_iter().find(|(cpu, _)| only.is_none_or(|only| only == *cpu));
                    let got = match only {
                        Some(cpu) => trace.consume_cpu(cpu, &mut event),
                        None => trace.consume(&mut event),
                    };
                    prop_assert_eq!(got, next.is_some());
                    if let Some((cpu, record)) = next {
                        prop_assert_eq!(seen(&event), expected(cpu, &record));
                        let model = &mut model[cpu];
                        model.records.pop_front();
                        model.used -= record.words();
                        model.read += 1;
                        let lost = model.overrun - model.reported;
                        model.reported = model.overrun;
                        let lost = if lost == 0 { Lost::None } else { Lost::Exactly(lost) };
                        prop_assert_eq!(event.lost_before(), lost);
                    }
                }
                Op::Iterate | Op::IterateCpu(_) => {
                    let only = if let Op::IterateCpu(cpu) = op { Some(cpu) } else { None };
                    let events: Vec<Event> = match only {
                        Some(cpu) => trace.iter_cpu(cpu).collect(),
                        None => trace.iter().collect(),
                    };
                    prop_assert!(events.iter().all(|event| event.lost_before() == Lost::None));
                    let events: Vec<_> = events.iter().map(seen).collect();
                    let wanted: Vec<_> = merged(&model)
                        .iter()
                        .filter(|(cpu, _)| only.is_none_or(|only| only == *cpu))
                        .map(|(cpu, record)| expected(*cpu, record))
                        .collect();
                    prop_assert_eq!(events, wanted);
                }
                Op::Overwrite(on) => {
                    overwrite = on;
                    trace.set_overwrite(on);
                }
                Op::Recording(on) => {
                    recording = on;
                    trace.set_recording(on);
                }
                Op::Clear => {
                    trace.clear();
                    for cpu in &mut model {
                        *cpu = ModelCpu { cap: cpu.cap, ..ModelCpu::default() };
                    }
                }
                Op::Resize { cpu, words } => {
                    let old = trace.set_memory(cpu, memory(words)).unwrap();
                    prop_assert_eq!(old.len(), model[cpu].cap);
                    model[cpu].cap = words;
                    model[cpu].shrink_to(words);
                }
                Op::Stats => {}
            }
            // Every statistic, after every operation.
            for (cpu, model) in model.iter().enumerate() {
                let stats = trace.cpu(cpu).unwrap().stats(clock);
                prop_assert_eq!(stats, CpuStats {
                    entries: model.records.len(),
                    overrun: model.overrun,
                    commit_overrun: 0,
                    bytes: model.used * 4,
                    oldest_ts: model.records.front().map(|record| record.ts),
                    now_ts: clock,
                    dropped: model.dropped,
                    read: model.read,
                    written: model.written,
                });
                prop_assert_eq!(trace.cpu(cpu).unwrap().capacity_bytes(), model.cap * 4);
            }
            let entries: usize = model.iter().map(|cpu| cpu.records.len()).sum();
            let overrun: usize = model.iter().map(|cpu| cpu.overrun).sum();
            prop_assert_eq!(trace.totals(), Totals { entries, written: entries + overrun });
        }
    }
}
