//! The live status of `traffic local`: what it shows ([`Status`]), redrawn in place on a
//! terminal or printed as a line every few seconds.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use traffic_core::time::format_rfc3339_ms;

/// How the live status is shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum StatusMode {
    /// Redrawn in place (when stderr is a terminal), else a line every few seconds.
    Auto,
    /// A line every few seconds.
    Lines,
    /// None.
    Off,
}

/// What the status display shows.
#[derive(Clone, Debug, Default)]
pub struct Status {
    pub(crate) sim_ms: i64,
    pub(crate) readings: u64,
    pub(crate) rate: f64,
    pub(crate) windows_closed: usize,
    pub(crate) top3: Vec<(String, f64)>,
    pub(crate) top3_window: String,
    pub(crate) open_alarms: usize,
    pub(crate) mean_delay: f64,
    pub(crate) control: String,
    pub(crate) stopping: bool,
}

impl Status {
    /// The lines shown.
    pub fn render(&self) -> Vec<String> {
        let top = if self.top3.is_empty() {
            "(no ranked window yet)".to_owned()
        } else {
            self.top3
                .iter()
                .map(|(id, v)| format!("{id} {v:.1} km/h"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        vec![
            format!(
                "traffic local  simulated {}  ({} control){}",
                format_rfc3339_ms(self.sim_ms),
                self.control,
                if self.stopping { "  stopping…" } else { "" }
            ),
            format!(
                "  readings {:>10}   {:>9.0} readings/s   windows closed {:>5}",
                self.readings, self.rate, self.windows_closed
            ),
            format!("  fastest {}: {top}", self.top3_window),
            format!(
                "  open alarms {:>4}   mean delay {:.1} s/vehicle",
                self.open_alarms, self.mean_delay
            ),
        ]
    }
}

/// Peak resident set size of this process, MiB (from /proc on Linux).
pub fn peak_rss_mib() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// Shows the status: redrawn in place on a terminal, else a line every 5 s.
pub(crate) fn spawn_display(
    mode: StatusMode,
    status: Arc<Mutex<Status>>,
) -> Option<tokio::task::JoinHandle<()>> {
    use std::io::IsTerminal;
    let tty = std::io::stderr().is_terminal();
    let (in_place, every) = match mode {
        StatusMode::Off => return None,
        StatusMode::Auto if tty => (true, Duration::from_millis(500)),
        _ => (false, Duration::from_secs(5)),
    };
    Some(tokio::spawn(async move {
        let mut drawn = 0usize;
        loop {
            tokio::time::sleep(every).await;
            let lines = match status.lock() {
                Ok(s) => s.render(),
                Err(_) => return,
            };
            let mut err = std::io::stderr().lock();
            if in_place {
                if drawn > 0 {
                    let _ = write!(err, "\x1b[{drawn}A");
                }
                for l in &lines {
                    let _ = writeln!(err, "\x1b[2K{l}");
                }
                drawn = lines.len();
            } else {
                let _ = writeln!(err, "{}", lines.join(" |"));
            }
        }
    }))
}
