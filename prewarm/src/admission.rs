//! Admission: the global concurrency cap, each account's share of it, each function's cap, and
//! bounded per-function queues.
//!
//! # Fairness policy
//! Slots are not handed out first-come-first-served. An account (the tenant owning a function)
//! may hold at most its share of the server-wide slots (`[functions] max_account_share` of the
//! cap, 80 % by default, times the account's weight, at least one slot and at most the cap): the
//! rest are always free for other accounts, so a tenant flooding the server with slow calls
//! cannot make another tenant's call wait for one of them to end. When a slot frees up, it goes to
//! the account running the fewest invocations for its weight among those with an eligible waiter,
//! then within it to the function running the fewest (ties: the oldest waiter); within a
//! function, waiters are served in arrival order. So the busy accounts converge to shares of what
//! they use in proportion to their weights.
//!
//! A new arrival never overtakes waiters: it takes a slot at once only if its function has no
//! waiters and every cap (global, account, function) has room.
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
    account_share: f64,
    state: Mutex<State>,
}

/// The account a function belongs to, and its weight.
#[derive(Debug, Clone)]
pub struct Account {
    pub id: Arc<str>,
    pub weight: f64,
}

#[derive(Debug, Default)]
struct State {
    global_in_flight: usize,
    /// Invocations running per account (absent: none).
    accounts: HashMap<Arc<str>, usize>,
    functions: HashMap<Arc<str>, FunctionState>,
    next_ticket: u64,
}

#[derive(Debug)]
struct FunctionState {
    account: Arc<str>,
    /// The most slots its account may hold, and its weight (the account's, kept per function:
    /// every function of one account carries the same).
    account_cap: usize,
    weight: f64,
    in_flight: usize,
    waiters: VecDeque<Waiter>,
}

impl State {
    fn account_in_flight(&self, account: &str) -> usize {
        self.accounts.get(account).copied().unwrap_or(0)
    }

    fn take_slot(&mut self, function: &Arc<str>) {
        let entry = self.functions.get_mut(function).expect("a function takes a slot through its entry");
        entry.in_flight += 1;
        let account = entry.account.clone();
        *self.accounts.entry(account).or_default() += 1;
        self.global_in_flight += 1;
    }

    fn give_slot_back(&mut self, function: &Arc<str>) {
        self.global_in_flight -= 1;
        if let Some(entry) = self.functions.get_mut(function) {
            entry.in_flight -= 1;
            let account = entry.account.clone();
            if let Some(running) = self.accounts.get_mut(&account) {
                *running -= 1;
                if *running == 0 {
                    self.accounts.remove(&account);
                }
            }
        }
    }
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
    /// `account_share`: the fraction of `global_cap` one account of weight 1 may hold (at least
    /// one slot).
    pub fn new(global_cap: usize, account_share: f64) -> Arc<Self> {
        Arc::new(Self { global_cap: global_cap.max(1), account_share, state: Mutex::new(State::default()) })
    }

    pub fn global_cap(&self) -> usize {
        self.global_cap
    }

    /// The most slots an account of this weight may hold at once.
    pub fn account_cap(&self, weight: f64) -> usize {
        ((self.global_cap as f64 * self.account_share * weight).floor() as usize).clamp(1, self.global_cap)
    }

    /// Waits for a slot for `function` (of `account`), within its limits.
    pub async fn acquire(
        self: &Arc<Self>,
        function: &Arc<str>,
        account: &Account,
        limits: AdmissionLimits,
    ) -> Result<Permit, Rejection> {
        let (ticket, granted) = {
            let mut state = self.state.lock().expect("admission lock poisoned");
            let account_cap = self.account_cap(account.weight);
            let free = state.global_in_flight < self.global_cap && state.account_in_flight(&account.id) < account_cap;
            let entry = state.functions.entry(function.clone()).or_insert_with(|| FunctionState {
                account: account.id.clone(),
                account_cap,
                weight: account.weight,
                in_flight: 0,
                waiters: VecDeque::new(),
            });
            if free && entry.in_flight < limits.max_concurrency.max(1) && entry.waiters.is_empty() {
                state.take_slot(function);
                return Ok(self.permit(function));
            }
            if entry.waiters.len() >= limits.max_queue_length {
                if entry.in_flight == 0 && entry.waiters.is_empty() {
                    state.functions.remove(function);
                }
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
        state.give_slot_back(function);
        self.dispatch(&mut state);
        state.functions.retain(|_, entry| entry.in_flight > 0 || !entry.waiters.is_empty());
    }

    /// Hands free slots to eligible waiters: the account running the fewest for its weight
    /// first, then its function running the fewest, then the oldest waiter.
    fn dispatch(self: &Arc<Self>, state: &mut State) {
        while state.global_in_flight < self.global_cap {
            let chosen = state
                .functions
                .iter()
                .filter_map(|(name, entry)| {
                    let front = entry.waiters.front()?;
                    let account_running = state.account_in_flight(&entry.account);
                    (entry.in_flight < front.cap && account_running < entry.account_cap)
                        .then(|| ((account_running as f64 / entry.weight, entry.in_flight, front.ticket), name.clone()))
                })
                .min_by(|(a, _), (b, _)| a.partial_cmp(b).expect("weights are finite and above 0"));
            let Some((_, name)) = chosen else { return };
            let waiter = state
                .functions
                .get_mut(&name)
                .and_then(|entry| entry.waiters.pop_front())
                .expect("chosen for its front waiter");
            state.take_slot(&name);
            if let Err(mut unclaimed) = waiter.grant.send(self.permit(&name)) {
                // The waiter gave up in the meantime: undo here, we already hold the lock.
                unclaimed.armed = false;
                state.give_slot_back(&name);
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

    fn account() -> Account {
        named("usr_one", 1.0)
    }

    fn named(id: &str, weight: f64) -> Account {
        Account { id: id.into(), weight }
    }

    /// Queues one waiter per `(function, account)`, in this order (each is queued before the
    /// next asks); the receiver gets each function's name as its waiter is granted a slot.
    async fn queue_in_order(
        admission: &Arc<Admission>,
        waiters: Vec<(Arc<str>, Account)>,
        limits: AdmissionLimits,
    ) -> tokio::sync::mpsc::UnboundedReceiver<String> {
        let (order_tx, order_rx) = tokio::sync::mpsc::unbounded_channel();
        let queued_before = admission.totals().queued;
        for (index, (name, account)) in waiters.into_iter().enumerate() {
            let (task_admission, order_tx) = (admission.clone(), order_tx.clone());
            tokio::spawn(async move {
                let permit = task_admission.acquire(&name, &account, limits).await.unwrap();
                order_tx.send(name.to_string()).unwrap();
                tokio::time::sleep(Duration::from_secs(3600)).await;
                drop(permit);
            });
            while admission.totals().queued < queued_before + index + 1 {
                tokio::task::yield_now().await;
            }
        }
        order_rx
    }

    fn limits(max_concurrency: usize, max_queue_length: usize, wait_ms: u64) -> AdmissionLimits {
        AdmissionLimits { max_concurrency, max_queue_length, max_queue_wait: Duration::from_millis(wait_ms) }
    }

    #[tokio::test]
    async fn per_function_cap_queues_then_rejects_when_the_queue_is_full() {
        let admission = Admission::new(10, 1.0);
        let name: Arc<str> = "a".into();
        let first = admission.acquire(&name, &account(), limits(1, 1, 5_000)).await.unwrap();
        let admission2 = admission.clone();
        let name2 = name.clone();
        let queued =
            tokio::spawn(async move { admission2.acquire(&name2, &account(), limits(1, 1, 5_000)).await.map(|_| ()) });
        tokio::task::yield_now().await;
        while admission.snapshot("a").queued == 0 {
            tokio::task::yield_now().await;
        }
        assert_eq!(admission.acquire(&name, &account(), limits(1, 1, 5_000)).await.unwrap_err(), Rejection::QueueFull);
        drop(first);
        queued.await.unwrap().unwrap();
        assert_eq!(admission.totals(), AdmissionSnapshot { in_flight: 0, queued: 0 });
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiter_past_its_maximum_wait_is_rejected_and_leaves_the_queue() {
        let admission = Admission::new(1, 1.0);
        let a: Arc<str> = "a".into();
        let _held = admission.acquire(&a, &account(), limits(5, 5, 100)).await.unwrap();
        let rejected = admission.acquire(&a, &account(), limits(5, 5, 100)).await.unwrap_err();
        assert_eq!(rejected, Rejection::WaitExceeded);
        assert_eq!(admission.snapshot("a"), AdmissionSnapshot { in_flight: 1, queued: 0 });
    }

    #[tokio::test]
    async fn a_freed_slot_goes_to_the_function_running_the_fewest() {
        let admission = Admission::new(2, 1.0);
        let (busy, quiet): (Arc<str>, Arc<str>) = ("busy".into(), "quiet".into());
        let wide = limits(10, 100, 10_000);
        let held_one = admission.acquire(&busy, &account(), wide).await.unwrap();
        let _held_two = admission.acquire(&busy, &account(), wide).await.unwrap();
        // The busy function queues first, then the quiet one.
        let waiters = vec![(busy.clone(), account()), (busy.clone(), account()), (quiet.clone(), account())];
        let mut order_rx = queue_in_order(&admission, waiters, wide).await;
        drop(held_one);
        assert_eq!(order_rx.recv().await.unwrap(), "quiet", "the quiet function overtakes the busy one's queue");
    }

    #[tokio::test]
    async fn an_account_holds_at_most_its_share_and_the_rest_stays_free_for_others() {
        // Ten slots, 80 % for one account: a flood of one account's calls gets eight.
        let admission = Admission::new(10, 0.8);
        assert_eq!(admission.account_cap(1.0), 8);
        let (flood, steady): (Arc<str>, Arc<str>) = ("flood".into(), "steady".into());
        let (mallory, ada) = (named("usr_mallory", 1.0), named("usr_ada", 1.0));
        let wide = limits(100, 100, 60_000);
        let mut held = Vec::new();
        for _ in 0..8 {
            held.push(admission.acquire(&flood, &mallory, wide).await.unwrap());
        }
        // Mallory's other function waits too: the share is the account's, not the function's.
        let other: Arc<str> = "flood-two".into();
        let waiting = {
            let admission = admission.clone();
            let (other, mallory) = (other.clone(), mallory.clone());
            tokio::spawn(async move { admission.acquire(&other, &mallory, wide).await.map(drop) })
        };
        while admission.totals().queued == 0 {
            tokio::task::yield_now().await;
        }
        // Ada's call takes a free slot at once.
        let ada_call = tokio::time::timeout(Duration::from_millis(100), admission.acquire(&steady, &ada, wide));
        let ada_permit = ada_call.await.expect("not queued behind the flood").unwrap();
        assert_eq!(admission.totals(), AdmissionSnapshot { in_flight: 9, queued: 1 });
        drop(ada_permit);
        // A slot Mallory frees goes to Mallory's waiter (nobody else waits).
        held.pop();
        waiting.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn a_freed_slot_goes_to_the_account_running_the_fewest() {
        let admission = Admission::new(4, 1.0);
        let wide = limits(10, 100, 10_000);
        let (mallory, ada) = (named("usr_mallory", 1.0), named("usr_ada", 1.0));
        let (m1, m2, a1): (Arc<str>, Arc<str>, Arc<str>) = ("m1".into(), "m2".into(), "a1".into());
        let first = admission.acquire(&m1, &mallory, wide).await.unwrap();
        let _second = admission.acquire(&m1, &mallory, wide).await.unwrap();
        let _third = admission.acquire(&m1, &mallory, wide).await.unwrap();
        let _ada = admission.acquire(&a1, &ada, wide).await.unwrap();
        // Mallory's second function runs nothing yet, but Mallory runs two once a slot frees,
        // Ada one.
        let mut order_rx = queue_in_order(&admission, vec![(m2, mallory), (a1.clone(), ada)], wide).await;
        drop(first);
        assert_eq!(order_rx.recv().await.unwrap(), "a1", "Ada runs fewer: her waiter goes first");
    }

    #[tokio::test]
    async fn weights_scale_an_accounts_share_and_its_turn() {
        let admission = Admission::new(10, 0.5);
        let (heavy, light) = (named("usr_heavy", 2.0), named("usr_light", 1.0));
        assert_eq!((admission.account_cap(2.0), admission.account_cap(1.0), admission.account_cap(0.01)), (10, 5, 1));
        let wide = limits(100, 100, 10_000);
        let (h, l): (Arc<str>, Arc<str>) = ("h".into(), "l".into());
        let mut held = Vec::new();
        for _ in 0..4 {
            held.push(admission.acquire(&h, &heavy, wide).await.unwrap());
        }
        for _ in 0..3 {
            held.push(admission.acquire(&l, &light, wide).await.unwrap());
        }
        for _ in 0..3 {
            held.push(admission.acquire(&h, &heavy, wide).await.unwrap());
        }
        // Full: heavy runs 7 (3.5 for its weight), light 3. One waiter each.
        let mut order_rx = queue_in_order(&admission, vec![(l.clone(), light), (h.clone(), heavy)], wide).await;
        // One of heavy's ends: heavy runs 6 (3 for its weight), light 3: a tie, light's function
        // runs fewer; then heavy's ends again: 5 (2.5) against light's 4.
        held.pop();
        assert_eq!(order_rx.recv().await.unwrap(), "l");
        held.pop();
        assert_eq!(order_rx.recv().await.unwrap(), "h", "light now runs 4, heavy 2.5 for its weight");
    }
}
