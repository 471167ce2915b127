//! Running under systemd (`Type=notify`, `resources/systemd/sf-launch.service`): the
//! launcher tells the service manager when the pipeline is ready (`READY=1`, once the reader
//! and every handler have attached), pings its watchdog (`WATCHDOG=1`, every half of
//! `WatchdogSec`, from the supervisor loop: a launcher that hangs stops pinging and systemd
//! restarts the service), says what it does (`STATUS=`), and that it reloads or stops.
//! Outside systemd (no `NOTIFY_SOCKET`), nothing is sent. The children never see the
//! service manager's variables: only the launcher talks to it.

use std::time::{Duration, Instant};

use sd_notify::NotifyState;

/// Variables of the service manager that the launcher's children must not inherit.
pub const SERVICE_VARS: [&str; 3] = ["NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"];

/// How often `STATUS=` is updated.
const STATUS_EVERY: Duration = Duration::from_secs(5);

/// The launcher's side of `sd_notify`.
#[derive(Debug)]
pub struct Service {
    enabled: bool,
    watchdog: Option<Duration>,
    last_ping: Option<Instant>,
    last_status: Option<Instant>,
    ready: bool,
}

impl Service {
    /// From the environment systemd gives a `Type=notify` service.
    pub fn from_env() -> Self {
        Service {
            enabled: std::env::var_os("NOTIFY_SOCKET").is_some(),
            watchdog: sd_notify::watchdog_enabled(),
            last_ping: None,
            last_status: None,
            ready: false,
        }
    }

    fn send(&self, states: &[NotifyState<'_>]) {
        if self.enabled
            && let Err(e) = sd_notify::notify(states)
        {
            sf_processor::limited!(warn, "sd_notify", "sd_notify: {e}");
        }
    }

    /// `READY=1`, once.
    pub fn ready(&mut self, status: &str) {
        if !self.ready {
            self.ready = true;
            self.send(&[NotifyState::Ready, NotifyState::Status(status)]);
        }
    }

    /// Whether `READY=1` was sent.
    pub fn is_ready(&self) -> bool {
        self.ready
    }

    /// Called at every turn of the supervisor loop: the watchdog ping when due, and the
    /// status line every few seconds.
    pub fn tick(&mut self, status: impl FnOnce() -> String) {
        if !self.enabled {
            return;
        }
        let now = Instant::now();
        if let Some(period) = self.watchdog
            && self
                .last_ping
                .is_none_or(|t| now.duration_since(t) >= period / 2)
        {
            self.last_ping = Some(now);
            self.send(&[NotifyState::Watchdog]);
        }
        if self.ready
            && self
                .last_status
                .is_none_or(|t| now.duration_since(t) >= STATUS_EVERY)
        {
            self.last_status = Some(now);
            self.send(&[NotifyState::Status(&status())]);
        }
    }

    /// `RELOADING=1` (with the monotonic time systemd asks for).
    pub fn reloading(&self) {
        let mut states = vec![NotifyState::Reloading];
        if let Ok(t) = NotifyState::monotonic_usec_now() {
            states.push(t);
        }
        self.send(&states);
    }

    /// `READY=1` after a reload.
    pub fn reloaded(&self, status: &str) {
        self.send(&[NotifyState::Ready, NotifyState::Status(status)]);
    }

    /// `STOPPING=1`.
    pub fn stopping(&self) {
        self.send(&[NotifyState::Stopping]);
    }
}
