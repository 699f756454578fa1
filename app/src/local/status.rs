//! The live status of `traffic local`: what it shows ([`Status`]), as a block on stderr
//! (redrawn in place on a terminal and fitted to its width, else a line every few seconds), or
//! as one JSON object a tick on stdout, for programs.

use serde::Serialize;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use traffic_core::time::format_rfc3339_ms;

/// How the live status is shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum StatusMode {
    /// A block on stderr, redrawn in place and fitted to the terminal's width when stderr is a
    /// terminal, else a line every 5 s.
    #[value(alias = "auto")]
    Human,
    /// A line on stderr every 5 s, even on a terminal.
    Lines,
    /// One JSON object a tick on stdout (every wall second, and once at the end).
    Json,
    /// None.
    #[value(name = "none", alias = "off")]
    Off,
}

/// The window whose ranking the status shows.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ShownWindow {
    /// Its length (`15m`).
    pub length: String,
    /// Its start, RFC 3339.
    pub start: String,
    /// Whether it is closed (final results), else open (provisional ones).
    pub closed: bool,
}

/// One intersection of the ranking shown.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Ranked {
    /// The intersection.
    pub intersection: String,
    /// Its mean speed in the window, km/h.
    pub mean_speed_kmh: f64,
}

/// What the status display shows; serialized, one `--status json` line (with
/// `"kind": "status"`).
#[derive(Clone, Debug, Default, Serialize)]
pub struct Status {
    /// The simulated clock, epoch ms.
    #[serde(skip)]
    pub(crate) sim_ms: i64,
    /// The simulated clock, RFC 3339.
    pub(crate) simulated: String,
    /// Readings produced by this process.
    pub(crate) readings: u64,
    /// Readings produced and processed per wall second since the previous tick.
    pub(crate) readings_per_s: f64,
    /// Windows with final results.
    pub(crate) windows_closed: usize,
    /// The latest window of the shortest length with a ranking.
    pub(crate) fastest_window: Option<ShownWindow>,
    /// Its three fastest intersections.
    pub(crate) fastest: Vec<Ranked>,
    /// Alarms not repaired.
    pub(crate) open_alarms: usize,
    /// The traffic model's mean delay per vehicle since the first start, s.
    pub(crate) mean_delay_s_per_vehicle: f64,
    /// `webster` or `fixed`.
    pub(crate) control: String,
    /// Whether the run is finishing (its last tick).
    pub(crate) stopping: bool,
}

/// Narrowest width the block is fitted to (a narrower terminal wraps it).
const MIN_WIDTH: usize = 20;

/// `line` cut to `width` characters, its end replaced by `…` when cut.
fn fit(line: &str, width: usize) -> String {
    if line.chars().count() <= width {
        return line.to_owned();
    }
    let mut out: String = line.chars().take(width.saturating_sub(1)).collect();
    out.push('…');
    out
}

impl Status {
    /// The lines shown, none wider than `width` characters (at least [`MIN_WIDTH`]): the
    /// ranking drops its last entries to fit, and any line still too wide is cut with `…`.
    pub fn render(&self, width: usize) -> Vec<String> {
        let width = width.max(MIN_WIDTH);
        let window = self.fastest_window.as_ref().map_or_else(String::new, |w| {
            format!(
                "{} from {}{}",
                w.length,
                w.start,
                if w.closed { "" } else { " (open)" }
            )
        });
        let entries: Vec<String> = self
            .fastest
            .iter()
            .map(|r| format!("{} {:.1} km/h", r.intersection, r.mean_speed_kmh))
            .collect();
        let fastest = if entries.is_empty() {
            "  fastest: (no ranked window yet)".to_owned()
        } else {
            // As many entries as fit, at least one.
            (1..=entries.len())
                .rev()
                .map(|n| format!("  fastest {window}: {}", entries[..n].join(", ")))
                .find(|l| l.chars().count() <= width)
                .unwrap_or_else(|| format!("  fastest {window}: {}", entries[0]))
        };
        [
            format!(
                "traffic local  simulated {}  ({} control){}",
                format_rfc3339_ms(self.sim_ms),
                self.control,
                if self.stopping { "  stopping…" } else { "" }
            ),
            format!(
                "  readings {:>10}   {:>9.0} readings/s   windows closed {:>5}",
                self.readings, self.readings_per_s, self.windows_closed
            ),
            fastest,
            format!(
                "  open alarms {:>4}   mean delay {:.1} s/vehicle",
                self.open_alarms, self.mean_delay_s_per_vehicle
            ),
        ]
        .iter()
        .map(|l| fit(l, width))
        .collect()
    }

    /// One `--status json` line: the status as a JSON object, `"kind": "status"` first.
    pub fn json_line(&self) -> String {
        #[derive(Serialize)]
        struct Tick<'a> {
            kind: &'static str,
            #[serde(flatten)]
            status: &'a Status,
        }
        serde_json::to_string(&Tick {
            kind: "status",
            status: self,
        })
        .unwrap_or_default()
    }
}

/// Columns of the terminal on stderr; else `COLUMNS`; else 80.
pub fn terminal_width() -> usize {
    terminal_size::terminal_size_of(std::io::stderr())
        .map(|(w, _)| usize::from(w.0))
        .filter(|&w| w > 0)
        .or_else(|| {
            std::env::var("COLUMNS")
                .ok()
                .and_then(|c| c.trim().parse().ok())
        })
        .unwrap_or(80)
}

/// Peak resident set size of this process, MiB (from /proc on Linux).
pub fn peak_rss_mib() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// Prints a tick of `--status json` on stdout (the run calls it after each update).
pub(crate) fn print_json(status: &Status) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{}", status.json_line());
    let _ = out.flush();
}

/// Shows the status on stderr: redrawn in place on a terminal (`human`), else a line every
/// 5 s; nothing for `json` (the run prints its ticks) and `none`.
pub(crate) fn spawn_display(
    mode: StatusMode,
    status: Arc<Mutex<Status>>,
) -> Option<tokio::task::JoinHandle<()>> {
    use std::io::IsTerminal;
    let tty = std::io::stderr().is_terminal();
    let (in_place, every) = match mode {
        StatusMode::Off | StatusMode::Json => return None,
        StatusMode::Human if tty => (true, Duration::from_millis(500)),
        StatusMode::Human | StatusMode::Lines => (false, Duration::from_secs(5)),
    };
    Some(tokio::spawn(async move {
        let mut drawn = 0usize;
        loop {
            tokio::time::sleep(every).await;
            // One column short of the width: a line that fills the last column wraps on
            // some terminals, which would tear the block on its next redraw.
            let width = if in_place {
                terminal_width().saturating_sub(1)
            } else {
                usize::MAX
            };
            let lines = match status.lock() {
                Ok(s) => s.render(width),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn busy() -> Status {
        Status {
            sim_ms: 1_767_592_800_000,
            simulated: "2026-01-05T06:00:00Z".into(),
            readings: 123_456_789,
            readings_per_s: 98_765.0,
            windows_closed: 1234,
            fastest_window: Some(ShownWindow {
                length: "15m".into(),
                start: "2026-01-05T06:00:00Z".into(),
                closed: false,
            }),
            fastest: (1..=3)
                .map(|i| Ranked {
                    intersection: format!("I-{i:04}"),
                    mean_speed_kmh: 55.0 + f64::from(i),
                })
                .collect(),
            open_alarms: 12,
            mean_delay_s_per_vehicle: 23.4,
            control: "webster".into(),
            stopping: true,
        }
    }

    #[test]
    fn no_line_is_wider_than_the_terminal() {
        let s = busy();
        for width in [20, 40, 79, 80, 120] {
            for l in s.render(width) {
                assert!(l.chars().count() <= width, "{width}: {l:?}");
            }
        }
        // 80 columns: the ranking keeps the entries that fit, whole.
        let at80 = s.render(79);
        assert!(at80[2].contains("I-0001 56.0 km/h"), "{at80:?}");
        assert!(!at80[2].ends_with('…'), "{at80:?}");
        // Wide: everything.
        let wide = s.render(200);
        assert!(wide[2].contains("I-0003 58.0 km/h"), "{wide:?}");
        assert!(Status::default().render(80)[2].contains("no ranked window yet"));
    }

    #[test]
    fn a_json_tick_carries_the_numbers_of_the_block() {
        let v: serde_json::Value =
            serde_json::from_str(&busy().json_line()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(v["kind"], "status");
        assert!(busy().json_line().starts_with(r#"{"kind":"status","#));
        assert_eq!(v["readings"], 123_456_789);
        assert_eq!(v["windows_closed"], 1234);
        assert_eq!(v["open_alarms"], 12);
        assert_eq!(v["fastest"][0]["intersection"], "I-0001");
        assert_eq!(v["fastest_window"]["length"], "15m");
        assert_eq!(v["simulated"], "2026-01-05T06:00:00Z");
        assert_eq!(v["stopping"], true);
    }
}
