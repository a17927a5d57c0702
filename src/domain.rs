//! `DomainName`: a normalised mail domain (see [`crate::config::normalize_domain`]) and the
//! names RFC 8461 and RFC 8460 derive from it.

use std::borrow::Borrow;
use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

use serde::{Serialize, Serializer};

/// A domain as the check uses it: lower-case A-labels, no trailing dot. Cheap to clone (shared).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DomainName(Arc<str>);

impl DomainName {
    /// Wraps a name that has already been normalised (the configuration and the CLI do that);
    /// a trailing dot is dropped.
    pub fn from_normalized(name: &str) -> DomainName {
        DomainName(Arc::from(name.trim_end_matches('.')))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `_mta-sts.<domain>`, where the policy record is looked up (RFC 8461 §3.1).
    pub fn record_name(&self) -> String {
        format!("_mta-sts.{}", self.0)
    }

    /// `mta-sts.<domain>`, the host serving the policy (RFC 8461 §3.3).
    pub fn policy_host(&self) -> String {
        format!("mta-sts.{}", self.0)
    }

    /// `_smtp._tls.<domain>`, where the TLS-RPT record is looked up (RFC 8460 §3).
    pub fn tlsrpt_name(&self) -> String {
        format!("_smtp._tls.{}", self.0)
    }
}

impl Deref for DomainName {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for DomainName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl Borrow<str> for DomainName {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DomainName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl PartialEq<str> for DomainName {
    fn eq(&self, other: &str) -> bool {
        &*self.0 == other
    }
}

impl PartialEq<&str> for DomainName {
    fn eq(&self, other: &&str) -> bool {
        &*self.0 == *other
    }
}

impl From<&str> for DomainName {
    fn from(name: &str) -> DomainName {
        DomainName::from_normalized(name)
    }
}

impl Serialize for DomainName {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_names() {
        let d = DomainName::from_normalized("example.com.");
        assert_eq!(d.as_str(), "example.com");
        assert_eq!(d.record_name(), "_mta-sts.example.com");
        assert_eq!(d.policy_host(), "mta-sts.example.com");
        assert_eq!(d.tlsrpt_name(), "_smtp._tls.example.com");
        assert_eq!(serde_json::to_string(&d).unwrap(), "\"example.com\"");
    }
}
