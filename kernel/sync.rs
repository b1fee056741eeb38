//! Interrupt-safe spin locks for data shared between CPUs.
//!
//! [`SpinLock::lock`] disables interrupts on the calling CPU before it
//! spins, and the guard restores them: an interrupt handler on the same CPU
//! can then never find the lock held by the code it interrupted (which would
//! spin forever), and another CPU holding it only makes us wait. The lock
//! remembers its owner CPU, so the one way left to deadlock, a CPU taking a
//! lock it already holds (a probe handler on code that holds it, calling
//! back in), is caught and reported instead of hanging.
use crate::arch::cpu;
use crate::arch::x86::percpu;
use core::arch::asm;
use core::cell::UnsafeCell;
use core::ops::{Deref, DerefMut};
use core::sync::atomic::{AtomicUsize, Ordering};

/// `cli` as a compiler barrier too: no memory access of the critical
/// section may move above it (the engine's `disable_interrupts` does not
/// promise that).
#[inline(always)]
fn cli() {
    // SAFETY: clearing IF cannot break memory safety.
    unsafe { asm!("cli", options(nostack, preserves_flags)) };
}

/// `sti` as a compiler barrier too: the unlocking store may not move below it.
#[inline(always)]
fn sti() {
    // SAFETY: the lock's caller had interrupts on when it locked (the only
    // case this is called), so the IDT and interrupt controllers are ready.
    unsafe { asm!("sti", options(nostack, preserves_flags)) };
}

/// A spin lock that keeps interrupts off while held.
pub struct SpinLock<T> {
    /// 0 when free, else 1 + the owner CPU.
    owner: AtomicUsize,
    value: UnsafeCell<T>,
}

// SAFETY: the value is only reached through a guard, and at most one guard
// exists at a time (the owner word is taken with a compare-exchange).
unsafe impl<T: Send> Sync for SpinLock<T> {}

/// Access to a locked value; unlocks (and restores interrupts) when dropped.
pub struct SpinGuard<'a, T> {
    lock: &'a SpinLock<T>,
    interrupts_were_on: bool,
}

impl<T> SpinLock<T> {
    /// A free lock holding `value`.
    pub const fn new(value: T) -> Self {
        SpinLock { owner: AtomicUsize::new(0), value: UnsafeCell::new(value) }
    }

    /// Takes the lock, spinning while another CPU holds it, with interrupts
    /// off until the guard drops. Panics with `reentered` if this CPU holds
    /// it already.
    #[inline(always)]
    pub fn lock_or(&self, reentered: &'static str) -> SpinGuard<'_, T> {
        let interrupts_were_on = cpu::interrupts_enabled();
        cli();
        let me = percpu::cpu_id() + 1;
        loop {
            match self.owner.compare_exchange_weak(0, me, Ordering::Acquire, Ordering::Relaxed) {
                Ok(_) => return SpinGuard { lock: self, interrupts_were_on },
                Err(owner) if owner == me => {
                    if interrupts_were_on {
                        sti();
                    }
                    panic!("{reentered}")
                }
                Err(_) => core::hint::spin_loop(),
            }
        }
    }

    /// Takes the lock (see [`lock_or`](Self::lock_or)).
    #[inline(always)]
    pub fn lock(&self) -> SpinGuard<'_, T> {
        self.lock_or("spin lock re-entered on the CPU that holds it")
    }

    /// Takes the lock if it is free, with interrupts off while held.
    #[inline(always)]
    pub fn try_lock(&self) -> Option<SpinGuard<'_, T>> {
        let interrupts_were_on = cpu::interrupts_enabled();
        cli();
        let me = percpu::cpu_id() + 1;
        if self.owner.compare_exchange(0, me, Ordering::Acquire, Ordering::Relaxed).is_ok() {
            return Some(SpinGuard { lock: self, interrupts_were_on });
        }
        if interrupts_were_on {
            sti();
        }
        None
    }

    /// Whether the calling CPU holds the lock.
    pub fn held_here(&self) -> bool {
        self.owner.load(Ordering::Relaxed) == percpu::cpu_id() + 1
    }

    /// The value behind the lock, unlocked.
    ///
    /// # Safety
    /// Nothing may access the value through a guard (or otherwise) while
    /// the pointer is used: for raw projections the owner of the data has
    /// reserved by other means (a task's saved ESP during its switch).
    pub const fn as_ptr(&self) -> *mut T {
        self.value.get()
    }
}

impl<T> Deref for SpinGuard<'_, T> {
    type Target = T;
    #[inline(always)]
    fn deref(&self) -> &T {
        // SAFETY: the guard proves this CPU owns the lock.
        unsafe { &*self.lock.value.get() }
    }
}

impl<T> DerefMut for SpinGuard<'_, T> {
    #[inline(always)]
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`, and `&mut self` makes the borrow unique.
        unsafe { &mut *self.lock.value.get() }
    }
}

impl<T> Drop for SpinGuard<'_, T> {
    #[inline(always)]
    fn drop(&mut self) {
        self.lock.owner.store(0, Ordering::Release);
        if self.interrupts_were_on {
            sti();
        }
    }
}
