//! The trap path under real parallelism: four threads fire the same
//! triggers at once, as four CPUs would, and the totals must come out
//! exact: every hit counted once, every sum whole, no key twice, counts
//! run down exactly.
//!
//! How much the threads overlap depends on the scheduler (the host may
//! have two cores and other work); rounds start together at a barrier and
//! insert the same new keys in the same order, so that claims of a slot
//! race each round.
mod common;

use common::{kmalloc, kmalloc_event};
use event_filter::{Context, NamedHists, Triggers};
use std::collections::BTreeMap;
use std::sync::Barrier;
use std::thread;

const THREADS: u32 = 4;

fn on(cpu: u32) -> Context<'static> {
    Context { comm: b"worker", cpu, timestamp_ns: 0, tracing_on: true }
}

fn triggers(commands: &[&str]) -> Triggers {
    let mut triggers = Triggers::new();
    let mut named = NamedHists::new();
    for command in commands {
        triggers.write(command, &kmalloc_event(), &mut named).unwrap();
    }
    triggers
}

/// Per key: (hitcount, bytes_req sum) from the hist file's lines.
fn parse_entries(hist: &str) -> BTreeMap<u64, (u64, u64)> {
    let mut entries = BTreeMap::new();
    for line in hist.lines().filter(|l| l.starts_with("{ call_site:")) {
        let words: Vec<&str> = line.split_whitespace().collect();
        // { call_site: K } hitcount: N bytes_req: M
        let key = words[2].parse().unwrap();
        let hits = words[5].parse().unwrap();
        let bytes = words[7].parse().unwrap();
        assert!(entries.insert(key, (hits, bytes)).is_none(), "key {key} twice");
    }
    entries
}

fn totals(hist: &str) -> (u64, u64, u64) {
    let value = |name: &str| -> u64 {
        let line = hist.lines().find(|l| l.trim_start().starts_with(name)).unwrap();
        line.split(':').nth(1).unwrap().trim().parse().unwrap()
    };
    (value("Hits:"), value("Entries:"), value("Dropped:"))
}

#[test]
fn four_writers_count_exactly() {
    const KEYS: u32 = 96;
    const ROUNDS: u32 = 150;
    const REPEATS: u32 = 8;
    let triggers = triggers(&["hist:keys=call_site:vals=bytes_req:size=256"]);
    let hist = triggers.iter().next().unwrap().as_hist().unwrap();
    let barrier = Barrier::new(THREADS as usize);
    for round in 0..ROUNDS {
        thread::scope(|s| {
            for cpu in 0..THREADS {
                let (triggers, barrier) = (&triggers, &barrier);
                s.spawn(move || {
                    barrier.wait();
                    for _ in 0..REPEATS {
                        for key in 0..KEYS {
                            // Each thread adds cpu + 1 bytes per hit.
                            triggers.fire(&kmalloc(1, key + round, cpu + 1, 0), &on(cpu));
                        }
                    }
                });
            }
        });
        let out = triggers.read_hist(&common::Kernel);
        let entries = parse_entries(&out);
        let hits = u64::from(THREADS * KEYS * REPEATS);
        assert_eq!(totals(&out), (hits, u64::from(KEYS), 0), "round {round}");
        assert_eq!(entries.len(), KEYS as usize, "round {round}");
        // Bytes per key: REPEATS * (1 + 2 + 3 + 4).
        let bytes = u64::from(REPEATS * (1..=THREADS).sum::<u32>());
        for (key, &(n, sum)) in &entries {
            assert_eq!((n, sum), (u64::from(THREADS * REPEATS), bytes), "round {round}, key {key}");
            assert!((u64::from(round)..u64::from(round + KEYS)).contains(key));
        }
        hist.clear();
    }
}

#[test]
fn four_writers_overflow_a_table_exactly() {
    const KEYS_PER_THREAD: u32 = 3000;
    let triggers = triggers(&["hist:keys=call_site:vals=bytes_req:size=128"]);
    thread::scope(|s| {
        for cpu in 0..THREADS {
            let triggers = &triggers;
            s.spawn(move || {
                // Half the keys are shared by all threads, half their own.
                for i in 0..KEYS_PER_THREAD {
                    let key = if i % 2 == 0 { i } else { 100_000 * (cpu + 1) + i };
                    triggers.fire(&kmalloc(1, key, 1, 0), &on(cpu));
                }
            });
        }
    });
    let out = triggers.read_hist(&common::Kernel);
    let (hits, entries, dropped) = totals(&out);
    assert_eq!(hits + dropped, u64::from(THREADS * KEYS_PER_THREAD));
    assert_eq!(entries, 128);
    let entries = parse_entries(&out);
    assert_eq!(entries.len(), 128);
    assert_eq!(entries.values().map(|&(n, _)| n).sum::<u64>(), hits);
    assert_eq!(entries.values().map(|&(_, b)| b).sum::<u64>(), hits);
}

#[test]
fn clearing_while_writers_run_keeps_the_counts_consistent() {
    let triggers = triggers(&["hist:keys=call_site:vals=bytes_req"]);
    let hist = triggers.iter().next().unwrap().as_hist().unwrap();
    let barrier = Barrier::new(THREADS as usize + 1);
    thread::scope(|s| {
        for cpu in 0..THREADS {
            let (triggers, barrier) = (&triggers, &barrier);
            s.spawn(move || {
                barrier.wait();
                for i in 0..40_000u32 {
                    triggers.fire(&kmalloc(1, i % 300, 2, 0), &on(cpu));
                }
            });
        }
        barrier.wait();
        for _ in 0..200 {
            hist.clear();
            thread::yield_now();
        }
    });
    // Quiet now: the entries account for every hit since the last clear.
    let out = triggers.read_hist(&common::Kernel);
    let (hits, entries, dropped) = totals(&out);
    let parsed = parse_entries(&out);
    assert_eq!(dropped, 0);
    assert_eq!(parsed.len() as u64, entries);
    assert_eq!(parsed.values().map(|&(n, _)| n).sum::<u64>(), hits);
    assert_eq!(parsed.values().map(|&(_, b)| b).sum::<u64>(), 2 * hits);
    hist.clear();
    assert_eq!(totals(&triggers.read_hist(&common::Kernel)), (0, 0, 0));
}

#[test]
fn counts_run_down_exactly_across_cpus() {
    let triggers = triggers(&["stacktrace:1000 if bytes_req > 1"]);
    let fired = std::sync::atomic::AtomicU32::new(0);
    thread::scope(|s| {
        for cpu in 0..THREADS {
            let (triggers, fired) = (&triggers, &fired);
            s.spawn(move || {
                for i in 0..1000u32 {
                    if triggers.fire(&kmalloc(1, 0, i % 3, 0), &on(cpu)).stacktrace {
                        fired.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                }
            });
        }
    });
    // bytes_req % 3 == 2 passes the filter: 333 of each thread's 1000,
    // 1332 in all, of which exactly the first 1000 act.
    assert_eq!(fired.into_inner(), 1000);
    assert_eq!(triggers.read(), "stacktrace:count=0 if bytes_req > 1\n");
}
