//! The console's command line, read as `sh` reads the simple commands a
//! Linux user types at tracefs: words split at unquoted blanks; `'...'`
//! keeps everything literally; `"..."` keeps everything but `\"`, `\\`
//! (and `\$`, `` \` ``), which lose their backslash; a backslash outside
//! quotes keeps the next character literally; and the output redirections
//! `> FILE`, `>> FILE` (also written against a word: `echo 1 >enable`, and
//! with the descriptor: `1> FILE`). What `sh` would treat specially and
//! the console does not do (`|`, `;`, `&`, `<`, `$VAR`, `` `...` ``,
//! `(...)`) is refused by name rather than half-done, so a line never does
//! something other than it says; glob characters stay literal, as `sh`
//! leaves a pattern that matches nothing.
//!
//! Parsing allocates (task context only) and never panics on any input.
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

/// Where a command's output goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Redirect {
    /// The console.
    Console,
    /// `> FILE`: the file's contents are replaced (for tracefs files: the
    /// write is not an append; `kprobe_events` clears its definitions first).
    Truncate(String),
    /// `>> FILE`: appended.
    Append(String),
}

/// One parsed command line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommandLine {
    /// The command and its arguments, unquoted. Empty for a blank line.
    pub words: Vec<String>,
    /// The output redirection, if any (the last one wins, as in `sh`).
    pub output: Redirect,
}

/// Why a line was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SyntaxError {
    /// A quote was opened and never closed.
    UnterminatedQuote(char),
    /// A backslash ended the line.
    TrailingBackslash,
    /// `>` or `>>` with no file name after it.
    MissingRedirectTarget,
    /// A redirection of a descriptor other than 1 (`2>`), or of input.
    UnsupportedRedirect(String),
    /// A shell feature the console does not have (`|`, `;`, `&`, `$`, ...).
    Unsupported(char),
}

impl fmt::Display for SyntaxError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            SyntaxError::UnterminatedQuote(quote) => write!(f, "unexpected end of line: no closing {quote}"),
            SyntaxError::TrailingBackslash => f.write_str("unexpected end of line after \\"),
            SyntaxError::MissingRedirectTarget => f.write_str("syntax error: no file name after >"),
            SyntaxError::UnsupportedRedirect(what) => {
                write!(f, "redirection \"{what}\" is not supported (only > and >>)")
            }
            SyntaxError::Unsupported(c) => {
                write!(
                    f,
                    "\"{c}\" is not supported here (no pipes, lists, variables or subshells); quote it to mean the character"
                )
            }
        }
    }
}

/// What the scanner is in the middle of.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Quote {
    None,
    Single,
    Double,
}

/// A word being built, and whether any of it was quoted (`''` is a word;
/// nothing at all is not).
#[derive(Default)]
struct Word {
    text: String,
    quoted: bool,
    /// Only unquoted digits so far (a `1>` is a descriptor, not a word).
    digits_only: bool,
}

impl Word {
    fn push(&mut self, c: char, quoted: bool) {
        self.digits_only = (self.text.is_empty() || self.digits_only) && !quoted && c.is_ascii_digit();
        self.quoted |= quoted;
        self.text.push(c);
    }

    fn is_started(&self) -> bool {
        self.quoted || !self.text.is_empty()
    }
}

/// Parses one line.
pub fn parse(line: &str) -> Result<CommandLine, SyntaxError> {
    let mut words = Vec::new();
    let mut output = Redirect::Console;
    // Set after `>` / `>>`: the next word is the file.
    let mut pending: Option<bool> = None;
    let mut word = Word::default();
    let mut quote = Quote::None;
    let mut chars = line.chars().peekable();

    // Ends the current word: into the redirection waiting for it, or the words.
    let mut finish = |word: &mut Word, pending: &mut Option<bool>, output: &mut Redirect| {
        if !word.is_started() {
            return;
        }
        let text = core::mem::take(&mut word.text);
        *word = Word::default();
        match pending.take() {
            Some(true) => *output = Redirect::Append(text),
            Some(false) => *output = Redirect::Truncate(text),
            None => words.push(text),
        }
    };

    while let Some(c) = chars.next() {
        match quote {
            Quote::Single => match c {
                '\'' => quote = Quote::None,
                c => word.push(c, true),
            },
            Quote::Double => match c {
                '"' => quote = Quote::None,
                '\\' => match chars.peek() {
                    Some(&next @ ('"' | '\\' | '$' | '`')) => {
                        chars.next();
                        word.push(next, true);
                    }
                    _ => word.push('\\', true),
                },
                c => word.push(c, true),
            },
            Quote::None => match c {
                ' ' | '\t' => finish(&mut word, &mut pending, &mut output),
                '\'' => {
                    quote = Quote::Single;
                    word.quoted = true;
                    word.digits_only = false;
                }
                '"' => {
                    quote = Quote::Double;
                    word.quoted = true;
                    word.digits_only = false;
                }
                '\\' => match chars.next() {
                    Some(next) => word.push(next, true),
                    None => return Err(SyntaxError::TrailingBackslash),
                },
                '>' => {
                    let append = chars.peek() == Some(&'>');
                    if append {
                        chars.next();
                    }
                    if word.is_started() && word.digits_only {
                        // `N>`: a descriptor. Only standard output exists here.
                        if word.text != "1" {
                            return Err(SyntaxError::UnsupportedRedirect(alloc::format!(
                                "{}{}",
                                word.text,
                                if append { ">>" } else { ">" }
                            )));
                        }
                        word = Word::default();
                    } else {
                        finish(&mut word, &mut pending, &mut output);
                    }
                    if pending.is_some() {
                        return Err(SyntaxError::MissingRedirectTarget);
                    }
                    pending = Some(append);
                }
                '<' => return Err(SyntaxError::UnsupportedRedirect(String::from("<"))),
                '|' | ';' | '&' | '$' | '`' | '(' | ')' => return Err(SyntaxError::Unsupported(c)),
                c => word.push(c, false),
            },
        }
    }
    match quote {
        Quote::Single => return Err(SyntaxError::UnterminatedQuote('\'')),
        Quote::Double => return Err(SyntaxError::UnterminatedQuote('"')),
        Quote::None => {}
    }
    finish(&mut word, &mut pending, &mut output);
    if pending.is_some() {
        return Err(SyntaxError::MissingRedirectTarget);
    }
    Ok(CommandLine { words, output })
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    fn words(line: &str) -> Vec<String> {
        parse(line).expect("parses").words
    }

    #[test_case]
    fn blanks_split_words_and_quotes_join_them() {
        assert_eq!(words("  echo  a\tb  "), ["echo", "a", "b"]);
        assert_eq!(words("echo 'p:my checksum' \"len=%ax\""), ["echo", "p:my checksum", "len=%ax"]);
        assert_eq!(words("echo a'b c'd"), ["echo", "ab cd"]);
        assert_eq!(words("echo '' \"\""), ["echo", "", ""]);
        assert!(words("").is_empty());
    }

    #[test_case]
    fn backslashes_as_sh_reads_them() {
        assert_eq!(words(r"echo a\ b"), ["echo", "a b"]);
        assert_eq!(words(r#"echo "a\"b\\c\d""#), ["echo", r#"a"b\c\d"#]);
        assert_eq!(words(r"echo 'a\b'"), ["echo", r"a\b"]);
        assert_eq!(parse(r"echo a\"), Err(SyntaxError::TrailingBackslash));
    }

    #[test_case]
    fn redirections_in_every_spelling() {
        let to = |line: &str| parse(line).expect("parses");
        assert_eq!(to("echo 1 > enable").output, Redirect::Truncate("enable".to_string()));
        assert_eq!(to("echo 1 >enable").output, Redirect::Truncate("enable".to_string()));
        assert_eq!(to("echo 'p f' >> kprobe_events").output, Redirect::Append("kprobe_events".to_string()));
        assert_eq!(to("echo 'p f'>>kprobe_events").words, ["echo", "p f"]);
        assert_eq!(to("echo > trace").words, ["echo"]);
        let fd = to("echo 1 1> enable");
        assert_eq!(
            (fd.words, fd.output),
            (alloc::vec!["echo".to_string(), "1".to_string()], Redirect::Truncate("enable".to_string()))
        );
        // `echo 1>enable` is sh's descriptor 1: an empty echo into the file.
        assert_eq!(to("echo 1>enable").words, ["echo"]);
        assert_eq!(to("echo '1'>enable").words, ["echo", "1"]);
        assert_eq!(to("echo a > x > y").output, Redirect::Truncate("y".to_string()));
    }

    #[test_case]
    fn what_is_refused_is_refused_by_name() {
        assert_eq!(parse("echo 'a"), Err(SyntaxError::UnterminatedQuote('\'')));
        assert_eq!(parse("echo \"a"), Err(SyntaxError::UnterminatedQuote('"')));
        assert_eq!(parse("echo a >"), Err(SyntaxError::MissingRedirectTarget));
        assert_eq!(parse("echo a > > b"), Err(SyntaxError::MissingRedirectTarget));
        assert_eq!(parse("echo a 2> b"), Err(SyntaxError::UnsupportedRedirect("2>".to_string())));
        assert_eq!(parse("cat < trace"), Err(SyntaxError::UnsupportedRedirect("<".to_string())));
        assert_eq!(parse("cat trace | head"), Err(SyntaxError::Unsupported('|')));
        assert_eq!(parse("echo $HOME"), Err(SyntaxError::Unsupported('$')));
        assert_eq!(words("ls events/kprobes/*"), ["ls", "events/kprobes/*"]);
        assert_eq!(
            parse("echo 'x8[4] $stack'"),
            Ok(CommandLine {
                words: alloc::vec!["echo".to_string(), "x8[4] $stack".to_string()],
                output: Redirect::Console
            })
        );
    }

    #[test_case]
    fn any_bytes_parse_or_are_refused_without_panicking() {
        // A deterministic sweep of short lines over the characters that matter.
        let alphabet = [' ', 'a', '1', '\'', '"', '\\', '>', '|', '$', '\t', 'é'];
        let mut line = String::new();
        for n in 0..alphabet.len().pow(4) {
            line.clear();
            let mut k = n;
            for _ in 0..4 {
                line.push(alphabet[k % alphabet.len()]);
                k /= alphabet.len();
            }
            let _ = parse(&line);
        }
    }
}
