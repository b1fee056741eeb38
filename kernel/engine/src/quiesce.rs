//! Quiescence: waiting until no other CPU can still be using what the
//! engine is about to reuse or hand back.
//!
//! The trap path takes no lock, so unregistration cannot exclude it; it
//! waits it out instead, where Linux calls `synchronize_rcu` and
//! `text_poke_sync`. The protocol:
//!
//! 1. **Unpublish.** Under the registration lock, make the object
//!    unreachable for any trap that starts from now on: unlink the probe
//!    from its site, disarm the breakpoint (the text poke), unindex the
//!    site, clear the kretprobe's pool pointer.
//! 2. **Synchronize** ([`quiesce`], which calls `Host::sync_cpus`). Who
//!    may still be inside, and why the sync proves they left:
//!    - *another CPU's trap path* (the `int3`, debug and fault handlers,
//!      the kretprobe trampoline, a jprobe handler), which may hold the
//!      site, the probe, or the pool it found before step 1. The trap path
//!      runs with interrupts off from its trap to its `iretd`, and a sync
//!      completes only once every other CPU has taken an interrupt, which
//!      it can only do outside such a region: so every trap that began
//!      before step 1 has ended, and every later one cannot find the
//!      object.
//!    - *a CPU about to execute the old text*, having fetched it before
//!      the poke: the sync's interrupt and serializing instruction make it
//!      fetch the new bytes (`text_poke_sync`).
//!    - *code running in an instruction slot* (a boosted copy, the
//!      out-of-line copy of a guarded text patch), which runs with
//!      interrupts on: a task may be preempted there, and a CPU may be
//!      there when the sync interrupts it. The sync records where it found
//!      each CPU, and `Host::task_may_resume_in` counts both, so a slot is
//!      freed only when it says no one may resume inside; otherwise it
//!      waits as garbage, and is looked at again after a later sync.
//!    - *a kretprobe instance still out* (its call has not returned): it
//!      keeps its pool alive by itself, since the pool is freed only when
//!      its count of instances out reads 0 (which only falls after the
//!      sync: no CPU is still between loading the pool and taking from it).
//! 3. **Reuse.** Free the slot, free the site for another address, free
//!    the pool, and return to the caller, who may then re-register or
//!    reuse its probe.
//!
//! [`Quiesced`] makes the order a type: the reuse steps take a
//! `Quiesced<T>`, which only [`quiesce`] makes, from the `T` that step 1
//! produced. With one CPU `Host::sync_cpus` returns at once, so all of
//! this costs a call.
use core::ops::{Deref, DerefMut};

/// `T`, something unpublished, after every other CPU was synchronized:
/// no trap that could have found it is still running.
pub(crate) struct Quiesced<T>(T);

/// Synchronizes every other CPU (`Host::sync_cpus`) after `unpublished`
/// was made unreachable for new traps. Task context, interrupts on.
pub(crate) fn quiesce<T>(unpublished: T) -> Quiesced<T> {
    crate::host::sync_cpus();
    Quiesced(unpublished)
}

/// Makes every CPU see text just written (Linux's `text_poke_sync`): the
/// same synchronization, since its interrupt and serializing instruction
/// are exactly what cross-modified code needs.
pub(crate) fn text_poke_sync() {
    crate::host::sync_cpus();
}

impl<T> Quiesced<T> {
    /// What was unpublished.
    pub(crate) fn into_inner(self) -> T {
        self.0
    }
}

impl<T> Quiesced<alloc::vec::Vec<T>> {
    /// Each of a batch unpublished before one sync.
    pub(crate) fn each(self) -> impl Iterator<Item = Quiesced<T>> {
        self.0.into_iter().map(Quiesced)
    }
}

impl<A, B> Quiesced<(A, B)> {
    /// The two halves of what was unpublished together.
    pub(crate) fn split(self) -> (Quiesced<A>, Quiesced<B>) {
        (Quiesced(self.0.0), Quiesced(self.0.1))
    }
}

impl<T> Deref for Quiesced<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T> DerefMut for Quiesced<T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.0
    }
}
