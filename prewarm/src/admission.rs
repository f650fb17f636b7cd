//! Admission: the global concurrency cap, each function's cap, and bounded per-function queues.
//!
//! # Fairness policy
//! Slots are not handed out first-come-first-served across functions. When a slot frees up, it goes
//! to the waiting function that currently runs the fewest invocations (ties: the function whose
//! oldest waiter arrived first); within a function, waiters are served in arrival order. So a
//! function flooding the server holds at most the slots nobody else is waiting for: as soon as one
//! of its invocations ends, a waiting function with fewer running invocations gets the slot, and
//! the split converges to an even share of the global cap among the busy functions.
//!
//! A new arrival never overtakes waiters: it takes a slot at once only if its function has no
//! waiters and both caps have room (which means nobody else could use that slot either, since
//! slots are always handed to eligible waiters the moment they free up).
//!
//! # Rejections
//! The queue of each function is bounded in length ([`Rejection::QueueFull`], answered at once) and
//! in time ([`Rejection::WaitExceeded`], answered when the maximum wait has passed).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::oneshot;

/// Why an invocation was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    QueueFull,
    WaitExceeded,
}

/// The per-function settings admission needs.
#[derive(Debug, Clone, Copy)]
pub struct AdmissionLimits {
    pub max_concurrency: usize,
    pub max_queue_length: usize,
    pub max_queue_wait: Duration,
}

#[derive(Debug)]
pub struct Admission {
    global_cap: usize,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    global_in_flight: usize,
    functions: HashMap<Arc<str>, FunctionState>,
    next_ticket: u64,
}

#[derive(Debug, Default)]
struct FunctionState {
    in_flight: usize,
    waiters: VecDeque<Waiter>,
}

#[derive(Debug)]
struct Waiter {
    ticket: u64,
    cap: usize,
    grant: oneshot::Sender<Permit>,
}

/// A held slot; dropping it frees the slot and hands it to the next waiter.
#[derive(Debug)]
pub struct Permit {
    admission: Arc<Admission>,
    function: Arc<str>,
    armed: bool,
}

impl Drop for Permit {
    fn drop(&mut self) {
        if self.armed {
            self.admission.release(&self.function);
        }
    }
}

/// Counts for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AdmissionSnapshot {
    pub in_flight: usize,
    pub queued: usize,
}

impl Admission {
    pub fn new(global_cap: usize) -> Arc<Self> {
        Arc::new(Self { global_cap: global_cap.max(1), state: Mutex::new(State::default()) })
    }

    pub fn global_cap(&self) -> usize {
        self.global_cap
    }

    /// Waits for a slot for `function`, within its limits.
    pub async fn acquire(self: &Arc<Self>, function: &Arc<str>, limits: AdmissionLimits) -> Result<Permit, Rejection> {
        let (ticket, granted) = {
            let mut state = self.state.lock().expect("admission lock poisoned");
            let global_free = state.global_in_flight < self.global_cap;
            let entry = state.functions.entry(function.clone()).or_default();
            if global_free && entry.in_flight < limits.max_concurrency.max(1) && entry.waiters.is_empty() {
                entry.in_flight += 1;
                state.global_in_flight += 1;
                return Ok(self.permit(function));
            }
            if entry.waiters.len() >= limits.max_queue_length {
                return Err(Rejection::QueueFull);
            }
            let (grant, granted) = oneshot::channel();
            let ticket = state.next_ticket;
            state.next_ticket += 1;
            let entry = state.functions.get_mut(function).expect("inserted above");
            entry.waiters.push_back(Waiter { ticket, cap: limits.max_concurrency.max(1), grant });
            (ticket, granted)
        };
        let mut granted = granted;
        match tokio::time::timeout(limits.max_queue_wait, &mut granted).await {
            Ok(Ok(permit)) => Ok(permit),
            Ok(Err(_)) => Err(Rejection::WaitExceeded),
            Err(_elapsed) => {
                let mut state = self.state.lock().expect("admission lock poisoned");
                if let Some(entry) = state.functions.get_mut(function) {
                    entry.waiters.retain(|waiter| waiter.ticket != ticket);
                    if entry.in_flight == 0 && entry.waiters.is_empty() {
                        state.functions.remove(function);
                    }
                }
                drop(state);
                // The slot may have been granted between the timer firing and the lock: use it.
                granted.try_recv().map_err(|_| Rejection::WaitExceeded)
            }
        }
    }

    fn permit(self: &Arc<Self>, function: &Arc<str>) -> Permit {
        Permit { admission: self.clone(), function: function.clone(), armed: true }
    }

    fn release(self: &Arc<Self>, function: &Arc<str>) {
        let mut state = self.state.lock().expect("admission lock poisoned");
        state.global_in_flight -= 1;
        if let Some(entry) = state.functions.get_mut(function) {
            entry.in_flight -= 1;
        }
        self.dispatch(&mut state);
        state.functions.retain(|_, entry| entry.in_flight > 0 || !entry.waiters.is_empty());
    }

    /// Hands free slots to eligible waiters, fewest-running function first.
    fn dispatch(self: &Arc<Self>, state: &mut State) {
        while state.global_in_flight < self.global_cap {
            let chosen = state
                .functions
                .iter()
                .filter_map(|(name, entry)| {
                    let front = entry.waiters.front()?;
                    (entry.in_flight < front.cap).then(|| (entry.in_flight, front.ticket, name.clone()))
                })
                .min_by_key(|(in_flight, ticket, _)| (*in_flight, *ticket));
            let Some((_, _, name)) = chosen else { return };
            let entry = state.functions.get_mut(&name).expect("chosen from the map");
            let waiter = entry.waiters.pop_front().expect("chosen for its front waiter");
            entry.in_flight += 1;
            state.global_in_flight += 1;
            if let Err(mut unclaimed) = waiter.grant.send(self.permit(&name)) {
                // The waiter gave up in the meantime: undo here, we already hold the lock.
                unclaimed.armed = false;
                entry.in_flight -= 1;
                state.global_in_flight -= 1;
            }
        }
    }

    /// Running and queued invocations of one function.
    pub fn snapshot(&self, function: &str) -> AdmissionSnapshot {
        let state = self.state.lock().expect("admission lock poisoned");
        state.functions.get(function).map_or_else(AdmissionSnapshot::default, |entry| AdmissionSnapshot {
            in_flight: entry.in_flight,
            queued: entry.waiters.len(),
        })
    }

    /// Running and queued invocations across all functions.
    pub fn totals(&self) -> AdmissionSnapshot {
        let state = self.state.lock().expect("admission lock poisoned");
        AdmissionSnapshot {
            in_flight: state.global_in_flight,
            queued: state.functions.values().map(|entry| entry.waiters.len()).sum(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(max_concurrency: usize, max_queue_length: usize, wait_ms: u64) -> AdmissionLimits {
        AdmissionLimits { max_concurrency, max_queue_length, max_queue_wait: Duration::from_millis(wait_ms) }
    }

    #[tokio::test]
    async fn per_function_cap_queues_then_rejects_when_the_queue_is_full() {
        let admission = Admission::new(10);
        let name: Arc<str> = "a".into();
        let first = admission.acquire(&name, limits(1, 1, 5_000)).await.unwrap();
        let admission2 = admission.clone();
        let name2 = name.clone();
        let queued = tokio::spawn(async move { admission2.acquire(&name2, limits(1, 1, 5_000)).await.map(|_| ()) });
        tokio::task::yield_now().await;
        while admission.snapshot("a").queued == 0 {
            tokio::task::yield_now().await;
        }
        assert_eq!(admission.acquire(&name, limits(1, 1, 5_000)).await.unwrap_err(), Rejection::QueueFull);
        drop(first);
        queued.await.unwrap().unwrap();
        assert_eq!(admission.totals(), AdmissionSnapshot { in_flight: 0, queued: 0 });
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiter_past_its_maximum_wait_is_rejected_and_leaves_the_queue() {
        let admission = Admission::new(1);
        let a: Arc<str> = "a".into();
        let _held = admission.acquire(&a, limits(5, 5, 100)).await.unwrap();
        let rejected = admission.acquire(&a, limits(5, 5, 100)).await.unwrap_err();
        assert_eq!(rejected, Rejection::WaitExceeded);
        assert_eq!(admission.snapshot("a"), AdmissionSnapshot { in_flight: 1, queued: 0 });
    }

    #[tokio::test]
    async fn a_freed_slot_goes_to_the_function_running_the_fewest() {
        let admission = Admission::new(2);
        let (busy, quiet): (Arc<str>, Arc<str>) = ("busy".into(), "quiet".into());
        let wide = limits(10, 100, 10_000);
        let held_one = admission.acquire(&busy, wide).await.unwrap();
        let _held_two = admission.acquire(&busy, wide).await.unwrap();
        // The busy function queues first, then the quiet one.
        let (order_tx, mut order_rx) = tokio::sync::mpsc::unbounded_channel();
        for (index, name) in [busy.clone(), busy.clone(), quiet.clone()].into_iter().enumerate() {
            let (task_admission, order_tx) = (admission.clone(), order_tx.clone());
            tokio::spawn(async move {
                let permit = task_admission.acquire(&name, wide).await.unwrap();
                order_tx.send(name.to_string()).unwrap();
                tokio::time::sleep(Duration::from_secs(3600)).await;
                drop(permit);
            });
            while admission.totals().queued < index + 1 {
                tokio::task::yield_now().await;
            }
        }
        drop(held_one);
        assert_eq!(order_rx.recv().await.unwrap(), "quiet", "the quiet function overtakes the busy one's queue");
    }
}
