//! The kernel command line: what the kernel does at boot.
//!
//! Words: `demo` (default), `bench`, `shell`, `test=NAME` (run only tests whose
//! name contains NAME), `acpi=off` (platform discovery skips ACPI and reads
//! the MP table), `noapic` (device interrupts through the 8259 PIC, not the
//! I/O APIC; Linux's word), `kprobe_event=EVENTS` (probe events defined and
//! enabled at boot, Linux's parameter: see `tracefs::events::boot_events`).
//! Unknown words are reported and ignored.

/// What the kernel binary does after boot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Show probes at work, then exit.
    Demo,
    /// Measure probe overhead in instructions (meant for `-icount`).
    Bench,
    /// An interactive console for defining probes at run time.
    Shell,
}

/// The parsed command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CommandLine<'a> {
    /// The selected mode.
    pub mode: Mode,
    /// `test=NAME`: the test filter, if any.
    pub test_filter: Option<&'a str>,
    /// `acpi=off`: find CPUs and interrupt controllers from the MP table only.
    pub acpi_off: bool,
    /// `noapic`: leave the I/O APIC masked; device interrupts come through
    /// the 8259 PIC to the boot CPU.
    pub noapic: bool,
    /// `kprobe_event=`: probe events to define and enable at boot, in
    /// Linux's syntax (`;` between events, `,` between words).
    pub kprobe_event: Option<&'a str>,
}

/// Parses `text`, calling `unknown` for each word it does not understand.
pub fn parse<'a>(text: &'a str, mut unknown: impl FnMut(&'a str)) -> CommandLine<'a> {
    let mut line =
        CommandLine { mode: Mode::Demo, test_filter: None, acpi_off: false, noapic: false, kprobe_event: None };
    for word in text.split_ascii_whitespace() {
        match word {
            "demo" => line.mode = Mode::Demo,
            "bench" => line.mode = Mode::Bench,
            "shell" => line.mode = Mode::Shell,
            "acpi=off" => line.acpi_off = true,
            "noapic" => line.noapic = true,
            _ if word.starts_with("kprobe_event=") => line.kprobe_event = word.strip_prefix("kprobe_event="),
            _ => match word.strip_prefix("test=") {
                Some(filter) => line.test_filter = Some(filter),
                // The loader may pass the kernel's own path as the first word.
                None if word.contains('/') => {}
                None => unknown(word),
            },
        }
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test_case]
    fn words_select_mode_and_filter() {
        let mut unknown = 0;
        let line = parse("/boot/kernel.elf bench test=kprobes", |_| unknown += 1);
        assert_eq!(
            line,
            CommandLine {
                mode: Mode::Bench,
                test_filter: Some("kprobes"),
                acpi_off: false,
                noapic: false,
                kprobe_event: None
            }
        );
        assert_eq!(unknown, 0);
    }

    #[test_case]
    fn acpi_off_is_a_word_of_its_own() {
        let mut unknown = 0;
        let line = parse("acpi=off test=platform", |_| unknown += 1);
        assert_eq!(
            line,
            CommandLine {
                mode: Mode::Demo,
                test_filter: Some("platform"),
                acpi_off: true,
                noapic: false,
                kprobe_event: None
            }
        );
        assert_eq!(unknown, 0);
        let line = parse("noapic", |_| unknown += 1);
        assert!(line.noapic && !line.acpi_off);
        assert_eq!(unknown, 0);
        let mut unknown = None;
        let line = parse("acpi=on", |w| unknown = Some(w));
        assert!(!line.acpi_off);
        assert_eq!(unknown, Some("acpi=on"));
    }

    #[test_case]
    fn kprobe_event_takes_the_rest_of_its_word() {
        let line = parse("shell kprobe_event=p:a,demo::checksum,%ax;r,demo::checksum,$retval", |_| panic!());
        assert_eq!(line.kprobe_event, Some("p:a,demo::checksum,%ax;r,demo::checksum,$retval"));
        assert_eq!(line.mode, Mode::Shell);
    }

    #[test_case]
    fn unknown_words_are_reported_and_the_default_kept() {
        let mut unknown = None;
        let line = parse("frobnicate", |w| unknown = Some(w));
        assert_eq!(line.mode, Mode::Demo);
        assert_eq!(unknown, Some("frobnicate"));
    }
}
