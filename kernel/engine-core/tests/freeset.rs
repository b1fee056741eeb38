//! The lock-free set of free indices behind kretprobe instance pools, on
//! the host.
//!
//! Why: the trap path of every CPU takes and gives back instances with no
//! lock, and interrupts nest into it; an index handed out twice corrupts
//! two calls' return addresses, and a count of instances out that drifts
//! frees a pool under a call still in flight. Here the set is checked
//! against a model one operation at a time (proptest), and under real
//! concurrency: several threads taking and giving back hundreds of
//! thousands of times, with an owner table that catches any index held by
//! two at once.
use probe_engine_core::freeset::FreeSet;
use proptest::prelude::*;
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};

fn words(capacity: usize) -> Vec<AtomicU32> {
    (0..FreeSet::words_for(capacity)).map(|_| AtomicU32::new(0)).collect()
}

#[test]
fn a_new_set_hands_out_indices_lowest_first_then_none() {
    let words = words(3);
    let set = FreeSet::new(&words, 3);
    assert_eq!((set.capacity(), set.out(&words)), (3, 0));
    assert_eq!([set.take(&words), set.take(&words), set.take(&words)], [Some(0), Some(1), Some(2)]);
    assert_eq!((set.take(&words), set.out(&words)), (None, 3));
    set.give_back(&words, 1);
    assert_eq!((set.out(&words), set.take(&words)), (2, Some(1)));
}

#[test]
fn an_empty_set_never_hands_out() {
    let words = words(0);
    let set = FreeSet::new(&words, 0);
    assert_eq!((set.take(&words), set.out(&words), set.capacity()), (None, 0, 0));
}

#[test]
fn a_set_spanning_words_hands_out_exactly_its_capacity() {
    // 70 indices: two full words and 6 bits of a third; the bits past the
    // capacity are never handed out.
    let words = words(70);
    let set = FreeSet::new(&words, 70);
    let taken: Vec<usize> = (0..70).map(|_| set.take(&words).expect("free")).collect();
    assert_eq!(taken, (0..70).collect::<Vec<_>>());
    assert_eq!((set.take(&words), set.out(&words)), (None, 70));
    set.give_back(&words, 64);
    set.give_back(&words, 33);
    assert_eq!([set.take(&words), set.take(&words), set.take(&words)], [Some(33), Some(64), None]);
}

proptest! {
    /// Random takes and give-backs against a model set: every take returns
    /// exactly the lowest free index of the model (or `None` exactly when
    /// none is free), and `out` is exact after every step.
    #[test]
    fn the_set_hands_out_the_lowest_free_index(
        capacity in 0usize..100,
        steps in proptest::collection::vec(any::<(bool, usize)>(), 1..300),
    ) {
        let words = words(capacity);
        let set = FreeSet::new(&words, capacity);
        let mut model_free: BTreeSet<usize> = (0..capacity).collect();
        let mut out: Vec<usize> = Vec::new();
        for (take, pick) in steps {
            if take || out.is_empty() {
                let taken = set.take(&words);
                prop_assert_eq!(taken, model_free.pop_first());
                if let Some(index) = taken {
                    prop_assert!(!out.contains(&index), "index {} handed out twice", index);
                    out.push(index);
                }
            } else {
                let index = out.swap_remove(pick % out.len());
                set.give_back(&words, index);
                model_free.insert(index);
            }
            prop_assert_eq!(set.out(&words), out.len());
            prop_assert_eq!(set.capacity(), capacity);
        }
    }
}

const THREADS: usize = 4;
const ROUNDS: usize = 200_000;
/// Fewer indices than threads × held, across a word boundary: takes fail
/// often, and two threads race for the same bit again and again.
const CAPACITY: usize = 34;
const HELD: usize = 12;

#[test]
fn threads_taking_and_giving_back_never_share_an_index() {
    let words = Arc::new(words(CAPACITY));
    let set = Arc::new(FreeSet::new(&words, CAPACITY));
    // Who holds each index: 0 for nobody, else the thread number + 1.
    let owners: Arc<Vec<AtomicUsize>> = Arc::new((0..CAPACITY).map(|_| AtomicUsize::new(0)).collect());
    let start = Arc::new(Barrier::new(THREADS));
    let workers: Vec<_> = (0..THREADS)
        .map(|thread| {
            let (words, set, owners, start) = (words.clone(), set.clone(), owners.clone(), start.clone());
            std::thread::spawn(move || {
                let me = thread + 1;
                let mut held = Vec::with_capacity(HELD);
                let (mut takes, mut gives) = (0usize, 0usize);
                start.wait();
                for round in 0..ROUNDS {
                    // Hold between 1 and HELD indices, varying by round.
                    let want = 1 + (round + thread) % HELD;
                    while held.len() < want {
                        match set.take(&words) {
                            Some(index) => {
                                let previous = owners[index].swap(me, Ordering::AcqRel);
                                assert_eq!(
                                    previous, 0,
                                    "index {index} handed to thread {me} while thread {previous} held it"
                                );
                                held.push(index);
                                takes += 1;
                            }
                            None => break,
                        }
                    }
                    let keep = round % 2;
                    while held.len() > keep {
                        let index = held.pop().unwrap();
                        assert_eq!(
                            owners[index].swap(0, Ordering::AcqRel),
                            me,
                            "index {index} changed hands while held"
                        );
                        set.give_back(&words, index);
                        gives += 1;
                    }
                }
                for index in held {
                    assert_eq!(owners[index].swap(0, Ordering::AcqRel), me);
                    set.give_back(&words, index);
                    gives += 1;
                }
                (takes, gives)
            })
        })
        .collect();
    let mut total = 0;
    for worker in workers {
        let (takes, gives) = worker.join().expect("a worker failed");
        assert_eq!(takes, gives, "a thread gave back exactly what it took");
        total += takes;
    }
    assert!(total > 0, "the threads took indices");
    assert_eq!(set.out(&words), 0, "every index taken was given back");
    assert!(owners.iter().all(|owner| owner.load(Ordering::SeqCst) == 0));
    // Every index is free exactly once: CAPACITY distinct takes, then none.
    let drained: Vec<usize> = (0..CAPACITY).map(|_| set.take(&words).expect("an index was lost")).collect();
    assert_eq!(drained, (0..CAPACITY).collect::<Vec<_>>());
    assert_eq!((set.take(&words), set.out(&words)), (None, CAPACITY));
}

#[test]
fn a_take_whose_bit_is_taken_in_between_takes_the_next_free_one() {
    // A take reads the word (0, 1 and 2 free) and picks 0; before its
    // fetch_and, another CPU (or an interrupt) takes 0 and 1. The delayed
    // take must not report 0 as its own: it finds 0 already cleared and
    // takes 2, the one index still free.
    let words = words(3);
    let set = FreeSet::new(&words, 3);
    let mut inner = None;
    let taken = set.take_interleaved(&words, || inner = Some((set.take(&words), set.take(&words))));
    assert_eq!(inner, Some((Some(0), Some(1))));
    assert_eq!(taken, Some(2), "0 and 1 are held: never handed out twice");
    assert_eq!((set.take(&words), set.out(&words)), (None, 3));
}
