//! The per-delivery [`Journal`]: what a plugin logged, wrote to stdout and
//! stderr, and what the host itself noted (denials, limits). It becomes the
//! delivery record's `log`.

use std::sync::{Arc, Mutex, MutexGuard};

/// At most this many host lines (`[postern] …`) per delivery.
const MAX_HOST_LINES: usize = 64;
/// Longest single guest log line kept; the rest of the line is dropped.
const MAX_LINE_BYTES: usize = 4096;

#[derive(Clone, Copy)]
pub(crate) enum Stream {
    Stdout = 0,
    Stderr = 1,
}

/// The per-delivery capture: guest log lines and stdout/stderr share one cap
/// (`max_log_bytes`); past it bytes are counted and dropped and a marker
/// says how many. Host lines (denials, limits) are kept apart, so they are
/// never crowded out by a flood, and come last.
#[derive(Clone)]
pub(crate) struct Journal(Arc<Mutex<JournalInner>>);

struct JournalInner {
    text: String,
    cap: usize,
    dropped: u64,
    at_line_start: [bool; 2],
    host_lines: Vec<String>,
    denial: Option<String>,
}

impl Journal {
    pub(crate) fn new(cap: usize) -> Self {
        Self(Arc::new(Mutex::new(JournalInner {
            text: String::new(),
            cap,
            dropped: 0,
            at_line_start: [true; 2],
            host_lines: Vec::new(),
            denial: None,
        })))
    }

    fn lock(&self) -> MutexGuard<'_, JournalInner> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A `log.log` call: one line, `[level] message`.
    pub(crate) fn guest_line(&self, level: &str, message: &str) {
        let mut j = self.lock();
        let message = message.trim_end_matches(['\n', '\r']);
        let (message, cut) = match message.len() > MAX_LINE_BYTES {
            true => (
                floor_str(message, MAX_LINE_BYTES),
                message.len() - MAX_LINE_BYTES,
            ),
            false => (message, 0),
        };
        j.push(&format!("[{level}] {message}"));
        if cut > 0 {
            j.push(&format!(" [… {cut} bytes of this line dropped]"));
        }
        j.push("\n");
    }

    /// Bytes the guest wrote to stdout or stderr, prefixed per line.
    pub(crate) fn stream_bytes(&self, stream: Stream, bytes: &[u8]) {
        let mut j = self.lock();
        if j.dropped > 0 {
            j.dropped += bytes.len() as u64;
            return;
        }
        let text = String::from_utf8_lossy(bytes);
        let prefix = match stream {
            Stream::Stdout => "[stdout] ",
            Stream::Stderr => "[stderr] ",
        };
        for piece in text.split_inclusive('\n') {
            if j.at_line_start[stream as usize] {
                j.push(prefix);
            }
            j.push(piece);
            j.at_line_start[stream as usize] = piece.ends_with('\n');
        }
    }

    /// A line written by postern itself (a denial, a limit).
    pub(crate) fn host_line(&self, line: impl Into<String>) {
        let mut j = self.lock();
        if j.host_lines.len() < MAX_HOST_LINES {
            j.host_lines.push(line.into());
        }
    }

    /// A request the sandbox refused to send: logged, and remembered so the
    /// delivery is classified permanent (retrying cannot change a policy).
    pub(crate) fn deny(&self, line: String) {
        let mut j = self.lock();
        if j.denial.is_none() {
            j.denial = Some(line.clone());
        }
        if j.host_lines.len() < MAX_HOST_LINES {
            j.host_lines.push(format!("denied: {line}"));
        }
    }

    pub(crate) fn denial(&self) -> Option<String> {
        self.lock().denial.clone()
    }

    /// The delivery record's `log`, or `None` if nothing was captured.
    pub(crate) fn render(&self) -> Option<String> {
        let j = self.lock();
        let mut out = j.text.clone();
        if j.dropped > 0 {
            if !out.ends_with('\n') && !out.is_empty() {
                out.push('\n');
            }
            out.push_str(&format!(
                "[postern] log truncated: {} more bytes dropped (plugins.max_log_bytes = {})\n",
                j.dropped, j.cap
            ));
        }
        for line in &j.host_lines {
            if !out.ends_with('\n') && !out.is_empty() {
                out.push('\n');
            }
            out.push_str("[postern] ");
            out.push_str(line);
            out.push('\n');
        }
        (!out.is_empty()).then_some(out)
    }
}

impl JournalInner {
    fn push(&mut self, s: &str) {
        if self.dropped > 0 {
            self.dropped += s.len() as u64;
            return;
        }
        let room = self.cap.saturating_sub(self.text.len());
        if s.len() <= room {
            self.text.push_str(s);
        } else {
            let head = floor_str(s, room);
            self.text.push_str(head);
            self.dropped += (s.len() - head.len()) as u64;
        }
    }
}

/// The longest prefix of `s` of at most `max` bytes ending on a char boundary.
fn floor_str(s: &str, max: usize) -> &str {
    let mut end = max.min(s.len());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn journal_caps_with_marker_and_keeps_host_lines() {
        let j = Journal::new(64);
        j.guest_line("info", "hello");
        for _ in 0..10 {
            j.guest_line("info", "0123456789");
        }
        j.deny("request to http://evil.example:80: not in allowedHosts".into());
        let log = j.render().unwrap();
        assert!(log.starts_with("[info] hello\n"), "{log}");
        assert!(log.contains("[postern] log truncated: "), "{log}");
        assert!(log.contains("(plugins.max_log_bytes = 64)"), "{log}");
        assert!(log.ends_with(
            "[postern] denied: request to http://evil.example:80: not in allowedHosts\n"
        ));
        assert!(j.denial().is_some());
    }

    #[test]
    fn streams_are_prefixed_per_line() {
        let j = Journal::new(1024);
        j.stream_bytes(Stream::Stdout, b"a\nb");
        j.stream_bytes(Stream::Stdout, b"c\n");
        j.stream_bytes(Stream::Stderr, "é\n".as_bytes());
        assert_eq!(j.render().unwrap(), "[stdout] a\n[stdout] bc\n[stderr] é\n");
    }

    #[test]
    fn truncation_respects_char_boundaries() {
        let j = Journal::new(10);
        j.guest_line("info", "ééééé");
        let log = j.render().unwrap();
        assert!(log.starts_with("[info] é"), "{log}");
    }
}
