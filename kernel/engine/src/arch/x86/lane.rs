//! Pieces of assembly the fast lanes share, as `naked_asm!` template
//! strings: each lane (`fastpath`, `optprobe`, `trampoline`) finds this
//! CPU's control block and takes it in the same few instructions, so they
//! are written once, here.

/// This CPU's control block, checked idle: calls the host's lane query for
/// the CPU, leaves EAX at the block's state byte (`control::layout::STATE`)
/// and jumps to `$busy` (a local label, such as "7f") unless it reads
/// idle. Clobbers ECX and EDX. The template's operands must include
/// `current_cpu`, `cpu_size`, `cpus`, `state` and `idle`.
macro_rules! idle_block_or {
    ($busy:literal) => {
        concat!(
            "call {current_cpu}\n",
            "imul eax, eax, {cpu_size}\n",
            "lea eax, [eax + {cpus} + {state}]\n",
            "cmp byte ptr [eax], {idle}\n",
            "jne ",
            $busy
        )
    };
}

/// Makes the idle block at EAX run the probe named by `$probe` (a register)
/// for the site named by `$site` (a register, or 0 for a kretprobe's
/// return): `State::Handlers`, as `ControlBlock::begin_hit` and
/// `begin_return_handlers` set it. Operands: `handlers`, `handlers_site`,
/// `handlers_running`.
macro_rules! run_probe {
    ($site:literal, $probe:literal) => {
        concat!(
            "mov byte ptr [eax], {handlers}\n",
            "mov dword ptr [eax + {handlers_site}], ",
            $site,
            "\n",
            "mov [eax + {handlers_running}], ",
            $probe
        )
    };
}

pub(crate) use {idle_block_or, run_probe};
