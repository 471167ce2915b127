//! Output to a full disk, on a real file system that fills up: a 20 MiB tmpfs mounted for the
//! test (needs root, as CI has), nearly filled by another file. The json handler waits and
//! retries (default) or fails (`"commit_failure": "fail"`); it never leaves a partial line,
//! and once space is back its output is the whole output, without a gap.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use serde_json::json;

/// A small tmpfs at `dir/mnt`, unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    /// `None` when this user cannot mount (not root).
    fn mount(dir: &Path, size: &str) -> Option<Tmpfs> {
        let mnt = dir.join("mnt");
        std::fs::create_dir(&mnt).unwrap();
        let ok = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(&mnt)
            .status()
            .is_ok_and(|s| s.success());
        ok.then_some(Tmpfs(mnt))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Fills `mnt` until `free` bytes are left.
fn fill(mnt: &Path, free: u64) -> PathBuf {
    let stat = nix::sys::statvfs::statvfs(mnt).unwrap();
    let avail = stat.blocks_available() * stat.fragment_size();
    let filler = mnt.join("filler");
    std::fs::write(&filler, vec![b'x'; (avail - free) as usize]).unwrap();
    filler
}

/// `sf-launch ARGS` with its standard error read as it comes.
fn spawn_watching(
    tag: &Path,
    args: &[&dyn AsRef<std::ffi::OsStr>],
) -> (std::process::Child, Arc<Mutex<String>>) {
    let mut cmd = Command::new(sf_launch());
    cmd.env("SF_TEST_TAG", tag);
    for a in args {
        cmd.arg(a);
    }
    let mut child = cmd
        .current_dir(root())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let err = Arc::new(Mutex::new(String::new()));
    let sink = Arc::clone(&err);
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let mut s = sink.lock().unwrap();
            s.push_str(&line);
            s.push('\n');
        }
    });
    (child, err)
}

fn wait_exit(child: &mut std::process::Child) -> Option<i32> {
    let mut code = None;
    wait_for("sf-launch to exit", WATCHDOG, || {
        match child.try_wait().unwrap() {
            Some(status) => {
                code = status.code();
                true
            }
            None => false,
        }
    });
    code
}

fn json_block(out: &Path, extra: serde_json::Value) -> serde_json::Value {
    let mut block = json!({"handler": "json", "file": out, "seq": true});
    block
        .as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    block
}

/// Every line whole (it ends with a newline and parses).
fn assert_whole_lines(text: &str) {
    assert!(
        text.is_empty() || text.ends_with('\n'),
        "a partial last line"
    );
    for line in text.lines() {
        serde_json::from_str::<serde_json::Value>(line)
            .unwrap_or_else(|e| panic!("not a whole JSON line ({e}): {line:.80}"));
    }
}

#[test]
fn a_full_disk_holds_the_output_back_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    assert_exporter_built();
    let trace = shared().join("traces/k8s_small.sf");
    // The whole output, on a disk with room.
    let reference = dir.path().join("reference.jsonl");
    let run = launch(
        dir.path(),
        &[
            &write_blocks(dir.path(), &[json_block(&reference, json!({}))]),
            &trace,
        ],
    );
    assert!(run.status.success(), "{run:?}");
    let want = std::fs::read(&reference).unwrap();
    assert_eq!(want.iter().filter(|b| **b == b'\n').count(), 5247);

    let Some(tmpfs) = Tmpfs::mount(dir.path(), "20m") else {
        eprintln!("skipped: mounting a tmpfs needs root");
        return;
    };
    // Room for a small part of the 15 MB output only.
    let filler = fill(&tmpfs.0, 512 << 10);
    let out = tmpfs.0.join("out.jsonl");
    let pipeline = write_blocks(dir.path(), &[json_block(&out, json!({}))]);
    let (mut child, stderr) = spawn_watching(dir.path(), &[&pipeline, &trace]);
    wait_for("the disk to be full", Duration::from_secs(60), || {
        stderr.lock().unwrap().contains("No space left on device")
    });
    // Full: what is in the file is whole lines, the first ones of the output.
    let partial = std::fs::read(&out).unwrap();
    assert!(partial.len() < want.len());
    assert_whole_lines(&String::from_utf8(partial.clone()).unwrap());
    assert_eq!(partial[..], want[..partial.len()], "a gap or another line");
    // Space comes back: the handler's retries write the rest.
    std::fs::remove_file(&filler).unwrap();
    let code = wait_exit(&mut child);
    let err = stderr.lock().unwrap().clone();
    assert_eq!(code, Some(0), "{err}");
    // The failure was said once (at most one line per 10 s), and its end.
    assert!(err.contains("json: commit failed: "), "{err}");
    assert!(err.lines().count() <= 5, "{err}");
    let got = std::fs::read(&out).unwrap();
    assert!(
        got == want,
        "the output differs from the reference ({} bytes, {} expected)",
        got.len(),
        want.len()
    );
    drop(tmpfs);
    assert_clean(dir.path());
}

#[test]
fn a_full_disk_fails_the_handler_when_its_block_says_so() {
    let dir = tempfile::tempdir().unwrap();
    assert_exporter_built();
    let trace = shared().join("traces/k8s_small.sf");
    let reference = dir.path().join("reference.jsonl");
    let run = launch(
        dir.path(),
        &[
            &write_blocks(dir.path(), &[json_block(&reference, json!({}))]),
            &trace,
        ],
    );
    assert!(run.status.success(), "{run:?}");
    let want = std::fs::read(&reference).unwrap();
    let Some(tmpfs) = Tmpfs::mount(dir.path(), "20m") else {
        eprintln!("skipped: mounting a tmpfs needs root");
        return;
    };
    let _filler = fill(&tmpfs.0, 512 << 10);
    let out = tmpfs.0.join("out.jsonl");
    let pipeline = write_blocks(
        dir.path(),
        &[json_block(&out, json!({"commit_failure": "fail"}))],
    );
    let (mut child, stderr) = spawn_watching(dir.path(), &[&pipeline, &trace]);
    let code = wait_exit(&mut child);
    let err = stderr.lock().unwrap().clone();
    assert_eq!(code, Some(1), "{err}");
    assert_eq!(
        err.lines().last(),
        Some(
            "sf-launch: error: handler json failed (its output failed (\"commit_failure\": \"fail\"), see its messages above)"
        ),
        "{err}"
    );
    assert!(
        err.contains("and its block says \"commit_failure\": \"fail\": stopping; what was not acknowledged was not written"),
        "{err}"
    );
    let got = std::fs::read(&out).unwrap();
    assert!(!got.is_empty() && got.len() < want.len());
    assert_whole_lines(&String::from_utf8(got.clone()).unwrap());
    assert_eq!(got[..], want[..got.len()]);
    drop(tmpfs);
    assert_clean(dir.path());
}
