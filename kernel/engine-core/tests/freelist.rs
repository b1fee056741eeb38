//! The lock-free free list behind kretprobe instance pools, on the host.
//!
//! Why: the trap path of every CPU takes and gives back instances with no
//! lock, and interrupts nest into it; an index handed out twice corrupts
//! two calls' return addresses, and a count of instances out that drifts
//! frees a pool under a call still in flight. Here the list is checked
//! against a model stack one operation at a time (proptest), and under
//! real concurrency: several threads taking and giving back hundreds of
//! thousands of times, with an owner table that catches any index held by
//! two at once.
use probe_engine_core::freelist::FreeList;
use proptest::prelude::*;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};

fn links(capacity: usize) -> Vec<AtomicU32> {
    (0..capacity).map(|_| AtomicU32::new(0)).collect()
}

#[test]
fn a_new_list_hands_out_indices_in_order_then_none() {
    let links = links(3);
    let list = FreeList::new(&links);
    assert_eq!((list.capacity(), list.out()), (3, 0));
    assert_eq!([list.take(&links), list.take(&links), list.take(&links)], [Some(0), Some(1), Some(2)]);
    assert_eq!((list.take(&links), list.out()), (None, 3));
    list.give_back(&links, 1);
    assert_eq!((list.out(), list.take(&links)), (2, Some(1)), "the last index given back is the next taken");
}

#[test]
fn an_empty_list_never_hands_out() {
    let links = links(0);
    let list = FreeList::new(&links);
    assert_eq!((list.take(&links), list.out(), list.capacity()), (None, 0, 0));
}

proptest! {
    /// Random takes and give-backs against a model LIFO stack: every take
    /// returns exactly the model's index (or `None` exactly when the model
    /// is empty), and `out` is exact after every step.
    #[test]
    fn the_free_list_is_a_stack_of_free_indices(
        capacity in 0usize..40,
        steps in proptest::collection::vec(any::<(bool, usize)>(), 1..300),
    ) {
        let links = links(capacity);
        let list = FreeList::new(&links);
        let mut model_free: Vec<usize> = (0..capacity).rev().collect();
        let mut out: Vec<usize> = Vec::new();
        for (take, pick) in steps {
            if take || out.is_empty() {
                let taken = list.take(&links);
                prop_assert_eq!(taken, model_free.pop());
                if let Some(index) = taken {
                    prop_assert!(!out.contains(&index), "index {} handed out twice", index);
                    out.push(index);
                }
            } else {
                let index = out.swap_remove(pick % out.len());
                list.give_back(&links, index);
                model_free.push(index);
            }
            prop_assert_eq!(list.out(), out.len());
            prop_assert_eq!(list.capacity(), capacity);
        }
    }
}

const THREADS: usize = 4;
const ROUNDS: usize = 200_000;
/// Fewer indices than threads × held: takes fail often, heads change
/// under every reader, and the same index comes back again and again (the
/// ABA pattern the tag guards against).
const CAPACITY: usize = 6;
const HELD: usize = 3;

#[test]
fn threads_taking_and_giving_back_never_share_an_index() {
    let links = Arc::new(links(CAPACITY));
    let list = Arc::new(FreeList::new(&links));
    // Who holds each index: 0 for nobody, else the thread number + 1.
    let owners: Arc<Vec<AtomicUsize>> = Arc::new((0..CAPACITY).map(|_| AtomicUsize::new(0)).collect());
    let start = Arc::new(Barrier::new(THREADS));
    let workers: Vec<_> = (0..THREADS)
        .map(|thread| {
            let (links, list, owners, start) = (links.clone(), list.clone(), owners.clone(), start.clone());
            std::thread::spawn(move || {
                let me = thread + 1;
                let mut held = Vec::with_capacity(HELD);
                let (mut takes, mut gives) = (0usize, 0usize);
                start.wait();
                for round in 0..ROUNDS {
                    // Hold between 1 and HELD indices, varying by round.
                    let want = 1 + (round + thread) % HELD;
                    while held.len() < want {
                        match list.take(&links) {
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
                        list.give_back(&links, index);
                        gives += 1;
                    }
                }
                for index in held {
                    assert_eq!(owners[index].swap(0, Ordering::AcqRel), me);
                    list.give_back(&links, index);
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
    assert_eq!(list.out(), 0, "every index taken was given back");
    assert!(owners.iter().all(|owner| owner.load(Ordering::SeqCst) == 0));
    // Every index is on the list exactly once: CAPACITY distinct takes, then none.
    let mut drained: Vec<usize> = (0..CAPACITY).map(|_| list.take(&links).expect("an index was lost")).collect();
    drained.sort_unstable();
    assert_eq!(drained, (0..CAPACITY).collect::<Vec<_>>());
    assert_eq!((list.take(&links), list.out()), (None, CAPACITY));
}

#[test]
fn a_take_delayed_across_a_take_and_give_back_of_its_head_retries() {
    // The ABA case: a take reads head 0 and its link 1, then (on another
    // CPU, or an interrupt) 0 and 1 are taken and 0 is given back, so the
    // head is 0 again but 1 is held. Without the tag, the delayed take's
    // exchange would succeed and install 1 as the head: 1 handed out twice.
    let links = links(3);
    let list = FreeList::new(&links);
    let mut inner = None;
    let taken = list.take_interleaved(&links, || {
        let (zero, one) = (list.take(&links), list.take(&links));
        list.give_back(&links, 0);
        inner = Some((zero, one));
    });
    assert_eq!(inner, Some((Some(0), Some(1))));
    assert_eq!(taken, Some(0), "the retry takes 0 again, now linked to 2");
    assert_eq!((list.take(&links), list.take(&links)), (Some(2), None), "1 is still held: never handed out twice");
    assert_eq!(list.out(), 3);
}
