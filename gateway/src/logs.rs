//! A function's output on its way to the pod's own.
//!
//! On Lambda, what a function writes to stdout and stderr becomes log
//! events in CloudWatch, each at most 256 KB, and what it costs is the
//! function's owner's. In a pod, it is the container's log, which the node
//! keeps on its disk, and the gateway is the process in between: a function
//! that writes gigabytes (a print in a loop, a stuck retry) must cost
//! neither the gateway's memory nor the node's disk without bound. So the
//! gateway reads each environment's stdout and stderr itself and passes
//! them on, a line at a time, to its own stdout and stderr, with two bounds:
//!
//! * a line is passed on up to [`MAX_LINE_BYTES`]; the rest of it is cut,
//!   and the line ends saying how much was;
//! * an environment passes on at most [`BYTES_PER_SECOND`] (in bursts of up
//!   to [`BURST_BYTES`]); lines past that are dropped, counted in
//!   `kf_gateway_function_log_dropped_bytes_total`, and once lines pass
//!   again, a line of the gateway's says how many were dropped (at most one
//!   such line a second).
//!
//! Memory: per stream, one read buffer ([`READ_BYTES`]) and the line being
//! gathered (at most [`MAX_LINE_BYTES`]). A function that writes faster than
//! the gateway reads is slowed by its own pipe, as by any log driver.

use crate::metrics::Metrics;
use crate::throttle::TokenBucket;
use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

/// The longest line passed on whole.
pub const MAX_LINE_BYTES: usize = 16 * 1024;
/// What one environment may pass on a second, stdout and stderr together.
pub const BYTES_PER_SECOND: f64 = 1024.0 * 1024.0;
/// What it may pass on at once.
pub const BURST_BYTES: f64 = 4.0 * 1024.0 * 1024.0;
/// One read from the pipe.
pub const READ_BYTES: usize = 64 * 1024;

/// What the Invoke API's `X-Amz-Log-Type: Tail` returns of an invocation's
/// output: its last 4 KB, as Lambda's.
pub const TAIL_BYTES: usize = 4 * 1024;
/// Longest a tail waits for the pipes' readers to take what is in them.
const FLUSH_WAIT: Duration = Duration::from_millis(200);

/// One environment's output as it passes, kept while an invocation asks
/// for it (the Invoke API's `Tail`): an environment runs one invocation at
/// a time, so what it writes between the invocation's start and its answer
/// is that invocation's. Holds at most twice [`TAIL_BYTES`], only while
/// capturing.
#[derive(Debug, Clone, Default)]
pub struct Tail {
    inner: Arc<TailInner>,
}

#[derive(Debug, Default)]
struct TailInner {
    /// Lines that contain this are passed on but not kept: the AWS RIE's
    /// own diagnostics, which Lambda's tails do not have.
    skip: Option<&'static [u8]>,
    capture: Mutex<Option<Vec<u8>>>,
    /// One per pipe reader: asks it to pass on what is readable now.
    flushers: Mutex<Vec<mpsc::UnboundedSender<oneshot::Sender<()>>>>,
}

impl Tail {
    /// A tail that leaves out lines containing `marker`.
    pub fn skipping(marker: &'static [u8]) -> Tail {
        Tail { inner: Arc::new(TailInner { skip: Some(marker), ..TailInner::default() }) }
    }

    /// Starts keeping the output.
    pub fn begin(&self) {
        *self.inner.capture.lock().unwrap_or_else(|e| e.into_inner()) = Some(Vec::new());
    }

    /// Whether the output is being kept.
    pub fn capturing(&self) -> bool {
        self.inner.capture.lock().unwrap_or_else(|e| e.into_inner()).is_some()
    }

    /// Keeps `bytes` (a line with its newline), if capturing.
    pub fn note(&self, bytes: &[u8]) {
        if let Some(marker) = self.inner.skip
            && bytes.windows(marker.len()).any(|w| w == marker)
        {
            return;
        }
        let mut capture = self.inner.capture.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(kept) = capture.as_mut() {
            kept.extend_from_slice(bytes);
            if kept.len() > 2 * TAIL_BYTES {
                kept.drain(..kept.len() - TAIL_BYTES);
            }
        }
    }

    /// Waits until each pipe's reader has passed on what was in the pipe
    /// when asked (output written before the runtime answered is in it by
    /// then), for at most `FLUSH_WAIT`.
    pub async fn flush(&self) {
        let waits: Vec<oneshot::Receiver<()>> = {
            let flushers = self.inner.flushers.lock().unwrap_or_else(|e| e.into_inner());
            flushers
                .iter()
                .filter_map(|flusher| {
                    let (done, wait) = oneshot::channel();
                    flusher.send(done).ok().map(|()| wait)
                })
                .collect()
        };
        let _ = tokio::time::timeout(FLUSH_WAIT, futures_util::future::join_all(waits)).await;
    }

    /// Stops keeping the output and returns its last [`TAIL_BYTES`].
    pub async fn end(&self) -> Vec<u8> {
        self.flush().await;
        let kept = self.inner.capture.lock().unwrap_or_else(|e| e.into_inner()).take();
        let mut kept = kept.unwrap_or_default();
        if kept.len() > TAIL_BYTES {
            kept.drain(..kept.len() - TAIL_BYTES);
        }
        kept
    }

    fn flusher(&self) -> mpsc::UnboundedReceiver<oneshot::Sender<()>> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.inner.flushers.lock().unwrap_or_else(|e| e.into_inner()).push(tx);
        rx
    }
}

/// Passes `stdout` and `stderr` of one environment of `function` on to the
/// gateway's, each in a task of its own that ends when the pipe closes (the
/// process, and whatever it started, has ended), keeping in `tail` what an
/// invocation asks to see.
pub fn forward(
    function: &Arc<str>,
    metrics: &Metrics,
    tail: &Tail,
    stdout: Option<OwnedFd>,
    stderr: Option<OwnedFd>,
) {
    let bucket = Arc::new(TokenBucket::with(BURST_BYTES, BYTES_PER_SECOND, Instant::now()));
    for (fd, to_stderr) in [(stdout, false), (stderr, true)] {
        let Some(fd) = fd else { continue };
        let Ok(mut pipe) = tokio::net::unix::pipe::Receiver::from_owned_fd(fd) else {
            tracing::warn!(function = %function, "cannot read the function's output");
            continue;
        };
        let mut lines = Lines::new(function.clone(), metrics.clone(), bucket.clone());
        lines.tail = Some(tail.clone());
        let mut flushes = tail.flusher();
        tokio::spawn(async move {
            let mut buffer = vec![0; READ_BYTES];
            let pass = |lines: &mut Lines, bytes: &[u8]| {
                let now = Instant::now();
                if to_stderr {
                    lines.feed(bytes, now, &mut std::io::stderr().lock());
                } else {
                    lines.feed(bytes, now, &mut std::io::stdout().lock());
                }
            };
            loop {
                tokio::select! {
                    biased;
                    Some(done) = flushes.recv() => {
                        // What is in the pipe now, without waiting for more:
                        // read(2) on the non-blocking pipe until EAGAIN.
                        // (Not `try_read`, which reads only once the reactor
                        // has seen the pipe readable, and may not have yet.)
                        loop {
                            match nix::unistd::read(pipe.as_fd(), &mut buffer) {
                                Ok(0) | Err(_) => break,
                                Ok(n) => pass(&mut lines, &buffer[..n]),
                            }
                        }
                        let _ = done.send(());
                    }
                    read = pipe.read(&mut buffer) => match read {
                        Ok(0) | Err(_) => break,
                        Ok(n) => pass(&mut lines, &buffer[..n]),
                    },
                }
            }
            let out: &mut dyn Write = if to_stderr {
                &mut std::io::stderr().lock()
            } else {
                &mut std::io::stdout().lock()
            };
            lines.finish(Instant::now(), out);
        });
    }
}

/// One stream's output cut into lines, bounded as the module says.
#[derive(Debug)]
pub struct Lines {
    function: Arc<str>,
    metrics: Metrics,
    bucket: Arc<TokenBucket>,
    /// The line being gathered, without its newline.
    line: Vec<u8>,
    /// Bytes of the current line past [`MAX_LINE_BYTES`], not kept.
    cut: usize,
    /// Lines and bytes dropped and not yet reported.
    dropped: (u64, u64),
    /// When drops were last reported: at most once a second.
    reported: Option<Instant>,
    /// Where an invocation's lines are kept, when one asks.
    tail: Option<Tail>,
}

impl Lines {
    pub fn new(function: Arc<str>, metrics: Metrics, bucket: Arc<TokenBucket>) -> Lines {
        Lines {
            function,
            metrics,
            bucket,
            line: Vec::new(),
            cut: 0,
            dropped: (0, 0),
            reported: None,
            tail: None,
        }
    }

    /// Takes `bytes` of output, passing whole lines on to `out`.
    pub fn feed(&mut self, mut bytes: &[u8], now: Instant, out: &mut dyn Write) {
        while !bytes.is_empty() {
            let (part, ended) = match bytes.iter().position(|b| *b == b'\n') {
                Some(i) => (&bytes[..i], true),
                None => (bytes, false),
            };
            let room = MAX_LINE_BYTES - self.line.len();
            self.line.extend_from_slice(&part[..part.len().min(room)]);
            self.cut += part.len().saturating_sub(room);
            bytes = &bytes[(part.len() + usize::from(ended)).min(bytes.len())..];
            if ended {
                self.emit(now, out);
            }
        }
    }

    /// The last line, if the output ended without a newline.
    pub fn finish(&mut self, now: Instant, out: &mut dyn Write) {
        if !self.line.is_empty() || self.cut > 0 {
            self.emit(now, out);
        }
        self.report_dropped(now, out, true);
    }

    fn emit(&mut self, now: Instant, out: &mut dyn Write) {
        if self.cut > 0 {
            let note = format!(" [kf-gateway: {} more bytes of this line cut]", self.cut);
            self.line.extend_from_slice(note.as_bytes());
        }
        let size = self.line.len() + 1;
        if self.bucket.try_take_n(size as f64, now) {
            self.report_dropped(now, out, false);
            self.line.push(b'\n');
            let _ = out.write_all(&self.line);
            if let Some(tail) = &self.tail {
                tail.note(&self.line);
            }
        } else {
            self.dropped.0 += 1;
            self.dropped.1 += size as u64;
            self.metrics.log_dropped(&self.function, size as u64);
        }
        self.line.clear();
        // A line of up to the limit keeps its buffer; a larger one (the cut
        // note) gives it back.
        if self.line.capacity() > MAX_LINE_BYTES + 128 {
            self.line = Vec::new();
        }
        self.cut = 0;
    }

    /// Says how much was dropped and not yet said, if anything, and if a
    /// second has passed since it last did (or `now` is the end).
    fn report_dropped(&mut self, now: Instant, out: &mut dyn Write, end: bool) {
        let due = end || self.reported.is_none_or(|then| now.duration_since(then).as_secs() >= 1);
        if self.dropped.0 > 0 && due {
            self.reported = Some(now);
            let (lines, bytes) = std::mem::take(&mut self.dropped);
            let _ = writeln!(
                out,
                "[kf-gateway: {lines} lines ({bytes} bytes) of {}'s output dropped: over {} bytes a second]",
                self.function, BYTES_PER_SECOND as u64
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn lines(now: Instant) -> (Lines, Metrics) {
        let metrics = Metrics::new();
        let bucket = Arc::new(TokenBucket::with(BURST_BYTES, BYTES_PER_SECOND, now));
        (Lines::new(Arc::from("f"), metrics.clone(), bucket), metrics)
    }

    #[tokio::test]
    async fn a_tail_keeps_what_was_written_before_it_ends_and_no_more_than_4_kb() {
        let (read, write) = nix::unistd::pipe().expect("a pipe");
        let tail = Tail::skipping(b"(rapid)");
        forward(&Arc::from("f"), &Metrics::new(), &tail, Some(read), None);
        let mut write = std::fs::File::from(write);
        // Not capturing: not kept.
        write.write_all(b"before\n").expect("write");
        tail.flush().await;
        tail.begin();
        // Written just before the end, still in the pipe when it is asked:
        // the flush takes it.
        write.write_all(b"one\n[INFO] (rapid) the RIE's own\ntwo\n").expect("write");
        assert_eq!(String::from_utf8(tail.end().await).expect("text"), "one\ntwo\n");
        assert!(!tail.capturing());
        tail.begin();
        for n in 0..500 {
            writeln!(write, "line {n:04}").expect("write");
        }
        let kept = tail.end().await;
        assert_eq!(kept.len(), TAIL_BYTES);
        assert!(kept.ends_with(b"line 0499\n"));
    }

    #[test]
    fn lines_pass_whole_whatever_the_reads_cut_them_into() {
        let now = Instant::now();
        let (mut lines, _) = lines(now);
        let mut out = Vec::new();
        for part in ["one\ntw", "o\n", "", "thr", "ee\nfour"] {
            lines.feed(part.as_bytes(), now, &mut out);
        }
        assert_eq!(String::from_utf8_lossy(&out), "one\ntwo\nthree\n");
        lines.finish(now, &mut out);
        assert_eq!(String::from_utf8_lossy(&out), "one\ntwo\nthree\nfour\n");
    }

    #[test]
    fn a_long_line_is_cut_and_says_so() {
        let now = Instant::now();
        let (mut lines, _) = lines(now);
        let mut out = Vec::new();
        let long = vec![b'x'; MAX_LINE_BYTES + 5000];
        for chunk in long.chunks(3000) {
            lines.feed(chunk, now, &mut out);
        }
        lines.feed(b"\nnext\n", now, &mut out);
        let text = String::from_utf8_lossy(&out);
        let first = text.lines().next().expect("a line");
        assert!(first.starts_with(&"x".repeat(MAX_LINE_BYTES)), "kept the first 16 KiB");
        assert!(
            first.ends_with("x [kf-gateway: 5000 more bytes of this line cut]"),
            "{}",
            &first[MAX_LINE_BYTES - 5..]
        );
        assert_eq!(text.lines().nth(1), Some("next"));
    }

    #[test]
    fn past_the_rate_lines_are_dropped_counted_and_reported() {
        let start = Instant::now();
        let (mut lines, metrics) = lines(start);
        let mut out = Vec::new();
        // 100 MB in one instant: the burst passes, the rest is dropped.
        let line = [vec![b'a'; 1023], vec![b'\n']].concat();
        for _ in 0..100_000 {
            lines.feed(&line, start, &mut out);
        }
        assert_eq!(out.len() as f64, BURST_BYTES, "the burst and no more");
        let dropped = 100_000 * 1024 - BURST_BYTES as u64;
        assert!(metrics.encode().contains(&format!(
            r#"kf_gateway_function_log_dropped_bytes_total{{function="f"}} {dropped}"#
        )));
        // A second later there is room again, and the drop is told first,
        // once: a second line right after it is not preceded by another.
        out.clear();
        lines.feed(b"after\n", start + Duration::from_secs(1), &mut out);
        lines.feed(&line, start + Duration::from_secs(1), &mut out);
        out.truncate(out.len() - line.len());
        let text = String::from_utf8_lossy(&out);
        assert_eq!(
            text,
            format!(
                "[kf-gateway: {} lines ({dropped} bytes) of f's output dropped: over 1048576 bytes a second]\nafter\n",
                dropped / 1024
            )
        );
    }
}
