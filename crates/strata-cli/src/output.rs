//! Where output goes and how it looks: data to stdout as text or as one JSON document,
//! progress bars to stderr only when stderr is a terminal. Never prints errors (main does).

use std::io::{self, IsTerminal, Write};

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;

/// Text or JSON, as `--json` says.
#[derive(Debug, Clone, Copy)]
pub struct Output {
    json: bool,
}

impl Output {
    /// The output mode.
    pub fn new(json: bool) -> Output {
        Output { json }
    }

    /// Prints `data` as one line of JSON when `--json` was given, else calls `text` to write
    /// the human form.
    pub fn print<T: Serialize>(
        &self,
        data: &T,
        text: impl FnOnce(&mut dyn Write) -> io::Result<()>,
    ) -> Result<()> {
        let stdout = io::stdout();
        let mut out = io::BufWriter::new(stdout.lock());
        if self.json {
            serde_json::to_writer(&mut out, data).context("write JSON to stdout")?;
            writeln!(out).context("write to stdout")?;
        } else {
            text(&mut out).context("write to stdout")?;
        }
        out.flush().context("write to stdout")
    }
}

/// Whether progress bars may be drawn: only on a terminal.
pub fn progress_wanted() -> bool {
    io::stderr().is_terminal()
}

/// A byte-counting bar (with a total) or spinner (without), on stderr when it is a terminal,
/// hidden otherwise.
pub fn bytes_bar(total: Option<u64>, message: impl Into<String>) -> ProgressBar {
    if !progress_wanted() {
        return ProgressBar::hidden();
    }
    let bar = match total {
        Some(t) => ProgressBar::with_draw_target(Some(t), ProgressDrawTarget::stderr()).with_style(
            ProgressStyle::with_template(
                "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {eta}",
            )
            .expect("the template is valid")
            .progress_chars("=> "),
        ),
        None => ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr()).with_style(
            ProgressStyle::with_template("{spinner} {msg} {bytes} {bytes_per_sec}")
                .expect("the template is valid"),
        ),
    };
    bar.set_message(message.into());
    bar
}

/// A writer that counts bytes into a progress bar.
pub struct CountingWriter<W> {
    inner: W,
    bar: ProgressBar,
}

impl<W> CountingWriter<W> {
    /// Wraps `inner`.
    pub fn new(inner: W, bar: ProgressBar) -> Self {
        CountingWriter { inner, bar }
    }
}

impl<W: Write> Write for CountingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.bar.inc(n as u64);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}
