//! Tab completion at the shell prompt: what the word before the cursor may
//! become, as a pure function of the line, the cursor and the working
//! directory ([`complete`]).
//!
//! What is completed, by where the word stands (read as the console's `sh`
//! reads it: quotes, backslashes, `>` and `>>`):
//! - the first word: the shell's commands;
//! - after `kprobe` and `kretprobe`: function names from the symbol table,
//!   whole (what those commands look up); as the symbol of a probe event
//!   being echoed (`echo 'p:NAME SYM`, `r`, `r10:`, `f:` alike, quoted or
//!   not): whole names or any `::`-suffix of one, as event definitions
//!   accept them. Only names a line can hold unquoted are offered
//!   (letters, digits, `_`, `:` and `.`);
//! - after `cat`, `ls`, `echo` and `>`/`>>`: paths in the file tree,
//!   relative to the working directory or absolute; `cd` takes directories
//!   only. A directory completes with `/`, anything else with a space (and
//!   the closing quote, inside quotes).
//!
//! One candidate is completed whole; several, as far as they agree (the
//! console lists them at a second Tab, as bash does).
use crate::tracefs::{self, Kind};
use alloc::collections::BTreeSet;
use alloc::string::String;
use alloc::vec::Vec;

/// Candidates kept for a listing; [`Completion::total`] counts them all.
pub const CANDIDATES_KEPT: usize = 100;

/// What the word before the cursor may become.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Completion {
    /// What to insert at the cursor: the rest of the one candidate and
    /// what follows it (`/` or a space), or what all candidates share
    /// beyond the word typed. Empty when nothing can be added.
    pub insert: String,
    /// The candidates as a listing shows them (directories end with `/`),
    /// sorted, the first [`CANDIDATES_KEPT`].
    pub candidates: Vec<String>,
    /// How many candidates there are.
    pub total: usize,
}

/// The line up to the cursor as `sh` would split it.
#[derive(Debug, Default)]
struct Context {
    /// The words before the one at the cursor, unquoted (redirection
    /// targets left out).
    words: Vec<String>,
    /// The word at the cursor, unquoted, up to the cursor.
    current: String,
    /// The quote open at the cursor, if any.
    quote: Option<char>,
    /// The word at the cursor is the target of `>` or `>>`.
    redirect: bool,
}

/// Splits `text` (the line up to the cursor) into words as
/// `tracefs::sh::parse` does, except that it never refuses: an open quote
/// or a trailing backslash is what the user is in the middle of typing.
fn scan(text: &str) -> Context {
    let mut context = Context::default();
    let (mut in_word, mut target_next, mut current_is_target) = (false, false, false);
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match context.quote {
            Some('\'') if c == '\'' => context.quote = None,
            Some('"') if c == '"' => context.quote = None,
            Some('"') if c == '\\' && chars.peek().is_some_and(|next| "\"\\$`".contains(*next)) => {
                context.current.extend(chars.next());
            }
            Some(_) => context.current.push(c),
            None => {
                if !in_word && !matches!(c, ' ' | '\t' | '>') {
                    in_word = true;
                    current_is_target = core::mem::take(&mut target_next);
                }
                match c {
                    ' ' | '\t' | '>' => {
                        // `1>` redirects standard output: the 1 is no word.
                        let descriptor = c == '>' && !current_is_target && context.current == "1";
                        if in_word && !current_is_target && !descriptor {
                            context.words.push(core::mem::take(&mut context.current));
                        }
                        context.current.clear();
                        in_word = false;
                        if c == '>' {
                            target_next = true;
                            if chars.peek() == Some(&'>') {
                                chars.next();
                            }
                        }
                    }
                    '\'' | '"' => context.quote = Some(c),
                    '\\' => context.current.extend(chars.next()),
                    _ => context.current.push(c),
                }
            }
        }
    }
    context.redirect = if in_word { current_is_target } else { target_next };
    context
}

/// What the word before `cursor` in `line` may become, with relative paths
/// taken from `cwd` (absolute). A cursor past the end counts as the end.
pub fn complete(line: &str, cursor: usize, cwd: &str) -> Completion {
    let mut end = cursor.min(line.len());
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    let context = scan(&line[..end]);
    if context.redirect {
        return paths(&context.current, cwd, false, context.quote);
    }
    let Some(command) = context.words.first() else {
        return match context.quote {
            None => commands(&context.current),
            Some(_) => Completion::default(),
        };
    };
    match command.as_str() {
        "kprobe" | "kretprobe" if context.words.len() == 1 => symbols(&context.current, false),
        "echo" => match event_symbol(&context) {
            Some(fragment) => symbols(fragment, true),
            None => paths(&context.current, cwd, false, context.quote),
        },
        "cat" | "ls" => paths(&context.current, cwd, false, context.quote),
        "cd" => paths(&context.current, cwd, true, context.quote),
        _ => Completion::default(),
    }
}

/// In `echo ... p:NAME SYM` (the definition quoted or not), the part of
/// SYM typed so far; `None` elsewhere.
fn event_symbol(context: &Context) -> Option<&str> {
    let mut arguments: Vec<&str> = context.words[1..].iter().map(String::as_str).collect();
    if arguments.first() == Some(&"-n") {
        arguments.remove(0);
    }
    // The definition's own words: the echoed words, and the current word
    // split at its blanks (a quoted definition is one shell word).
    let mut definition: Vec<&str> = arguments.iter().flat_map(|word| word.split_ascii_whitespace()).collect();
    let fragment = match context.current.rsplit_once([' ', '\t']) {
        Some((before, fragment)) => {
            definition.extend(before.split_ascii_whitespace());
            fragment
        }
        None => context.current.as_str(),
    };
    (definition.len() == 1 && is_event_kind(definition[0])).then_some(fragment)
}

/// `p`, `r`, `f`, with a maxactive count (`r10`) and a `:[GROUP/]NAME`.
fn is_event_kind(word: &str) -> bool {
    let Some(rest) = word.strip_prefix(['p', 'r', 'f']) else { return false };
    let rest = rest.trim_start_matches(|c: char| c.is_ascii_digit());
    rest.is_empty() || rest.starts_with(':')
}

/// The shell's commands that start with `prefix`.
fn commands(prefix: &str) -> Completion {
    let names: BTreeSet<&str> = crate::shell::command_names().filter(|name| name.starts_with(prefix)).collect();
    finish(prefix, names.iter().map(|name| (*name, false)), " ")
}

/// Whether a symbol name can be completed: only what a line holds unquoted.
fn completable(name: &str) -> bool {
    name.bytes().all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'_' | b':' | b'.'))
}

/// Function names that start with `prefix`; with `suffixes`, also the
/// `::`-suffixes of names that do.
fn symbols(prefix: &str, suffixes: bool) -> Completion {
    if prefix.contains('+') {
        return Completion::default(); // an offset is being typed
    }
    let mut names: BTreeSet<&'static str> = BTreeSet::new();
    for symbol in crate::symbols::iter().filter(|symbol| completable(symbol.name)) {
        let name = symbol.name;
        let starts = name.match_indices("::").map(|(index, _)| index + 2).filter(|_| suffixes);
        names.extend(core::iter::once(0).chain(starts).map(|start| &name[start..]).filter(|s| s.starts_with(prefix)));
    }
    finish(prefix, names.iter().map(|name| (*name, false)), " ")
}

/// Entries of the file tree that complete `fragment` (a path as typed).
fn paths(fragment: &str, cwd: &str, directories_only: bool, quote: Option<char>) -> Completion {
    let (directory, prefix) = match fragment.rfind('/') {
        Some(slash) => (&fragment[..=slash], &fragment[slash + 1..]),
        None => ("", fragment),
    };
    let listed = tracefs::list(&tracefs::resolve(cwd, if directory.is_empty() { "." } else { directory }));
    let entries: Vec<(String, Kind)> = listed
        .unwrap_or_default()
        .into_iter()
        .filter(|(name, kind)| name.starts_with(prefix) && (!directories_only || *kind == Kind::Directory))
        .collect();
    let mut after_file = String::new();
    after_file.extend(quote);
    after_file.push(' ');
    finish(prefix, entries.iter().map(|(name, kind)| (name.as_str(), *kind == Kind::Directory)), &after_file)
}

/// The completion of `prefix` by `candidates` (sorted, each with whether it
/// is a directory); `after` follows a unique candidate that is not one.
fn finish<'n>(prefix: &str, candidates: impl Iterator<Item = (&'n str, bool)> + Clone, after: &str) -> Completion {
    let total = candidates.clone().count();
    let shown = candidates
        .clone()
        .take(CANDIDATES_KEPT)
        .map(|(name, directory)| String::from(name) + if directory { "/" } else { "" });
    let mut completion = Completion { insert: String::new(), candidates: shown.collect(), total };
    let mut names = candidates.clone().map(|(name, _)| name);
    let (Some(first), last) = (names.next(), names.last()) else { return completion };
    match last {
        None => {
            let directory = candidates.clone().next().is_some_and(|(_, directory)| directory);
            completion.insert = String::from(&first[prefix.len()..]) + if directory { "/" } else { after };
        }
        Some(last) => {
            // Sorted: what the first and the last share, all share.
            let shared = first.bytes().zip(last.bytes()).take_while(|(a, b)| a == b).count();
            completion.insert = String::from(&first[prefix.len().min(shared)..shared]);
        }
    }
    completion
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::format;
    use alloc::vec;

    #[inline(never)]
    fn completion_target_alpha() -> u32 {
        core::hint::black_box(1)
    }

    #[inline(never)]
    fn completion_target_beta() -> u32 {
        core::hint::black_box(2)
    }

    fn insert(line: &str, cwd: &str) -> String {
        complete(line, line.len(), cwd).insert
    }

    fn candidates(line: &str, cwd: &str) -> Vec<String> {
        complete(line, line.len(), cwd).candidates
    }

    #[test_case]
    fn commands_complete_first() {
        assert_eq!(
            complete("ec", 2, "/"),
            Completion { insert: "ho ".into(), candidates: vec!["echo".into()], total: 1 }
        );
        assert_eq!(candidates("e", "/"), ["echo", "enable", "exit"]);
        assert_eq!(insert("e", "/"), "");
        assert_eq!(insert("kp", "/"), "robe ");
        assert_eq!(candidates("k", "/"), ["kprobe", "kretprobe"]);
        assert_eq!(insert("  di", "/"), "sable ");
        assert_eq!(complete("", 0, "/").total, 18, "the shell's commands, probe-vars included");
        assert_eq!(complete("nothing", 7, "/"), Completion::default());
        // Quoted, the first word is no command.
        assert_eq!(insert("'ec", "/"), "");
        // Only the line before the cursor counts.
        assert_eq!(insert("ecXYZ", "/").len(), 0);
        assert_eq!(complete("ecXYZ", 2, "/").insert, "ho ");
    }

    #[test_case]
    fn paths_complete_absolute_and_relative() {
        assert_eq!(insert("cat /sys/kernel/tr", "/"), "acing/");
        assert_eq!(candidates("cd /sys/kernel/", "/"), ["debug/", "tracing/"]);
        assert_eq!(insert("ls /sys/kernel/debug/kprobes/b", "/"), "lacklist ");
        assert_eq!(insert("cat /proc/kaXYZ", "/"), "");
        assert_eq!(complete("cat /proc/kaXYZ", 12, "/").insert, "llsyms ");
        let tracing = "/sys/kernel/tracing";
        assert_eq!(candidates("cat kprobe_", tracing), ["kprobe_events", "kprobe_profile"]);
        assert_eq!(insert("cat kprobe_e", tracing), "vents ");
        assert_eq!(insert("cat t", tracing), "rac");
        assert_eq!(candidates("cat t", tracing), ["trace", "trace_pipe", "tracing_on"]);
        assert_eq!(insert("cat ../debug/kp", tracing), "robes/");
        assert_eq!(insert("ls ./../../../pr", tracing), "oc/");
        // cd takes directories only; inside quotes a file ends the quote.
        assert_eq!(complete("cd t", 4, tracing).total, 0);
        assert_eq!(insert("cd /s", "/"), "ys/");
        assert_eq!(insert("cat '/proc/kall", "/"), "syms' ");
        assert_eq!(insert("cat \"/proc/kall", "/"), "syms\" ");
        // The target of > and >> (apart or joined, 1> too).
        assert_eq!(insert("echo 1 > tracing_o", tracing), "n ");
        assert_eq!(insert("echo 1 >>tracing_o", tracing), "n ");
        assert_eq!(insert("echo 1 1>tracing_o", tracing), "n ");
        assert_eq!(candidates("echo 0 > ", "/"), ["proc/", "sys/"]);
        // Other commands' arguments complete to nothing.
        assert_eq!(complete("remove ", 7, "/"), Completion::default());
    }

    #[test_case]
    fn symbols_complete_after_kprobe_and_in_event_definitions() {
        core::hint::black_box((completion_target_alpha as fn() -> u32, completion_target_beta as fn() -> u32));
        let path = "probe_kernel::completion::tests::";
        let both = [format!("{path}completion_target_alpha"), format!("{path}completion_target_beta")];
        assert_eq!(candidates(&format!("kprobe {path}completion_target_"), "/"), both);
        assert_eq!(insert(&format!("kprobe {path}completion_target_"), "/"), "");
        assert_eq!(insert(&format!("kretprobe {path}completion_target_b"), "/"), "eta ");
        assert_eq!(insert("kprobe probe_kernel::completion::tests::completion_t", "/"), "arget_");
        // kprobe and kretprobe look names up whole: no suffixes.
        assert_eq!(complete("kprobe completion_target_a", 26, "/").total, 0);
        assert_eq!(insert(&format!("kprobe {path}completion_target_alpha+"), "/"), "");
        // The symbol of an echoed event definition, quoted or not.
        assert_eq!(insert("echo 'p:my completion_target_a", "/"), "lpha ");
        assert_eq!(insert("echo \"r10:grp/my completion_target_b", "/"), "eta ");
        assert_eq!(insert("echo -n f:my completion_target_a", "/"), "lpha ");
        assert_eq!(insert("echo 'p completion_target_a", "/"), "lpha ");
        assert_eq!(
            candidates("echo 'p:my completion_target_", "/"),
            ["completion_target_alpha", "completion_target_beta"]
        );
        assert_eq!(insert("echo 'p:my tests::completion_target_a", "/"), "lpha ");
        // Not the symbol's place: no symbols.
        assert_eq!(insert("echo 'p:my completion_target_alpha completion_target_a", "/"), "");
        assert_eq!(insert("echo 'probe completion_target_a", "/"), "");
        assert_eq!(insert("syms completion_target_a", "/"), "");
    }

    #[test_case]
    fn words_split_as_sh_splits_them() {
        let context = scan("echo 'a b'\"c\\\"d\" e\\ f >x g >> 'h");
        assert_eq!(context.words, ["echo", "a bc\"d", "e f", "g"]);
        assert_eq!((context.current.as_str(), context.quote, context.redirect), ("h", Some('\''), true));
        let context = scan("cat >");
        assert_eq!((context.words.len(), context.current.as_str(), context.redirect), (1, "", true));
        assert!(is_event_kind("p") && is_event_kind("r10:x") && is_event_kind("f:g/n"));
        assert!(!is_event_kind("probe") && !is_event_kind("-:x") && !is_event_kind(""));
    }
}
