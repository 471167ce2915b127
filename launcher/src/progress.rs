//! How far the reader is in its input, for `ctl status`, the progress line on a terminal and
//! `--perf-log`: the bytes of the input files it has read, out of their total.
//!
//! The position is read from the kernel, not asked of the reader: the files of the input
//! (as the reader lists them: a file, or the regular files of a directory in name order,
//! hidden ones left out) and, in `/proc/READER/fd` and `/proc/READER/fdinfo`, the one it
//! has open and its offset. Files before the one open count as read. (The reader reads
//! through a 256 KiB buffer, so the position runs that far ahead of what it decoded.)

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::plan::Input;

/// How often a followed directory is listed again.
const RELIST: Duration = Duration::from_secs(5);

/// The reader's position in its input files.
#[derive(Debug)]
pub struct InputProgress {
    dir_or_file: Option<(PathBuf, bool)>,
    files: Vec<(PathBuf, u64)>,
    listed_at: Instant,
    /// Index of the file open last (files before it are read).
    current: usize,
    position: u64,
    /// For the rate: (position, when) at the previous sample.
    rate_from: Option<(u64, Instant)>,
    bytes_per_s: f64,
}

fn list(path: &Path) -> Vec<(PathBuf, u64)> {
    let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    if !path.is_dir() {
        return vec![(path.to_owned(), size(path))];
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(path)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .map(|e| e.path())
        .filter(|p| std::fs::metadata(p).is_ok_and(|m| m.is_file()))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let s = size(&p);
            (p, s)
        })
        .collect()
}

impl InputProgress {
    /// For the pipeline's input (nothing to measure on a socket).
    pub fn new(input: &Input) -> Self {
        let dir_or_file = match input {
            Input::Path { path, follow } => Some((path.clone(), *follow)),
            Input::Socket(_) => None,
        };
        let files = dir_or_file
            .as_ref()
            .map(|(p, _)| list(p))
            .unwrap_or_default();
        InputProgress {
            dir_or_file,
            files,
            listed_at: Instant::now(),
            current: 0,
            position: 0,
            rate_from: None,
            bytes_per_s: 0.0,
        }
    }

    /// Whether there is a total to measure against (a file input of known size).
    pub fn measurable(&self) -> bool {
        self.dir_or_file.is_some() && self.total() > 0
    }

    /// Bytes of all input files (so far, when following a directory).
    pub fn total(&self) -> u64 {
        self.files.iter().map(|(_, s)| s).sum()
    }

    /// Bytes read.
    pub fn position(&self) -> u64 {
        self.position
    }

    /// Seconds left at the rate of the last samples, if it can be told.
    pub fn eta(&self) -> Option<Duration> {
        (self.bytes_per_s > 0.0 && self.total() > self.position).then(|| {
            Duration::from_secs_f64((self.total() - self.position) as f64 / self.bytes_per_s)
        })
    }

    /// Reads the position of the reader `pid` (`None`: not running; `done`: it read
    /// everything).
    pub fn sample(&mut self, pid: Option<u32>, done: bool) {
        let Some((path, follow)) = &self.dir_or_file else {
            return;
        };
        if *follow && self.listed_at.elapsed() >= RELIST {
            self.files = list(path);
            self.listed_at = Instant::now();
        }
        if done {
            self.position = self.total();
            return;
        }
        let Some(pid) = pid else { return };
        let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
            return;
        };
        for fd in fds.flatten() {
            let Ok(target) = std::fs::read_link(fd.path()) else {
                continue;
            };
            let Some(i) = self.files.iter().position(|(p, _)| {
                p == &target || std::fs::canonicalize(p).is_ok_and(|c| c == target)
            }) else {
                continue;
            };
            let info = std::fs::read_to_string(format!(
                "/proc/{pid}/fdinfo/{}",
                fd.file_name().to_string_lossy()
            ))
            .unwrap_or_default();
            let Some(pos) = info
                .lines()
                .find_map(|l| l.strip_prefix("pos:"))
                .and_then(|v| v.trim().parse::<u64>().ok())
            else {
                continue;
            };
            self.current = self.current.max(i);
            let before: u64 = self.files[..i].iter().map(|(_, s)| s).sum();
            let at = before + pos.min(self.files[i].1);
            self.position = self.position.max(at);
        }
        let now = Instant::now();
        match self.rate_from {
            Some((p, t)) if now.duration_since(t) >= Duration::from_secs(1) => {
                let rate =
                    (self.position.saturating_sub(p)) as f64 / now.duration_since(t).as_secs_f64();
                // Smoothed: the reader reads in bursts of its buffer.
                self.bytes_per_s = if self.bytes_per_s == 0.0 {
                    rate
                } else {
                    0.7 * self.bytes_per_s + 0.3 * rate
                };
                self.rate_from = Some((self.position, now));
            }
            Some(_) => {}
            None => self.rate_from = Some((self.position, now)),
        }
    }
}

/// `12.3 MB`, decimal units as `ls -lh --si`.
pub fn bytes(n: u64) -> String {
    let n = n as f64;
    match n {
        n if n >= 1e9 => format!("{:.2} GB", n / 1e9),
        n if n >= 1e6 => format!("{:.1} MB", n / 1e6),
        n if n >= 1e3 => format!("{:.0} kB", n / 1e3),
        n => format!("{n} B"),
    }
}
