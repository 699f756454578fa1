//! One way to stop everything that runs until told: a [`Stopper`] and the [`Stop`] receivers
//! it hands out (a watch channel). The local runner, the mappings, the merge timer and the
//! simulator loop all take a [`Stop`]; Ctrl-C and SIGTERM set it ([`Stopper::on_signals`]).

use tokio::sync::watch;

/// Sets the stop.
#[derive(Debug)]
pub struct Stopper(watch::Sender<bool>);

/// Tells whether (and waits until) the stop was set.
#[derive(Clone, Debug)]
pub struct Stop(watch::Receiver<bool>);

impl Stopper {
    /// A new stop, not set.
    pub fn new() -> (Self, Stop) {
        let (tx, rx) = watch::channel(false);
        (Self(tx), Stop(rx))
    }

    /// Sets the stop.
    pub fn stop(&self) {
        let _ = self.0.send(true);
    }

    /// A stop that Ctrl-C or SIGTERM sets.
    pub fn on_signals() -> Stop {
        let (stopper, stop) = Self::new();
        tokio::spawn(async move {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending::<()>().await } } => {}
            }
            stopper.stop();
            // Keep the sender alive so receivers see `true`, not a closed channel.
            std::future::pending::<()>().await;
        });
        stop
    }
}

impl Stop {
    /// A stop that is never set.
    pub fn never() -> Self {
        let (tx, rx) = watch::channel(false);
        std::mem::forget(tx);
        Self(rx)
    }

    /// Whether the stop was set (or its [`Stopper`] dropped).
    pub fn is_stopped(&self) -> bool {
        *self.0.borrow() || self.0.has_changed().is_err()
    }

    /// Waits until the stop is set (or its [`Stopper`] dropped).
    pub async fn wait(&mut self) {
        while !self.is_stopped() {
            if self.0.changed().await.is_err() {
                return;
            }
        }
    }

    /// Sleeps for `d`, unless the stop is set first: whether it slept all of `d`.
    pub async fn sleep(&mut self, d: std::time::Duration) -> bool {
        tokio::select! {
            _ = self.wait() => false,
            _ = tokio::time::sleep(d) => true,
        }
    }
}

impl From<watch::Receiver<bool>> for Stop {
    fn from(rx: watch::Receiver<bool>) -> Self {
        Self(rx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_stop_is_seen_by_every_receiver_and_a_dropped_stopper_stops_too() {
        let (stopper, mut a) = Stopper::new();
        let b = a.clone();
        assert!(!a.is_stopped());
        stopper.stop();
        a.wait().await;
        assert!(b.is_stopped());
        let (stopper, mut c) = Stopper::new();
        drop(stopper);
        c.wait().await;
        assert!(c.is_stopped());
        assert!(!Stop::never().is_stopped());
    }
}
