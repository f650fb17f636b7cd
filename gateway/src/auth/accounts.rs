//! What every request needs to know about accounts without a database round trip: which are
//! administrators and which are disabled. Loaded from the store at start, changed with it, so a
//! disabled account's tokens, keys and public functions stop working at once.

use dashmap::DashSet;

use crate::store::{Store, StoreResult};

#[derive(Debug, Default)]
pub struct AccountState {
    admins: DashSet<String>,
    disabled: DashSet<String>,
}

impl AccountState {
    pub async fn load(store: &dyn Store) -> StoreResult<Self> {
        let state = AccountState::default();
        for user in store.users().await? {
            state.record(&user.id, user.is_admin, user.disabled_at.is_some());
        }
        Ok(state)
    }

    pub fn record(&self, user_id: &str, is_admin: bool, disabled: bool) {
        if is_admin {
            self.admins.insert(user_id.to_string());
        }
        self.set_disabled(user_id, disabled);
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
