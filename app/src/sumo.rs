//! `traffic sumo`: the system driven by an outside traffic simulator (the SUMO bridge in
//! `simulator/sumo/`), one simulated minute at a time, over stdin and stdout JSON lines.
//!
//! Each input line is one tick: the simulated instant and the readings that the detectors
//! produced up to it, each one a reading of the contract (`docs/contracts.md`), unchanged:
//!
//! ```json
//! {"now":"2026-01-05T06:01:00Z","readings":[{"intersection_id":"A0","light":0,...}]}
//! ```
//!
//! The readings go, in order, through an in-process stream split over shards by intersection
//! id (as Kinesis would: arrival time is the tick's `now`) to the same `ingest` and `fault`
//! handlers as every other mode, on an embedded store in a temporary directory. Whenever `now`
//! reaches a multiple of the merge period (simulated time, as an EventBridge schedule would
//! fire), the merge runs. The answer is one line per tick:
//!
//! ```json
//! {"now":"2026-01-05T06:20:00Z","merged":true,
//!  "timings":[{"intersection_id":"A0","retimed_from":"15m@2026-01-05T06:00:00Z","cycle_s":36.0,
//!              "phases":[{"lights":[0,2],"green_s":13.5,"red_s":22.5}, ...],
//!              "plan":{"cycle_s":36.0,"offset_s":null,"coordinated_phase":null,
//!                      "phases":[{"min_green_s":6.75,"green_s":13.5,"max_green_s":40.5}, ...]}}],
//!  "alarms":[{"intersection_id":"A0","light":1,"lamp":"green","ts":"2026-01-05T06:07:00Z"}],
//!  "demand":[{"intersection_id":"A0","window":"15m@2026-01-05T06:00:00Z",
//!             "lights":[{"light":0,"served_veh_h":412.0,"saturation_x":0.93,"demand_veh_h":515.0}, ...]}],
//!  "readings":960,"rejected":0,"late":0,"duplicates":0}
//! ```
//!
//! `timings` holds the intersections whose timings the merge changed since the previous answer
//! (as the registry has them), or whose plan changed with them, each with its `plan` for an
//! actuated controller ([`traffic_core::plan`]: per phase the minimum green, the fixed-time
//! green, the maximum green, in the phases' order; the cycle of the fixed-time greens), the one
//! the merge stored with those timings (drawn with the engine's `PLAN_*` variables,
//! `docs/contracts.md`, "Plans"), then coordinated here
//! ([`traffic_core::coordination::coordinate`], one call over every intersection's plan,
//! position and the vehicles counted since timings last changed: neighbours share a cycle and
//! get an offset and a coordinated phase; `PLAN_COORDINATION`, `PLAN_COORDINATION_DISTANCE_M`,
//! `PLAN_PROGRESSION_SPEED_KMH`);
//! `alarms` the alarms raised since then; `demand` each intersection's estimated demand on the
//! control window the merge closed at this tick ([`traffic_core::demand`]: what the SUMO bridge
//! compares with the vehicles that truly arrived); the counters are totals.
//! A line that is not a tick gets `{"error": ...}` and changes nothing. Time never comes from a
//! clock: the same ticks give the same answers.

use crate::esm::{EventSourceMapping, MappingConfig};
use crate::functions::Functions;
use crate::replay::TimingOut;
use crate::stream::{MemorySource, partition_key_of};
use anyhow::Context;
use merge::{CloseUpTo, Provisional};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use tokio::sync::mpsc;
use traffic_core::alarm::AlarmPolicy;
use traffic_core::coordination::{CoordinationConfig, Member, coordinate};
use traffic_core::demand::IntersectionDemand;
use traffic_core::pane::Counters;
use traffic_core::plan::{Plan, plan_of};
use traffic_core::reading::Position;
use traffic_core::time::{format_rfc3339_ms, parse_rfc3339_ms};
use traffic_core::{City, EngineConfig};
use traffic_embedded::EmbeddedStore;
use traffic_ports::{ManualClock, MemoryCheckpoints, SourceShards};

/// Options of `traffic sumo`.
#[derive(Clone, Debug)]
pub struct SumoOptions {
    /// Shards of the in-process stream.
    pub shards: usize,
    /// Records per batch handed to the functions.
    pub batch_size: usize,
    /// Simulated time between merge runs, ms.
    pub merge_every_ms: i64,
    /// How `fault` and `merge` handle alarms (the configuration's `ALARM_*`).
    pub alarms: AlarmPolicy,
    /// How neighbouring intersections' plans are coordinated (`PLAN_COORDINATION*`,
    /// `PLAN_PROGRESSION_SPEED_KMH`).
    pub coordination: CoordinationConfig,
}

/// One intersection's changed timings in an answer: the timings the merge wrote and the plan
/// an actuated controller runs within.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct TimingAnswer {
    /// The timings, as every other mode gives them.
    #[serde(flatten)]
    pub timing: TimingOut,
    /// The plan ([`traffic_core::plan`]).
    pub plan: Plan,
}

/// One input line.
#[derive(Deserialize)]
struct Tick<'a> {
    now: String,
    #[serde(borrow, default)]
    readings: Vec<&'a RawValue>,
}

/// What coordination needs of a reading (a reading that is not one counts nothing here, and
/// `ingest` rejects it).
#[derive(Deserialize)]
struct Counted {
    intersection_id: String,
    #[serde(default)]
    vehicles: f64,
}

/// One new alarm in an answer.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct AlarmAnswer {
    /// The intersection.
    pub intersection_id: String,
    /// The light.
    pub light: usize,
    /// The broken lamp's colour.
    pub lamp: String,
    /// Event time of its first broken reading.
    pub ts: String,
}

/// The answer to one tick.
#[derive(Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Answer {
    /// The tick's simulated instant.
    pub now: String,
    /// Whether the merge ran at this tick.
    pub merged: bool,
    /// Timings changed since the previous answer, each with its plan.
    pub timings: Vec<TimingAnswer>,
    /// Alarms raised since the previous answer.
    pub alarms: Vec<AlarmAnswer>,
    /// The demand the merge estimated at this tick, for each intersection it weighed
    /// ([`traffic_core::demand`]; empty when no control window closed).
    #[serde(default)]
    pub demand: Vec<IntersectionDemand>,
    /// Readings received so far.
    pub readings: u64,
    /// Readings rejected so far.
    pub rejected: u64,
    /// Readings dropped as late so far.
    pub late: u64,
    /// Duplicates so far.
    pub duplicates: u64,
}

/// What a whole run did.
#[derive(Debug, Default, Serialize)]
pub struct SumoSummary {
    /// Ticks answered.
    pub ticks: u64,
    /// Readings received.
    pub readings: u64,
    /// Merge runs.
    pub merges: u64,
    /// Timing changes handed back.
    pub retimings: u64,
    /// Alarms handed back.
    pub alarms: u64,
    /// Lines that were not ticks.
    pub bad_lines: u64,
}

/// The system between ticks: the functions, the stream and its mapping (with their
/// positions), what was already answered.
pub struct SumoLoop {
    functions: Functions,
    clock: Arc<ManualClock>,
    source: Arc<MemorySource>,
    mapping: EventSourceMapping,
    opts: SumoOptions,
    next_merge_ms: Option<i64>,
    answered_from: HashMap<String, String>,
    answered_plan: HashMap<String, Plan>,
    /// Vehicles counted per intersection since timings last changed (coordination's flow).
    counted: HashMap<String, f64>,
    alarms_seen: usize,
    readings: u64,
    _dir: tempfile::TempDir,
}

impl SumoLoop {
    /// A loop over `city` on a new embedded store in a temporary directory.
    pub fn new(cfg: EngineConfig, city: &City, opts: SumoOptions) -> anyhow::Result<Self> {
        if opts.merge_every_ms <= 0 {
            anyhow::bail!("the merge period must be positive");
        }
        let dir = tempfile::tempdir().context("creating a temporary store")?;
        let store = EmbeddedStore::open_relaxed(dir.path().join("sumo.redb"))?;
        store.put_intersections(&city.intersections)?;
        let shards = opts.shards.max(1);
        let source = Arc::new(MemorySource::new(shards));
        // SUMO's time is the system's: arrivals, statistics, idle shards, the merge's lease.
        let clock = Arc::new(ManualClock::default());
        let ports = store
            .ports()
            .with_clock(clock.clone())
            .with_stream(Arc::new(SourceShards(source.clone())));
        let functions = Functions::from_ports(cfg, Provisional::None, &opts.alarms, ports)
            .with_merge_holder("traffic-sumo");
        let batch = opts.batch_size.max(1);
        let mapping = EventSourceMapping::new(
            source.clone(),
            Arc::new(MemoryCheckpoints::default()),
            functions.mappings(|name| MappingConfig::in_process(name, batch)),
        );
        Ok(Self {
            functions,
            clock,
            source,
            mapping,
            opts: SumoOptions { shards, ..opts },
            next_merge_ms: None,
            answered_from: HashMap::new(),
            answered_plan: HashMap::new(),
            counted: HashMap::new(),
            alarms_seen: 0,
            readings: 0,
            _dir: dir,
        })
    }

    /// Handles one input line; `Err` only when the system itself fails (a port), never for
    /// bad input, which gets an answer with an error instead.
    pub async fn line(&mut self, line: &str) -> anyhow::Result<serde_json::Value> {
        let tick: Tick = match serde_json::from_str(line) {
            Ok(t) => t,
            Err(e) => return Ok(error_answer(format!("not a tick: {e}"))),
        };
        let Some(now_ms) = parse_rfc3339_ms(&tick.now) else {
            return Ok(error_answer(format!(
                "now: not an RFC 3339 time: {:?}",
                tick.now
            )));
        };
        let answer = self
            .tick(now_ms, tick.readings.iter().map(|r| r.get().as_bytes()))
            .await?;
        Ok(serde_json::to_value(answer)?)
    }

    /// Delivers `readings` (raw records) at simulated instant `now_ms`, runs the merge when
    /// its period has come, and answers.
    pub async fn tick<'r>(
        &mut self,
        now_ms: i64,
        readings: impl Iterator<Item = &'r [u8]>,
    ) -> anyhow::Result<Answer> {
        self.clock.set(now_ms);
        for data in readings {
            if let Ok(r) = serde_json::from_slice::<Counted>(data) {
                *self.counted.entry(r.intersection_id).or_default() += r.vehicles;
            }
            self.source
                .put(partition_key_of(data), data.to_vec(), now_ms);
            self.readings += 1;
        }
        self.mapping.drain().await?;
        let period = self.opts.merge_every_ms;
        let due = *self
            .next_merge_ms
            .get_or_insert_with(|| (now_ms.div_euclid(period) + 1) * period);
        let mut answer = Answer {
            now: format_rfc3339_ms(now_ms),
            readings: self.readings,
            ..Answer::default()
        };
        if now_ms >= due {
            let report = self.functions.merge(CloseUpTo::Watermark).await?;
            answer.demand = report.demand;
            self.next_merge_ms = Some((now_ms.div_euclid(period) + 1) * period);
            answer.merged = true;
            answer.timings = self.changed_timings().await?;
        }
        answer.alarms = self.new_alarms().await?;
        let mut counters = Counters::default();
        for m in self.functions.ports.state.shard_metas().await? {
            counters.add(&m.counters);
        }
        answer.rejected = counters.rejected;
        answer.late = counters.late;
        answer.duplicates = counters.duplicates;
        Ok(answer)
    }

    /// The intersections whose timings changed since the previous answer, or whose plan did
    /// (coordination ties a group's plans together: one member's new timings can move the
    /// others' cycle and offsets). Plans are drawn and coordinated only when some timing
    /// changed, so that counts alone never move an offset.
    async fn changed_timings(&mut self) -> anyhow::Result<Vec<TimingAnswer>> {
        let yellow = self.functions.cfg.webster.yellow_s;
        let mut rows: Vec<_> = self
            .functions
            .ports
            .registry
            .intersections()
            .await?
            .into_iter()
            .filter_map(|x| TimingOut::of(&x, yellow).map(|t| (x, t)))
            .collect();
        if rows
            .iter()
            .all(|(_, t)| self.answered_from.get(&t.intersection_id) == Some(&t.retimed_from))
        {
            return Ok(Vec::new());
        }
        rows.sort_by(|a, b| a.1.intersection_id.cmp(&b.1.intersection_id));
        let members: Vec<Member> = rows
            .iter()
            .map(|(x, t)| Member {
                position: Position {
                    lat: x.lat,
                    lon: x.lon,
                },
                // The merge's plan, stored with the timings it wrote.
                plan: plan_of(x, yellow, &self.functions.cfg.plan),
                vehicles: self.counted.get(&t.intersection_id).copied().unwrap_or(0.0),
            })
            .collect();
        self.counted.clear();
        let plans = coordinate(&members, &self.opts.coordination);
        let mut out = Vec::new();
        for ((_, t), plan) in rows.into_iter().zip(plans) {
            let id = t.intersection_id.clone();
            if self.answered_from.get(&id) == Some(&t.retimed_from)
                && self.answered_plan.get(&id) == Some(&plan)
            {
                continue;
            }
            self.answered_from
                .insert(id.clone(), t.retimed_from.clone());
            self.answered_plan.insert(id, plan.clone());
            out.push(TimingAnswer { timing: t, plan });
        }
        Ok(out)
    }

    async fn new_alarms(&mut self) -> anyhow::Result<Vec<AlarmAnswer>> {
        let all = self.functions.ports.lamps.alarms().await?;
        // Lamp alarms only: the bridge answers for the lamps it breaks (sensor-silent
        // alarms are the operator's, and the merge's).
        let fresh: Vec<AlarmAnswer> = all
            .iter()
            .skip(self.alarms_seen)
            .filter(|r| r.alarm.silent.is_none())
            .map(|r| AlarmAnswer {
                intersection_id: r.alarm.intersection_id.to_string(),
                light: r.alarm.light.get(),
                lamp: r.alarm.lamp.as_str().to_owned(),
                ts: format_rfc3339_ms(r.alarm.ts_ms),
            })
            .collect();
        self.alarms_seen = all.len();
        Ok(fresh)
    }
}

fn error_answer(message: String) -> serde_json::Value {
    serde_json::json!({ "error": message })
}

/// Reads the city file.
pub fn read_city(path: &Path) -> anyhow::Result<City> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    City::parse(&text).with_context(|| format!("in {}", path.display()))
}

/// Answers every line received on `input` with one line on `output`, until `input` closes.
pub async fn serve<W: Write>(
    cfg: EngineConfig,
    city: &City,
    opts: SumoOptions,
    mut input: mpsc::Receiver<String>,
    mut output: W,
) -> anyhow::Result<SumoSummary> {
    let mut sys = SumoLoop::new(cfg, city, opts)?;
    let mut summary = SumoSummary::default();
    while let Some(line) = input.recv().await {
        if line.trim().is_empty() {
            continue;
        }
        let answer = sys.line(&line).await?;
        if answer.get("error").is_some() {
            summary.bad_lines += 1;
        } else {
            summary.ticks += 1;
            summary.merges += u64::from(answer["merged"].as_bool().unwrap_or(false));
            let count = |k: &str| answer[k].as_array().map_or(0, Vec::len) as u64;
            summary.retimings += count("timings");
            summary.alarms += count("alarms");
        }
        serde_json::to_writer(&mut output, &answer)?;
        output.write_all(b"\n")?;
        output.flush()?;
    }
    summary.readings = sys.readings;
    Ok(summary)
}

/// The lines of standard input on a channel, read by a thread of their own (reading a pipe
/// blocks), ending when standard input does.
pub fn stdin_lines() -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel(16);
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if tx.blocking_send(line).is_err() {
                break;
            }
        }
    });
    rx
}

#[cfg(test)]
mod tests {
    use super::*;
    use traffic_core::window::WindowLength;

    const CITY: &str = r#"{"intersections":[
      {"id":"A0","lat":41.85,"lon":12.60,
       "lights":[{"light":0,"saturation_veh_h":3600},{"light":1,"saturation_veh_h":1800}],
       "phases":[{"lights":[0],"green_s":42,"red_s":45},{"lights":[1],"green_s":42,"red_s":45}]},
      {"id":"B0","lat":41.86,"lon":12.61,
       "lights":[{"light":0,"saturation_veh_h":1800},{"light":1,"saturation_veh_h":1800}],
       "phases":[{"lights":[0],"green_s":42,"red_s":45},{"lights":[1],"green_s":42,"red_s":45}]}]}"#;

    /// One-minute control windows, no lateness, a merge every simulated minute.
    fn system() -> SumoLoop {
        system_with(AlarmPolicy::default())
    }

    /// As [`system`], handling alarms by `alarms`.
    fn system_with(alarms: AlarmPolicy) -> SumoLoop {
        system_on(CITY, alarms, |_| {})
    }

    /// As [`system`], on the city `city`.
    fn system_of(city: &str, alarms: AlarmPolicy) -> SumoLoop {
        system_on(city, alarms, |_| {})
    }

    /// As [`system_with`], the engine's configuration changed by `change`.
    fn system_configured(alarms: AlarmPolicy, change: impl FnOnce(&mut EngineConfig)) -> SumoLoop {
        system_on(CITY, alarms, change)
    }

    /// As [`system`], on the city `city`, handling alarms by `alarms`, the engine's
    /// configuration changed by `change`.
    fn system_on(
        city: &str,
        alarms: AlarmPolicy,
        change: impl FnOnce(&mut EngineConfig),
    ) -> SumoLoop {
        let city = City::parse(city).unwrap_or_else(|e| panic!("{e}"));
        let lengths: Vec<WindowLength> = ["1m", "5m"]
            .iter()
            .map(|s| s.parse().unwrap_or_else(|e| panic!("{e:?}")))
            .collect();
        let mut cfg = EngineConfig::default()
            .with_windows(&lengths)
            .unwrap_or_else(|e| panic!("{e}"));
        cfg.allowed_lateness_ms = 0;
        change(&mut cfg);
        let opts = SumoOptions {
            alarms,
            shards: 2,
            batch_size: 3,
            merge_every_ms: 60_000,
            // on, so that the tests see it (off by default)
            coordination: CoordinationConfig {
                enabled: true,
                ..CoordinationConfig::default()
            },
        };
        SumoLoop::new(cfg, &city, opts).unwrap_or_else(|e| panic!("{e}"))
    }

    /// The tick at 06:MM with one reading per light, `vehicles[i][l]` for intersection i.
    fn tick(minute: u32, vehicles: [[u32; 2]; 2], broken: Option<(&str, u8)>) -> String {
        let ts = format!("2026-01-05T06:{minute:02}:00Z");
        let mut readings = Vec::new();
        for (i, id) in ["A0", "B0"].iter().enumerate() {
            for l in 0..2u8 {
                let green = if broken == Some((id, l)) {
                    "broken"
                } else {
                    "ok"
                };
                readings.push(format!(
                    r#"{{"intersection_id":"{id}","light":{l},"ts":"{ts}","vehicles":{},"mean_speed_kmh":30.5,"lamps":{{"red":"ok","yellow":"ok","green":"{green}"}}}}"#,
                    vehicles[i][l as usize]
                ));
            }
        }
        format!(r#"{{"now":"{ts}","readings":[{}]}}"#, readings.join(","))
    }

    async fn answer(sys: &mut SumoLoop, line: &str) -> Answer {
        let v = sys.line(line).await.unwrap_or_else(|e| panic!("{e}"));
        serde_json::from_value(v.clone()).unwrap_or_else(|e| panic!("{e}: {v}"))
    }

    /// Whether each alarm recorded after A0's light 0 green lamp broke at 06:01, came back at
    /// 06:02 and broke again at 06:03 was held down, under the hold-down `hold_down`.
    async fn flapping_held_down(hold_down: Option<&str>) -> Vec<bool> {
        let config = traffic_functions::Config::from_lookup(|k| {
            (k == "ALARM_HOLD_DOWN")
                .then(|| hold_down.map(str::to_owned))
                .flatten()
        })
        .unwrap_or_else(|e| panic!("{e}"));
        let mut sys = system_with(config.alarms);
        for (minute, broken) in [(1, Some(("A0", 0))), (2, None), (3, Some(("A0", 0)))] {
            answer(&mut sys, &tick(minute, [[5, 5], [5, 5]], broken)).await;
        }
        let alarms = sys.functions.ports.lamps.alarms().await;
        let alarms = alarms.unwrap_or_else(|e| panic!("{e}"));
        alarms.iter().map(|r| r.held_down).collect()
    }

    #[tokio::test]
    async fn the_sumo_loop_holds_down_a_flapping_lamp_by_the_configured_hold_down() {
        assert_eq!(flapping_held_down(None).await, vec![false, true]);
        assert_eq!(flapping_held_down(Some("1m")).await, vec![false, false]);
    }

    #[tokio::test]
    async fn a_closed_window_comes_back_as_new_timings_at_the_next_merge() {
        let mut sys = system();
        let first = answer(&mut sys, &tick(1, [[30, 10], [5, 5]], None)).await;
        assert!(!first.merged && first.timings.is_empty());
        assert_eq!(first.readings, 4);
        // 06:02: the watermark passes the end of the 06:01 pane and the merge is due.
        let second = answer(&mut sys, &tick(2, [[30, 10], [5, 5]], None)).await;
        assert!(second.merged);
        let ids: Vec<&str> = second
            .timings
            .iter()
            .map(|t| t.timing.intersection_id.as_str())
            .collect();
        assert_eq!(ids, ["A0", "B0"]);
        let a0 = &second.timings[0].timing;
        assert_eq!(a0.retimed_from, "1m@2026-01-05T06:01:00Z");
        // 30 veh/min on 3600 veh/h against 10 on 1800: light 0's phase gets the longer green.
        assert!(a0.phases[0].green_s > a0.phases[1].green_s, "{a0:?}");
        let yellow = EngineConfig::default().webster.yellow_s;
        for p in &a0.phases {
            assert!((p.green_s + yellow + p.red_s - a0.cycle_s).abs() < 1e-9);
        }
        // The plan: the same greens and cycle, each between its minimum and maximum.
        let plan = &second.timings[0].plan;
        assert!((plan.cycle_s - a0.cycle_s).abs() < 1e-9);
        assert_eq!(plan.offset_s, None);
        for (pp, p) in plan.phases.iter().zip(&a0.phases) {
            assert_eq!(pp.green_s, p.green_s);
            assert!(pp.min_green_s <= pp.green_s && pp.green_s <= pp.max_green_s);
        }
        assert_eq!(second.rejected, 0);
        // The demand the merge estimated on that window: A0's light 0 served 30 vehicles a
        // minute (1,800 veh/h) where its 42 s of a 91 s cycle carry 3,600 · 42 / 91 = 1,662:
        // at capacity; with the estimator off (the default) its demand is what it served.
        let a0 = second
            .demand
            .iter()
            .find(|d| d.intersection_id.as_str() == "A0");
        let a0 = a0.unwrap_or_else(|| panic!("{:?}", second.demand));
        assert_eq!(a0.window.to_string(), "1m@2026-01-05T06:01:00Z");
        assert_eq!(a0.lights[0].served_veh_h, 1800.0);
        assert!((a0.lights[0].saturation_x - 1800.0 / (3600.0 * 42.0 / 91.0)).abs() < 1e-9);
        assert_eq!(a0.lights[0].demand_veh_h, 1800.0);
        assert_eq!(a0.lights[1].demand_veh_h, a0.lights[1].served_veh_h);
        assert!(first.demand.is_empty());
    }

    #[tokio::test]
    async fn neighbours_plans_come_back_on_one_cycle_with_offsets_and_loners_without() {
        // B0 moved to 200 m north of A0: neighbours under the default 400 m.
        let near = CITY.replace(r#""lat":41.86,"lon":12.61"#, r#""lat":41.8518,"lon":12.60"#);
        let mut sys = system_of(&near, AlarmPolicy::default());
        answer(&mut sys, &tick(1, [[30, 10], [5, 5]], None)).await;
        let a = answer(&mut sys, &tick(2, [[30, 10], [5, 5]], None)).await;
        let plans: Vec<&Plan> = a.timings.iter().map(|t| &t.plan).collect();
        assert_eq!(plans.len(), 2);
        assert!(
            (plans[0].cycle_s - plans[1].cycle_s).abs() < 1e-9,
            "{plans:?}"
        );
        // A0 counted more vehicles: it is the root, B0 one travel time (200 m at 40 km/h) on.
        assert_eq!(plans[0].offset_s, Some(0.0));
        let b = plans[1].offset_s.unwrap_or(-1.0);
        assert!((b - 18.0).abs() < 0.1, "{b}");
        assert_eq!(plans[0].coordinated_phase, Some(0));
        // Far apart (the shared city: 1.4 km), no offsets.
        let mut sys = system();
        answer(&mut sys, &tick(1, [[30, 10], [5, 5]], None)).await;
        let a = answer(&mut sys, &tick(2, [[30, 10], [5, 5]], None)).await;
        assert!(a.timings.iter().all(|t| t.plan.offset_s.is_none()));
    }

    #[tokio::test]
    async fn the_answers_plan_is_the_one_the_merge_stored_drawn_with_the_engines_plan_config() {
        let mut sys = system_configured(AlarmPolicy::default(), |c| {
            c.plan.max_green_factor = 2.0;
        });
        answer(&mut sys, &tick(1, [[30, 10], [5, 5]], None)).await;
        let second = answer(&mut sys, &tick(2, [[30, 10], [5, 5]], None)).await;
        assert_eq!(second.timings.len(), 2);
        for t in &second.timings {
            let id = traffic_core::IntersectionId::parse(&t.timing.intersection_id)
                .unwrap_or_else(|e| panic!("{e}"));
            let stored = sys
                .functions
                .ports
                .registry
                .intersection(&id)
                .await
                .unwrap_or_else(|e| panic!("{e}"))
                .and_then(|x| x.plan);
            assert_eq!(stored.as_ref(), Some(&t.plan), "{id}");
            for p in &t.plan.phases {
                assert!((p.max_green_s - 2.0 * p.green_s).abs() < 1e-9, "{p:?}");
            }
        }
    }

    #[tokio::test]
    async fn timings_already_answered_are_not_answered_again() {
        let mut sys = system();
        answer(&mut sys, &tick(1, [[30, 10], [5, 5]], None)).await;
        let second = answer(&mut sys, &tick(2, [[30, 10], [5, 5]], None)).await;
        assert_eq!(second.timings.len(), 2);
        // The merge at 06:03 retimes from the 06:02 window: new timings again.
        let third = answer(&mut sys, &tick(3, [[30, 10], [5, 5]], None)).await;
        assert!(
            third
                .timings
                .iter()
                .all(|t| t.timing.retimed_from == "1m@2026-01-05T06:02:00Z")
        );
        // A tick without readings closes nothing new for the merge to retime from.
        let again = sys
            .line(r#"{"now":"2026-01-05T06:03:30Z","readings":[]}"#)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(again["timings"], serde_json::json!([]));
    }

    #[tokio::test]
    async fn a_broken_lamp_raises_one_alarm_in_the_answer_of_its_tick() {
        let mut sys = system();
        let a = answer(&mut sys, &tick(1, [[1, 1], [1, 1]], Some(("B0", 1)))).await;
        assert_eq!(
            a.alarms,
            [AlarmAnswer {
                intersection_id: "B0".into(),
                light: 1,
                lamp: "green".into(),
                ts: "2026-01-05T06:01:00Z".into(),
            }]
        );
        let b = answer(&mut sys, &tick(2, [[1, 1], [1, 1]], Some(("B0", 1)))).await;
        assert!(b.alarms.is_empty(), "still broken: no second alarm");
    }

    #[tokio::test]
    async fn a_line_that_is_not_a_tick_gets_an_error_and_changes_nothing() {
        let mut sys = system();
        for bad in [
            "not json",
            r#"{"readings":[]}"#,
            r#"{"now":"yesterday","readings":[]}"#,
        ] {
            let v = sys.line(bad).await.unwrap_or_else(|e| panic!("{e}"));
            assert!(v["error"].is_string(), "{bad}: {v}");
        }
        let a = answer(&mut sys, &tick(1, [[1, 1], [1, 1]], None)).await;
        assert_eq!(a.readings, 4);
        // A reading that breaks the contract is rejected by ingest, and counted.
        let v = sys
            .line(r#"{"now":"2026-01-05T06:02:00Z","readings":[{"intersection_id":"nowhere","light":0}]}"#)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(v["rejected"], 1);
    }

    #[tokio::test]
    async fn the_same_ticks_give_the_same_answers() {
        let lines: Vec<String> = (1..=4)
            .map(|m| tick(m, [[m * 7, 3], [2, m]], (m == 2).then_some(("A0", 0))))
            .collect();
        let mut outs = Vec::new();
        for _ in 0..2 {
            let (tx, rx) = mpsc::channel(8);
            for l in &lines {
                tx.send(l.clone()).await.unwrap_or_else(|e| panic!("{e}"));
            }
            drop(tx);
            let city = City::parse(CITY).unwrap_or_else(|e| panic!("{e}"));
            let sys = system();
            let mut out = Vec::new();
            let summary = serve(
                sys.functions.cfg.clone(),
                &city,
                sys.opts.clone(),
                rx,
                &mut out,
            )
            .await
            .unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(summary.ticks, 4);
            outs.push(String::from_utf8(out).unwrap_or_default());
        }
        assert_eq!(outs[0], outs[1]);
        assert_eq!(outs[0].lines().count(), 4);
    }
}
