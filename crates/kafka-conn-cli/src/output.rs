//! Everything kconn prints on stdout goes through here, so that a closed
//! stdout (`kconn api-versions | head`) ends kconn quietly with the status
//! a shell reports for `ls | head`, instead of `println!`'s panic.
//!
//! Rust ignores SIGPIPE, so a write to a closed pipe fails with EPIPE; we
//! do not restore the default handler, because a SIGPIPE from a broker's
//! socket (a vectored write to a reset connection) would then kill kconn.

use std::io::{self, Write};

/// The exit status after stdout was closed: 128 + SIGPIPE (13), what a
/// shell shows for a program that SIGPIPE ended (`ls | head`).
pub(crate) const EXIT_BROKEN_PIPE: i32 = 141;

/// Writes one line on stdout; exits on a closed stdout.
pub(crate) fn line(args: std::fmt::Arguments<'_>) {
    let mut out = io::stdout().lock();
    // stdout is line buffered: the newline writes the line through.
    if let Err(e) = out.write_fmt(args).and_then(|()| out.write_all(b"\n")) {
        failed(&e);
    }
}

/// Writes text as is (for generated files); exits on a closed stdout.
pub(crate) fn raw(bytes: &[u8]) {
    let mut out = io::stdout().lock();
    if let Err(e) = out.write_all(bytes).and_then(|()| out.flush()) {
        failed(&e);
    }
}

/// Ends kconn after stdout failed: quietly for a closed pipe.
fn failed(e: &io::Error) -> ! {
    if e.kind() == io::ErrorKind::BrokenPipe {
        std::process::exit(EXIT_BROKEN_PIPE);
    }
    // stderr may be gone too: nothing more to do about that.
    let _ = writeln!(io::stderr(), "kconn: cannot write to stdout: {e}");
    std::process::exit(1);
}

/// Writes one line on stderr, ignoring a closed stderr.
pub(crate) fn err_line(args: std::fmt::Arguments<'_>) {
    let _ = writeln!(io::stderr().lock(), "{args}");
}

/// `println!` for kconn: a closed stdout ends kconn quietly.
macro_rules! outln {
    () => {
        $crate::output::line(format_args!(""))
    };
    ($($arg:tt)*) => {
        $crate::output::line(format_args!($($arg)*))
    };
}

/// `eprintln!` that never panics.
macro_rules! errln {
    ($($arg:tt)*) => {
        $crate::output::err_line(format_args!($($arg)*))
    };
}

pub(crate) use {errln, outln};
