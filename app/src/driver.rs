//! The closed-loop simulator driver, the one `traffic local`, `traffic simulate` and
//! `traffic aws-local` use: before each period it takes the timings in force (the registry's,
//! under Webster control; the city's own under fixed control) and the repair orders, steps
//! the simulator, and hands the readings to a [`ReadingSink`]: the embedded log (appended
//! atomically with the simulator's state and the repairs carried out, [`EmbeddedSink`]) or a
//! stream ([`StreamReadings`]).

use anyhow::Context;
use async_trait::async_trait;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;
use traffic_aws::kinesis::{KinesisSink, PutReport};
use traffic_core::{City, Intersection, IntersectionId, LightIndex, Reading};
use traffic_embedded::EmbeddedStore;
use traffic_ports::{LampStore, PortError, Registry};
use traffic_sim::{Controls, SimConfig, Simulator};

/// How timings are controlled.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum,
)]
pub enum TimingControl {
    /// The merge's Webster timings (and the operator's edits) reach the field each period.
    Webster,
    /// The initial timings stay (for comparison); the merge still computes new ones.
    Fixed,
}

/// Where the readings of a period go, and where the repair orders come from.
#[async_trait]
pub trait ReadingSink: Send {
    /// The repair orders to carry out in the next period.
    async fn repair_orders(&mut self) -> anyhow::Result<Vec<(IntersectionId, LightIndex)>>;

    /// Takes one period's readings.
    async fn put(&mut self, period: Period<'_>) -> anyhow::Result<PutReport>;
}

/// One period as the simulator ran it: its readings, the simulator after it (whose state the
/// embedded log keeps with them) and the repair orders it carried out.
#[derive(Clone, Copy)]
pub struct Period<'a> {
    /// What its sensors reported.
    pub readings: &'a [Reading],
    /// The simulator at its end.
    pub sim: &'a Simulator,
    /// The lamps repaired in it.
    pub repairs: &'a [(IntersectionId, LightIndex)],
}

/// Blob key of the simulator's state in the embedded store.
pub const SIM_BLOB: &str = "simulator";

/// The embedded log of `shards` shards: each period is appended in one transaction with the
/// simulator's state and the repair orders it carried out, so a crash never loses or repeats a
/// period (the orders stay queued until then).
pub struct EmbeddedSink {
    store: EmbeddedStore,
    shards: usize,
}

impl EmbeddedSink {
    /// The log of `store`, over `shards` shards.
    pub fn new(store: EmbeddedStore, shards: usize) -> Self {
        Self { store, shards }
    }
}

#[async_trait]
impl ReadingSink for EmbeddedSink {
    async fn repair_orders(&mut self) -> anyhow::Result<Vec<(IntersectionId, LightIndex)>> {
        Ok(self.store.repair_orders()?)
    }

    async fn put(&mut self, period: Period<'_>) -> anyhow::Result<PutReport> {
        let Period {
            readings,
            sim,
            repairs,
        } = period;
        let records: Vec<(u32, String, Vec<u8>)> = readings
            .iter()
            .map(|r| {
                let key = r.intersection_id.as_str().to_owned();
                let shard = crate::stream::shard_for(&key, self.shards) as u32;
                (shard, key, r.to_json().into_bytes())
            })
            .collect();
        let state = serde_json::to_vec(sim)?;
        // The stream's clock is the simulated one: the records arrive when the period that
        // produced them ends (its readings are stamped then too).
        self.store
            .append_step(&records, sim.now_ms(), SIM_BLOB, &state, repairs)?;
        Ok(PutReport {
            records: records.len(),
            calls: 1,
            retried: 0,
        })
    }
}

/// A stream the readings go into, alone: Kinesis, or a stream in memory.
#[async_trait]
pub trait ReadingStream: Send {
    /// Puts readings into the stream.
    async fn put_readings(&mut self, readings: &[Reading]) -> anyhow::Result<PutReport>;
}

#[async_trait]
impl ReadingStream for KinesisSink {
    async fn put_readings(&mut self, readings: &[Reading]) -> anyhow::Result<PutReport> {
        Ok(KinesisSink::put_readings(self, readings).await?)
    }
}

/// Readings into a stream; repair orders taken from the lamp store.
pub struct StreamReadings<S> {
    stream: S,
    lamps: Arc<dyn LampStore>,
}

impl<S> StreamReadings<S> {
    /// Readings into `stream`, repairs from `lamps`.
    pub fn new(stream: S, lamps: Arc<dyn LampStore>) -> Self {
        Self { stream, lamps }
    }
}

#[async_trait]
impl<S: ReadingStream> ReadingSink for StreamReadings<S> {
    async fn repair_orders(&mut self) -> anyhow::Result<Vec<(IntersectionId, LightIndex)>> {
        Ok(self.lamps.take_repairs().await?)
    }

    async fn put(&mut self, period: Period<'_>) -> anyhow::Result<PutReport> {
        self.stream.put_readings(period.readings).await
    }
}

/// What changed in the controls before a step.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ControlsUpdate {
    /// Intersections whose new timings (retimed or edited) were taken up.
    pub retimed: Vec<IntersectionId>,
    /// Lights repaired.
    pub repaired: usize,
}

/// What one step did.
#[derive(Clone, Debug)]
pub struct Step {
    /// The readings sent.
    pub readings: Vec<Reading>,
    /// What the sink did.
    pub put: PutReport,
    /// What the registry changed first.
    pub controls: ControlsUpdate,
    /// When the put finished.
    pub put_at: Instant,
}

/// The simulated city, sending its readings to a sink and taking its timings and repairs
/// from the registry.
pub struct SimDriver {
    sim: Simulator,
    initial: City,
    control: TimingControl,
    controls: Controls,
    registry: Arc<dyn Registry>,
    sink: Box<dyn ReadingSink>,
    record: Option<std::io::BufWriter<std::fs::File>>,
    /// The timings read last, kept until [`SimDriver::forget_timings`] when the driver reads
    /// them once ([`SimDriver::reading_timings_once`]).
    timings: Option<Vec<Intersection>>,
    timings_once: bool,
}

impl SimDriver {
    /// A simulator of `city` under `config`, sending to the Kinesis `sink`, under Webster
    /// control (what `traffic simulate` and `traffic aws-local` run).
    pub fn new(
        city: &City,
        config: SimConfig,
        sink: KinesisSink,
        registry: Arc<dyn Registry>,
        lamps: Arc<dyn LampStore>,
    ) -> anyhow::Result<Self> {
        Ok(Self::with_sink(
            city.clone(),
            Simulator::new(city, config)?,
            TimingControl::Webster,
            registry,
            Box::new(StreamReadings::new(sink, lamps)),
        ))
    }

    /// `sim` (of the city `initial`, whose timings fixed control keeps), sending to `sink`.
    pub fn with_sink(
        initial: City,
        sim: Simulator,
        control: TimingControl,
        registry: Arc<dyn Registry>,
        sink: Box<dyn ReadingSink>,
    ) -> Self {
        Self {
            controls: Controls::fixed(&initial),
            sim,
            initial,
            control,
            registry,
            sink,
            record: None,
            timings: None,
            timings_once: false,
        }
    }

    /// The same driver, reading the registry's timings once and again only after
    /// [`SimDriver::forget_timings`]: for a measured run, which forgets them after each merge
    /// run, when retimings land. The simulator is not the system (its reads are not counted),
    /// and re-reading a thousand intersections every simulated minute is what made the
    /// emulator slowest.
    pub fn reading_timings_once(mut self) -> Self {
        self.timings_once = true;
        self
    }

    /// Reads the registry's timings again at the next period (see
    /// [`SimDriver::reading_timings_once`]).
    pub fn forget_timings(&mut self) {
        self.timings = None;
    }

    /// Also appends every reading sent to `path` (JSON lines, as `traffic replay` reads).
    pub fn record_to(mut self, path: &Path) -> anyhow::Result<Self> {
        let f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("opening {}", path.display()))?;
        self.record = Some(std::io::BufWriter::new(f));
        Ok(self)
    }

    /// The simulator (to inspect it, or to break a lamp).
    pub fn simulator(&mut self) -> &mut Simulator {
        &mut self.sim
    }

    /// The controls in force.
    pub fn controls(&self) -> &Controls {
        &self.controls
    }

    /// Takes the timings in force and the repair orders into the controls for the next
    /// period: the city's own timings, under Webster control replaced by the registry's (a
    /// retiming by the merge, or an operator's edit), and the repairs (kept until a step
    /// carries them out). Returns what changed.
    pub async fn refresh_controls(&mut self) -> anyhow::Result<ControlsUpdate> {
        let mut update = ControlsUpdate::default();
        let mut next = Controls::fixed(&self.initial);
        if self.control == TimingControl::Webster {
            let xs = match self.timings.take() {
                Some(xs) => xs,
                None => self
                    .registry
                    .intersections()
                    .await
                    .map_err(|e: PortError| {
                        anyhow::Error::new(e).context("reading the timings in force")
                    })?,
            };
            if self.timings_once {
                self.timings = Some(xs.clone());
            }
            for x in xs {
                if self.controls.timings.get(&x.id) != Some(&x.phases) {
                    update.retimed.push(x.id.clone());
                }
                next.set_phases(x.id, x.phases);
            }
        }
        next.repairs = std::mem::take(&mut self.controls.repairs);
        let repairs = self.sink.repair_orders().await?;
        update.repaired = repairs.len();
        for (id, light) in repairs {
            next.repair(id, light);
        }
        self.controls = next;
        Ok(update)
    }

    /// One period: controls from the registry, a step of the simulator, its readings put.
    pub async fn step(&mut self) -> anyhow::Result<Step> {
        let controls = self.refresh_controls().await?;
        let readings = self.sim.step(&self.controls);
        let repairs: Vec<_> = self.controls.repairs.iter().cloned().collect();
        let period = Period {
            readings: &readings,
            sim: &self.sim,
            repairs: &repairs,
        };
        let put = self.sink.put(period).await?;
        self.controls.clear_repairs();
        if let Some(w) = self.record.as_mut() {
            for r in &readings {
                writeln!(w, "{}", r.to_json())?;
            }
            w.flush()?;
        }
        Ok(Step {
            readings,
            put,
            controls,
            put_at: Instant::now(),
        })
    }

    /// The simulator's clock, epoch ms.
    pub fn now_ms(&self) -> i64 {
        self.sim.now_ms()
    }
}
