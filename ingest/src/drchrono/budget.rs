//! DrChrono's rate limit, shared by every process and command: 500 calls per hour per account,
//! reset at the top of the hour (`DRCHRONO_CALLS_PER_HOUR`). DrChrono counts per account, not
//! per process, so the count lives in Postgres (`drchrono_call_budget`, one row per window) and
//! every call is reserved there, atomically, before it is made. Background work (the
//! reconciliation pass, `/sync/*`) leaves `DRCHRONO_CALLS_RESERVE` calls for people running
//! `august sync`.
//!
//! Windows are aligned to multiples of their length since the Unix epoch, as DrChrono's hours
//! are. No call is started in a window's last [`GUARD`]: one that left then could arrive after
//! the reset and count in the next window, on top of that window's own reservations.

use std::time::Duration;

use august_schema::{DbError, PgPool};
use tokio_postgres::types::Type;

use super::error::DrChronoError;

/// Calls are not started this close to a window's end.
pub const GUARD: Duration = Duration::from_secs(1);

/// Who is asking, which decides how much of the window it may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Priority {
    /// A person (`august sync`, `august verify`): the whole limit; waits for the next window.
    Manual,
    /// Scheduled work (reconciliation, `/sync/*`): the limit less the reserve; stops when spent.
    Scheduled,
}

/// The shared hourly call budget.
#[derive(Clone)]
pub struct CallBudget {
    pool: PgPool,
    limit: u32,
    reserve: u32,
    window: Duration,
    /// Calls left as the last reservation found them (`u32::MAX`: none made yet).
    last_left: std::sync::Arc<std::sync::atomic::AtomicU32>,
}

/// What a reservation attempt found.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Reservation {
    /// The call may be made; this many calls are left in the window for any caller.
    Granted {
        /// Calls left in this window under the whole limit.
        calls_left: u32,
    },
    /// Nothing is left for this priority until the window ends in `wait`.
    Spent {
        /// Calls left in this window under the whole limit.
        calls_left: u32,
        /// Until the next window.
        wait: Duration,
    },
    /// The window ends within [`GUARD`]: ask again after `wait`.
    Closing {
        /// Until the next window.
        wait: Duration,
    },
}

const RESERVE_SQL: &str = "
WITH w AS (
    SELECT to_timestamp(floor(extract(epoch FROM clock_timestamp())::float8 / $1::float8) * $1::float8) AS start,
           $1::float8 - mod(extract(epoch FROM clock_timestamp())::numeric, $1::float8::numeric)::float8 AS left_secs
)
INSERT INTO drchrono_call_budget AS b (window_start, calls)
SELECT start, 1 FROM w WHERE $2::int4 > 0 AND left_secs >= $3::float8
ON CONFLICT (window_start) DO UPDATE SET calls = b.calls + 1 WHERE b.calls < $2::int4
RETURNING calls";

const STATE_SQL: &str = "
WITH w AS (
    SELECT to_timestamp(floor(extract(epoch FROM clock_timestamp())::float8 / $1::float8) * $1::float8) AS start,
           $1::float8 - mod(extract(epoch FROM clock_timestamp())::numeric, $1::float8::numeric)::float8 AS left_secs
)
SELECT w.left_secs, coalesce(b.calls, 0) FROM w LEFT JOIN drchrono_call_budget b ON b.window_start = w.start";

impl CallBudget {
    /// `limit` calls per `window`, `reserve` of them kept for [`Priority::Manual`].
    pub fn new(pool: PgPool, limit: u32, reserve: u32, window: Duration) -> Self {
        let last_left = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(u32::MAX));
        Self { pool, limit, reserve: reserve.min(limit), window, last_left }
    }

    /// The whole limit per window.
    pub fn limit(&self) -> u32 {
        self.limit
    }

    fn limit_for(&self, priority: Priority) -> u32 {
        match priority {
            Priority::Manual => self.limit,
            Priority::Scheduled => self.limit - self.reserve,
        }
    }

    /// Reserves one call for `priority`.
    pub async fn reserve(&self, priority: Priority) -> Result<Reservation, DrChronoError> {
        let client = self.pool.get().await.map_err(pool_error)?;
        let window = self.window.as_secs_f64();
        let limit = i32::try_from(self.limit_for(priority)).unwrap_or(i32::MAX);
        let params: [(&(dyn tokio_postgres::types::ToSql + Sync), Type); 3] =
            [(&window, Type::FLOAT8), (&limit, Type::INT4), (&GUARD.as_secs_f64(), Type::FLOAT8)];
        let granted = client
            .query_typed_opt(RESERVE_SQL, &params)
            .await
            .map_err(|e| DbError::new("reserve a DrChrono call", e))?;
        if let Some(row) = granted {
            let calls_left = self.left(row.get(0));
            self.last_left.store(calls_left, std::sync::atomic::Ordering::Relaxed);
            return Ok(Reservation::Granted { calls_left });
        }
        let (left_secs, used) = self.window_state(&client).await?;
        let wait = Duration::from_secs_f64(left_secs.max(0.0));
        if wait < GUARD && used < limit {
            Ok(Reservation::Closing { wait })
        } else {
            Ok(Reservation::Spent { calls_left: self.left(used), wait })
        }
    }

    /// Calls left as of this process's last reservation, without asking Postgres.
    pub fn last_calls_left(&self) -> Option<u32> {
        Some(self.last_left.load(std::sync::atomic::Ordering::Relaxed)).filter(|left| *left != u32::MAX)
    }

    /// Calls left in the current window under the whole limit.
    pub async fn calls_left(&self) -> Result<u32, DrChronoError> {
        let client = self.pool.get().await.map_err(pool_error)?;
        Ok(self.left(self.window_state(&client).await?.1))
    }

    /// Calls `priority` may still make in this window, and the seconds until it ends.
    pub async fn available(&self, priority: Priority) -> Result<(u32, Duration), DrChronoError> {
        let client = self.pool.get().await.map_err(pool_error)?;
        let (left_secs, used) = self.window_state(&client).await?;
        let used = u32::try_from(used).unwrap_or(0);
        Ok((self.limit_for(priority).saturating_sub(used), Duration::from_secs_f64(left_secs.max(0.0))))
    }

    async fn window_state(&self, client: &tokio_postgres::Client) -> Result<(f64, i32), DbError> {
        let row = client
            .query_typed_opt(STATE_SQL, &[(&self.window.as_secs_f64(), Type::FLOAT8)])
            .await
            .map_err(|e| DbError::new("read the DrChrono call budget", e))?;
        // The statement always returns its one row; none would mean an empty window.
        Ok(row.map_or((self.window.as_secs_f64(), 0), |row| (row.get(0), row.get(1))))
    }

    fn left(&self, used: i32) -> u32 {
        self.limit.saturating_sub(u32::try_from(used).unwrap_or(0))
    }
}

/// A pooled connection that could not be had, as a retryable error.
pub(crate) fn pool_error(e: bb8::RunError<tokio_postgres::Error>) -> DrChronoError {
    match e {
        bb8::RunError::User(e) => DrChronoError::Db(DbError::new("get a pooled connection", e)),
        bb8::RunError::TimedOut => DrChronoError::Busy,
    }
}
