//! The circuit breaker around store writes: a pure state machine ([`Machine`]) and a small shared
//! driver ([`Breaker`]) that every kind's batcher asks before writing.
//!
//! Closed: writes go through. After `failures` consecutive transient failures it opens: nothing
//! is written for `cooldown`, batches wait in their kind's buffer. Then it is half-open: one probe
//! write is let through; success closes it, failure opens it again.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::mirror::health::{BreakerHealth, BreakerState, MirrorHealth};
use crate::mirror::metrics::MirrorMetrics;
use crate::store::StoreError;

/// What a caller may do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permit {
    /// Closed: write.
    Write,
    /// Half-open: this caller's write is the probe; report its outcome.
    Probe,
    /// Do not write; ask again at this instant (or when the state changes).
    Wait(Instant),
}

/// How a write ended, as far as the breaker cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The store answered (including refusing single objects).
    Success,
    /// The store could not be reached or failed transiently.
    TransientFailure,
}

/// The breaker's state machine; time is passed in.
#[derive(Debug, Clone)]
pub struct Machine {
    state: BreakerState,
    consecutive_failures: u32,
    opened_at: Option<Instant>,
    /// When the current probe was handed out, while one is in flight.
    probe_since: Option<Instant>,
    threshold: u32,
    cooldown: Duration,
}

impl Machine {
    pub fn new(threshold: u32, cooldown: Duration) -> Self {
        Self {
            state: BreakerState::Closed,
            consecutive_failures: 0,
            opened_at: None,
            probe_since: None,
            threshold: threshold.max(1),
            cooldown,
        }
    }

    pub fn state(&self) -> BreakerState {
        self.state
    }

    pub fn consecutive_failures(&self) -> u32 {
        self.consecutive_failures
    }

    /// Whether a write may start now. Hands out at most one probe at a time while half-open; a
    /// probe whose outcome never came back (its task was stopped) expires after `cooldown`.
    pub fn permit(&mut self, now: Instant) -> Permit {
        match self.state {
            BreakerState::Closed => Permit::Write,
            BreakerState::Open => {
                let until = self.opened_at.map_or(now, |at| at + self.cooldown);
                if now >= until {
                    self.state = BreakerState::HalfOpen;
                    self.probe_since = Some(now);
                    Permit::Probe
                } else {
                    Permit::Wait(until)
                }
            }
            BreakerState::HalfOpen => match self.probe_since {
                Some(since) if now < since + self.cooldown => Permit::Wait(since + self.cooldown),
                _ => {
                    self.probe_since = Some(now);
                    Permit::Probe
                }
            },
        }
    }

    /// Records how a write ended.
    pub fn record(&mut self, now: Instant, outcome: Outcome) {
        match outcome {
            Outcome::Success => {
                self.state = BreakerState::Closed;
                self.consecutive_failures = 0;
                self.opened_at = None;
                self.probe_since = None;
            }
            Outcome::TransientFailure => {
                self.consecutive_failures = self.consecutive_failures.saturating_add(1);
                let trips = self.state == BreakerState::HalfOpen
                    || self.consecutive_failures >= self.threshold;
                if trips {
                    self.state = BreakerState::Open;
                    self.opened_at = Some(now);
                    self.probe_since = None;
                }
            }
        }
    }
}

/// The shared breaker: the machine, the count of buffered operations across kinds, and
/// publication to health and metrics. Cheap to clone.
#[derive(Clone)]
pub struct Breaker {
    inner: Arc<Inner>,
}

struct Inner {
    machine: Mutex<Machine>,
    last_error: Mutex<Option<String>>,
    buffered: AtomicUsize,
    limit: usize,
    changed: watch::Sender<u64>,
    health: MirrorHealth,
    metrics: MirrorMetrics,
}

impl Breaker {
    pub fn new(
        config: &crate::config::BreakerConfig,
        health: MirrorHealth,
        metrics: MirrorMetrics,
    ) -> Self {
        let breaker = Self {
            inner: Arc::new(Inner {
                machine: Mutex::new(Machine::new(config.failures, config.cooldown)),
                last_error: Mutex::new(None),
                buffered: AtomicUsize::new(0),
                limit: config.buffer,
                changed: watch::Sender::new(0),
                health,
                metrics,
            }),
        };
        breaker.publish();
        breaker
    }

    /// Whether a write may start now (see [`Machine::permit`]).
    pub fn permit(&self) -> Permit {
        let (permit, changed) = {
            let mut machine = self.inner.machine.lock();
            let before = machine.state();
            let permit = machine.permit(Instant::now());
            (permit, before != machine.state())
        };
        if changed {
            self.publish();
        }
        permit
    }

    /// Records a write's result; transient errors count towards opening.
    pub fn record(&self, result: Result<(), &StoreError>) {
        let outcome = match result {
            Err(err) if err.is_transient() => {
                *self.inner.last_error.lock() = Some(crate::report::chain(err));
                Outcome::TransientFailure
            }
            _ => Outcome::Success,
        };
        let changed = {
            let mut machine = self.inner.machine.lock();
            let before = (machine.state(), machine.consecutive_failures());
            machine.record(Instant::now(), outcome);
            before != (machine.state(), machine.consecutive_failures())
        };
        if outcome == Outcome::Success && changed {
            *self.inner.last_error.lock() = None;
        }
        if changed || outcome == Outcome::TransientFailure {
            self.publish();
        }
    }

    pub fn state(&self) -> BreakerState {
        self.inner.machine.lock().state()
    }

    /// Completes on the next state change.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.inner.changed.subscribe()
    }

    /// Adds `ops` buffered operations; `false` when the buffer limit is exceeded while the
    /// breaker is not closed (the caller then drops its buffer with [`Breaker::release`]). While
    /// closed, batches are written at once, so kinds sealing at the same moment never overflow.
    pub fn hold(&self, ops: usize) -> bool {
        let total = self.inner.buffered.fetch_add(ops, Ordering::SeqCst) + ops;
        self.publish_buffered();
        total <= self.inner.limit || self.state() == BreakerState::Closed
    }

    /// Removes `ops` buffered operations (written or dropped).
    pub fn release(&self, ops: usize) {
        let _ = self
            .inner
            .buffered
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |b| {
                Some(b.saturating_sub(ops))
            });
        self.publish_buffered();
    }

    fn publish_buffered(&self) {
        let buffered = self.inner.buffered.load(Ordering::SeqCst);
        let mut health = self.inner.health.breaker();
        if health.buffered != buffered {
            health.buffered = buffered;
            self.inner.health.set_breaker(health);
        }
    }

    fn publish(&self) {
        let (state, consecutive_failures) = {
            let machine = self.inner.machine.lock();
            (machine.state(), machine.consecutive_failures())
        };
        self.inner.health.set_breaker(BreakerHealth {
            state,
            consecutive_failures,
            last_error: self.inner.last_error.lock().clone(),
            buffered: self.inner.buffered.load(Ordering::SeqCst),
        });
        self.inner.metrics.breaker_state.set(state.as_gauge());
        self.inner.changed.send_modify(|v| *v = v.wrapping_add(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use BreakerState::{Closed, HalfOpen, Open};
    use Outcome::{Success, TransientFailure as Fail};

    /// What a permit request should answer, ignoring the instant of a `Wait`.
    #[derive(Debug, PartialEq)]
    enum Want {
        Write,
        Probe,
        Wait,
    }

    /// One step of a scenario, `at` milliseconds after its start.
    enum Step {
        Ask(u64, Want),
        Record(u64, Outcome, BreakerState),
    }

    /// Runs a scenario against a breaker with threshold 3 and a 100 ms cooldown.
    fn run(steps: &[Step]) {
        let start = Instant::now();
        let ms = |m: u64| start + Duration::from_millis(m);
        let mut machine = Machine::new(3, Duration::from_millis(100));
        for (index, step) in steps.iter().enumerate() {
            match step {
                Step::Ask(at, want) => {
                    let got = match machine.permit(ms(*at)) {
                        Permit::Write => Want::Write,
                        Permit::Probe => Want::Probe,
                        Permit::Wait(_) => Want::Wait,
                    };
                    assert_eq!(&got, want, "step {index}");
                }
                Step::Record(at, outcome, state) => {
                    machine.record(ms(*at), *outcome);
                    assert_eq!(machine.state(), *state, "step {index}");
                }
            }
        }
    }

    #[test]
    fn closed_breaker_lets_writes_through_and_forgets_isolated_failures() {
        run(&[
            Step::Ask(0, Want::Write),
            Step::Record(0, Fail, Closed),
            Step::Record(1, Fail, Closed),
            Step::Record(2, Success, Closed),
            Step::Record(3, Fail, Closed),
            Step::Record(4, Fail, Closed),
            Step::Ask(5, Want::Write),
        ]);
    }

    #[test]
    fn opens_after_consecutive_failures_then_probes_after_cooldown() {
        run(&[
            Step::Record(0, Fail, Closed),
            Step::Record(1, Fail, Closed),
            Step::Record(10, Fail, Open),
            Step::Ask(50, Want::Wait),
            Step::Ask(110, Want::Probe),
            Step::Ask(111, Want::Wait),
            Step::Record(120, Success, Closed),
            Step::Ask(121, Want::Write),
        ]);
    }

    #[test]
    fn a_failed_probe_opens_again() {
        run(&[
            Step::Record(0, Fail, Closed),
            Step::Record(0, Fail, Closed),
            Step::Record(0, Fail, Open),
            Step::Ask(100, Want::Probe),
            Step::Record(105, Fail, Open),
            Step::Ask(150, Want::Wait),
            Step::Ask(205, Want::Probe),
            Step::Record(206, Success, Closed),
        ]);
    }

    #[test]
    fn a_lost_probe_expires_after_cooldown() {
        run(&[
            Step::Record(0, Fail, Closed),
            Step::Record(0, Fail, Closed),
            Step::Record(0, Fail, Open),
            Step::Ask(100, Want::Probe),
            Step::Ask(150, Want::Wait),
            Step::Ask(200, Want::Probe),
        ]);
    }

    #[test]
    fn wait_says_when_to_ask_again() {
        let start = Instant::now();
        let at = |m: u64| start + Duration::from_millis(m);
        let mut machine = Machine::new(1, Duration::from_millis(100));
        machine.record(start, Fail);
        assert_eq!(machine.state(), Open);
        assert_eq!(machine.permit(at(30)), Permit::Wait(at(100)));
        assert_eq!(machine.permit(at(100)), Permit::Probe);
        assert_eq!(machine.state(), HalfOpen);
        assert_eq!(machine.permit(at(120)), Permit::Wait(at(200)));
    }

    #[test]
    fn the_buffer_limit_applies_while_the_breaker_is_not_closed()
    -> Result<(), crate::metrics::MetricsError> {
        let config = crate::config::BreakerConfig {
            failures: 1,
            cooldown: Duration::from_secs(60),
            buffer: 10,
        };
        let health = MirrorHealth::new("memory");
        let breaker = Breaker::new(&config, health.clone(), MirrorMetrics::unregistered()?);
        assert!(breaker.hold(8));
        assert!(breaker.hold(8), "closed: batches are written at once");
        breaker.release(16);
        let down = StoreError::Unavailable {
            message: "down".into(),
            source: None,
        };
        breaker.record(Err(&down));
        assert_eq!(health.breaker().state, Open);
        assert_eq!(
            health.breaker().last_error.as_deref(),
            Some("store backend unavailable: down")
        );
        assert!(breaker.hold(8));
        assert!(!breaker.hold(8), "open: the limit holds");
        assert_eq!(health.breaker().buffered, 16);
        breaker.release(16);
        assert_eq!(health.breaker().buffered, 0);
        Ok(())
    }
}
