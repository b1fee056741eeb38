//! The kprobes engine. STUB.
use crate::arch::{TrapFrame, TrapOutcome};

pub mod kretprobe {
    /// Real return address for a stack slot holding the trampoline.
    pub fn resolve_return_address(_slot: usize, value: usize) -> usize {
        value
    }
    /// Whether `address` is the return site of the trampoline's dispatcher call.
    pub fn is_dispatcher_return_site(_address: usize) -> bool {
        false
    }
}

pub fn init() {}
pub fn int3_handler(_frame: &mut TrapFrame) -> TrapOutcome {
    TrapOutcome::NotMine
}
pub fn debug_handler(_frame: &mut TrapFrame, _dr6: u32) -> TrapOutcome {
    TrapOutcome::NotMine
}
pub fn fault_handler(_frame: &mut TrapFrame) -> TrapOutcome {
    TrapOutcome::NotMine
}
pub fn report_context() {}
/// Called by the scheduler when task `id` exits (reclaims its kretprobe instances).
pub fn task_exited(_id: usize) {}
