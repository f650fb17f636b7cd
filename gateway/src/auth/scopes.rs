//! What a credential may do. A login token carries its account's role (`admin` for
//! administrators, `deploy` otherwise); an API key carries the scope it was made with, never more
//! than its owner's role, and may be limited to named functions and expire.

/// Ordered: each scope allows what the ones before it do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Scope {
    /// Calls its owner's private functions; reads nothing else.
    Invoke,
    /// Adds the control plane of its owner's functions (deploy, logs, keys…).
    Deploy,
    /// Adds the administration of the server (accounts, invitations, health details).
    Admin,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Invoke => "invoke",
            Scope::Deploy => "deploy",
            Scope::Admin => "admin",
        }
    }

    /// The scope a login token of an account has.
    pub fn of_account(is_admin: bool) -> Scope {
        if is_admin {
            Scope::Admin
        } else {
            Scope::Deploy
        }
    }
}

impl std::str::FromStr for Scope {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        match text.trim() {
            "invoke" => Ok(Scope::Invoke),
            "deploy" => Ok(Scope::Deploy),
            "admin" => Ok(Scope::Admin),
            other => Err(format!("scope {other:?} is not valid: expected invoke, deploy or admin")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_are_ordered_and_parse_from_their_names() {
        assert!(Scope::Invoke < Scope::Deploy && Scope::Deploy < Scope::Admin);
        for scope in [Scope::Invoke, Scope::Deploy, Scope::Admin] {
            assert_eq!(scope.as_str().parse::<Scope>(), Ok(scope));
        }
        assert!("root".parse::<Scope>().unwrap_err().contains("expected invoke, deploy or admin"));
    }
}
