//! Debouncing raw input edges into the board's input edges.
//!
//! A contact that bounces produces a burst of raw edges. A change counts
//! once the contact has held its new state for the input's debounce time;
//! the edge is stamped with the time the contact first reached that state.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::broadcast;

use super::{BoardError, Contact, InputEdge, InputId, slot};

/// Edges buffered for a slow subscriber before it starts losing them.
const EDGE_BUFFER: usize = 1024;

/// One input's debouncer: pure, driven by the caller's clock.
#[derive(Debug, Clone)]
pub struct Debouncer {
    window: Duration,
    stable: Contact,
    pending: Option<(Contact, Instant)>,
}

impl Debouncer {
    /// A debouncer for a contact now `stable`, settling after `window`.
    pub fn new(stable: Contact, window: Duration) -> Self {
        Self {
            window,
            stable,
            pending: None,
        }
    }

    /// The debounced state.
    pub fn stable(&self) -> Contact {
        self.stable
    }

    /// A raw edge: the contact is `contact` from `at`.
    pub fn raw(&mut self, contact: Contact, at: Instant) {
        self.pending = match self.pending {
            _ if contact == self.stable => None,
            // Still the same change: keep its first timestamp.
            Some((pending, first)) if pending == contact => Some((pending, first)),
            _ => Some((contact, at)),
        };
    }

    /// When a pending change would settle.
    pub fn deadline(&self) -> Option<Instant> {
        self.pending.map(|(_, at)| at + self.window)
    }

    /// Settles a pending change that has held until `now`.
    pub fn settle(&mut self, now: Instant) -> Option<(Contact, Instant)> {
        let (contact, at) = self.pending?;
        if now < at + self.window {
            return None;
        }
        self.stable = contact;
        self.pending = None;
        Some((contact, at))
    }
}

/// A board's inputs: debounced state and the edge broadcast. Raw edges come
/// from the hardware (or the simulator) through [`InputBank::raw`].
pub struct InputBank {
    inputs: Mutex<Vec<Debouncer>>,
    edges: broadcast::Sender<InputEdge>,
}

impl InputBank {
    /// Inputs starting in `initial` states, with their debounce windows.
    pub fn new(initial: Vec<(Contact, Duration)>) -> Arc<Self> {
        Arc::new(Self {
            inputs: Mutex::new(
                initial
                    .into_iter()
                    .map(|(contact, window)| Debouncer::new(contact, window))
                    .collect(),
            ),
            edges: broadcast::channel(EDGE_BUFFER).0,
        })
    }

    /// Number of inputs.
    pub fn len(&self) -> usize {
        self.inputs.lock().unwrap().len()
    }

    /// Whether there are no inputs.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The debounced state of an input.
    pub fn read(&self, input: InputId) -> Result<Contact, BoardError> {
        let inputs = self.inputs.lock().unwrap();
        slot(input.0, inputs.len())
            .map(|i| inputs[i].stable())
            .ok_or(BoardError::NoSuchInput(input, inputs.len() as u8))
    }

    /// Debounced edges from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<InputEdge> {
        self.edges.subscribe()
    }

    /// A raw edge on `input`. It becomes an edge once it has held for the
    /// input's debounce time; that wait runs on the tokio runtime (outside
    /// one, or without a debounce time, the edge counts at once).
    pub fn raw(self: &Arc<Self>, input: InputId, contact: Contact) -> Result<(), BoardError> {
        let now = tokio::time::Instant::now().into_std();
        let deadline = {
            let mut inputs = self.inputs.lock().unwrap();
            let count = inputs.len() as u8;
            let i = slot(input.0, inputs.len()).ok_or(BoardError::NoSuchInput(input, count))?;
            inputs[i].raw(contact, now);
            inputs[i].deadline()
        };
        let Some(deadline) = deadline else {
            return Ok(());
        };
        if deadline <= now {
            self.settle(input, now);
            return Ok(());
        }
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                let bank = self.clone();
                runtime.spawn(async move {
                    tokio::time::sleep_until(deadline.into()).await;
                    bank.settle(input, tokio::time::Instant::now().into_std());
                });
            }
            Err(_) => self.settle(input, deadline),
        }
        Ok(())
    }

    fn settle(&self, input: InputId, now: Instant) {
        let settled = {
            let mut inputs = self.inputs.lock().unwrap();
            slot(input.0, inputs.len()).and_then(|i| inputs[i].settle(now))
        };
        if let Some((contact, at)) = settled {
            // No subscriber is fine: nobody is listening yet.
            let _ = self.edges.send(InputEdge { input, contact, at });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn a_bounce_counts_once_with_its_first_timestamp() {
        let t0 = Instant::now();
        let mut d = Debouncer::new(Contact::Open, 10 * MS);
        d.raw(Contact::Closed, t0);
        d.raw(Contact::Open, t0 + MS);
        d.raw(Contact::Closed, t0 + 2 * MS);
        assert_eq!(
            d.settle(t0 + 11 * MS),
            None,
            "the last raw edge restarted the wait"
        );
        assert_eq!(d.deadline(), Some(t0 + 12 * MS));
        assert_eq!(d.settle(t0 + 12 * MS), Some((Contact::Closed, t0 + 2 * MS)));
        assert_eq!(d.stable(), Contact::Closed);
    }

    #[test]
    fn a_blip_shorter_than_the_window_is_ignored() {
        let t0 = Instant::now();
        let mut d = Debouncer::new(Contact::Open, 10 * MS);
        d.raw(Contact::Closed, t0);
        d.raw(Contact::Open, t0 + 5 * MS);
        assert_eq!(d.deadline(), None);
        assert_eq!(d.settle(t0 + 20 * MS), None);
        assert_eq!(d.stable(), Contact::Open);
    }

    #[tokio::test(start_paused = true)]
    async fn the_bank_debounces_on_the_runtime_clock() {
        let bank = InputBank::new(vec![
            (Contact::Open, 20 * MS),
            (Contact::Open, Duration::ZERO),
        ]);
        let mut edges = bank.subscribe();
        let t0 = tokio::time::Instant::now().into_std();
        bank.raw(InputId(1), Contact::Closed).unwrap();
        tokio::time::advance(5 * MS).await;
        bank.raw(InputId(1), Contact::Open).unwrap();
        tokio::time::advance(5 * MS).await;
        bank.raw(InputId(1), Contact::Closed).unwrap();
        tokio::time::advance(19 * MS).await;
        assert!(edges.try_recv().is_err(), "not settled yet");
        assert_eq!(bank.read(InputId(1)), Ok(Contact::Open));
        tokio::time::advance(2 * MS).await;
        tokio::task::yield_now().await;
        let edge = edges.recv().await.unwrap();
        assert_eq!((edge.input, edge.contact), (InputId(1), Contact::Closed));
        assert_eq!(
            edge.at - t0,
            10 * MS,
            "stamped when the contact last closed"
        );
        assert_eq!(bank.read(InputId(1)), Ok(Contact::Closed));

        // Input 2 has no debounce: its edge is immediate.
        bank.raw(InputId(2), Contact::Closed).unwrap();
        assert_eq!(edges.try_recv().unwrap().input, InputId(2));
        assert_eq!(
            bank.raw(InputId(3), Contact::Closed),
            Err(BoardError::NoSuchInput(InputId(3), 2))
        );
    }
}
