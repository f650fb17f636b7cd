//! What every request needs to know about accounts without a database round trip: which are
//! administrators, which are disabled, and each one's weight in the server's slots. Loaded from
//! the store at start, changed with it, so a disabled account's tokens, keys and public functions
//! stop working at once.

use std::collections::HashMap;

use dashmap::{DashMap, DashSet};

use crate::store::{Store, StoreResult, User};

#[derive(Debug, Default)]
pub struct AccountState {
    admins: DashSet<String>,
    disabled: DashSet<String>,
    /// `[functions.account_weights]`: weights by e-mail address, as configured.
    configured_weights: HashMap<String, f64>,
    /// Weights by account id, for the accounts the configuration names.
    weights: DashMap<String, f64>,
}

impl AccountState {
    pub async fn load(store: &dyn Store, configured_weights: HashMap<String, f64>) -> StoreResult<Self> {
        let configured_weights =
            configured_weights.into_iter().map(|(email, weight)| (email.to_ascii_lowercase(), weight)).collect();
        let state = AccountState { configured_weights, ..AccountState::default() };
        for user in store.users().await? {
            state.record(&user);
        }
        Ok(state)
    }

    pub fn record(&self, user: &User) {
        if user.is_admin {
            self.admins.insert(user.id.clone());
        }
        self.set_disabled(&user.id, user.disabled_at.is_some());
        if let Some(weight) = self.configured_weights.get(&user.email.to_ascii_lowercase()) {
            self.weights.insert(user.id.clone(), *weight);
        }
    }

    /// The account's weight in the server's slots (1 unless configured).
    pub fn weight(&self, user_id: &str) -> f64 {
        self.weights.get(user_id).map_or(1.0, |weight| *weight)
    }

    pub fn set_disabled(&self, user_id: &str, disabled: bool) {
        if disabled {
            self.disabled.insert(user_id.to_string());
        } else {
            self.disabled.remove(user_id);
        }
    }

    pub fn is_admin(&self, user_id: &str) -> bool {
        self.admins.contains(user_id)
    }

    pub fn is_disabled(&self, user_id: &str) -> bool {
        self.disabled.contains(user_id)
    }
}
