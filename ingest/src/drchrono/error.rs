//! What can go wrong talking to DrChrono's API, sorted by what a retry loop should do
//! ([`DrChronoError::kind`]). Messages name the endpoint, the status and the fix, never a token,
//! a parameter value or a field of a record.

use august_schema::{DbError, ErrorKind};

/// A failed call, page or run.
#[derive(Debug, thiserror::Error)]
pub enum DrChronoError {
    /// A setting the pull needs is not set.
    #[error("DrChrono pull sync is not configured: set {0}")]
    NotConfigured(&'static str),
    /// The token endpoint refused the refresh token: only a person can fix this.
    #[error(
        "DrChrono refused the stored refresh token ({0}): re-authorise August in DrChrono and set \
         DRCHRONO_REFRESH_TOKEN to the new refresh token"
    )]
    Reauthorise(&'static str),
    /// The stored tokens do not open with the configured key.
    #[error(
        "the stored DrChrono tokens do not open with DRCHRONO_TOKEN_KEY (was the key changed?): set \
         DRCHRONO_REFRESH_TOKEN to a fresh refresh token to seed the store again"
    )]
    BadTokenKey,
    /// DrChrono answered a 4xx that trying again cannot change.
    #[error("DrChrono answered {status} to GET {path}")]
    Refused {
        /// The HTTP status.
        status: u16,
        /// The endpoint (path template).
        path: &'static str,
    },
    /// DrChrono answered 5xx, or never answered, more times than the retry policy allows.
    #[error("DrChrono is unavailable for GET {path}: {reason}")]
    Unavailable {
        /// The endpoint (path template).
        path: &'static str,
        /// What happened last (a status or a transport error kind).
        reason: String,
    },
    /// This run may make no more calls in this rate-limit window.
    #[error("the DrChrono call allowance of this run is spent ({calls_left} calls left this hour)")]
    BudgetSpent {
        /// Calls left in the window for any caller.
        calls_left: u32,
    },
    /// A page is not DrChrono's list envelope.
    #[error("DrChrono sent a page of {path} that is not a list ({problem})")]
    BadPage {
        /// The endpoint (path template).
        path: &'static str,
        /// What is wrong with it.
        problem: &'static str,
    },
    /// A redirect pointed away from DrChrono's API base (the token is never sent there).
    #[error("DrChrono redirected GET {path} to another host; not followed")]
    OffSiteRedirect {
        /// The endpoint (path template).
        path: &'static str,
    },
    /// No database connection was free in time.
    #[error("no database connection was free in time")]
    Busy,
    /// The system of record failed.
    #[error(transparent)]
    Db(#[from] DbError),
}

impl DrChronoError {
    /// Whether the same call may succeed later unchanged.
    pub fn kind(&self) -> ErrorKind {
        match self {
            DrChronoError::Unavailable { .. } | DrChronoError::BudgetSpent { .. } | DrChronoError::Busy => {
                ErrorKind::Retryable
            }
            DrChronoError::Db(e) => e.kind(),
            _ => ErrorKind::Permanent,
        }
    }

    /// A short machine-readable code, for `sync_log.error_code` and API bodies.
    pub fn code(&self) -> &'static str {
        match self {
            DrChronoError::NotConfigured(_) => "not_configured",
            DrChronoError::Reauthorise(_) => "reauthorise",
            DrChronoError::BadTokenKey => "bad_token_key",
            DrChronoError::Refused { .. } => "refused",
            DrChronoError::Unavailable { .. } => "unavailable",
            DrChronoError::BudgetSpent { .. } => "budget_spent",
            DrChronoError::BadPage { .. } => "bad_page",
            DrChronoError::OffSiteRedirect { .. } => "off_site_redirect",
            DrChronoError::Busy | DrChronoError::Db(_) => "database",
        }
    }
}
