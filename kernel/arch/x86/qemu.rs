//! Leaving QEMU with a verdict through the `isa-debug-exit` device.
//!
//! QEMU exits with `(code << 1) | 1`; the runner maps 33 to success and 35 to
//! failure. Zero is never written: status 1 is also QEMU's own error status.
//! On a machine without the device the kernel prints a last line and halts.

/// The kernel's verdict for the runner.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum ExitCode {
    /// Everything passed: QEMU exits with 33.
    Success = 0x10,
    /// Something failed: QEMU exits with 35.
    Failed = 0x11,
}

const DEBUG_EXIT_PORT: u16 = 0xf4;

/// Ends the QEMU run. Where the device is absent (real hardware, another
/// VM), says so on a last line, on COM1 and the screen, and halts.
pub fn exit(code: ExitCode) -> ! {
    // SAFETY: port 0xf4 is QEMU's isa-debug-exit (the runner always adds it);
    // on other machines an unused port write is harmless.
    unsafe { x86::io::outl(DEBUG_EXIT_PORT, code as u32) };
    // Still running: nothing at the port ended the machine.
    let verdict = match code {
        ExitCode::Success => "finished",
        ExitCode::Failed => "finished with a failure",
    };
    crate::println!(
        "probe-kernel: {verdict}; halted (no QEMU isa-debug-exit device to end the run): switch the machine off"
    );
    super::cpu::halt_forever()
}
