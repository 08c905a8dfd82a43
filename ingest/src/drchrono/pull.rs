//! Pulling one feed: page after page, each page one transaction under actor `drchrono_sync`
//! that holds the page's objects (through the same no-op and stale guards as the webhooks, so
//! a page that brings nothing new writes nothing: no row version, no audit row, no WAL, no Coda
//! write) together with the feed's progress in `drchrono_sync_state` and the run's counts in
//! `sync_log`. A run killed between pages resumes from the last committed page (`resume_url`).
//!
//! Incremental runs. `since` filters by day, so a run asks for `since_date` (the day before the
//! last completed pass started, which also absorbs the practice's time zone) and then re-filters
//! locally: an object whose `updated_at` is older than `skip_before` is known unchanged and is
//! not written. `skip_before` is the newest `updated_at` seen *before* the last completed pass
//! started: anything that changed during that pass is newer, so it is written again.
//!
//! Bad objects (a missing id, a wrong type) are skipped, counted as failed, and logged with the
//! feed and the object's id only; the page goes on.
//!
//! Metrics: `august_drchrono_objects_total{feed, outcome}`, `august_drchrono_calls_left`, and
//! `august_drchrono_last_success_timestamp_seconds{feed}` (with `august_drchrono_calls_total{path,
//! status}` from the client).

use chrono::NaiveDateTime;
use serde_json::Value;
use tokio::sync::watch;
use tokio_postgres::types::Type;
use tracing::Instrument;
use uuid::Uuid;

use august_schema::{Actor, DbError, PgPool, UpsertOutcome};

use super::budget::{pool_error, Priority};
use super::client::{DrChronoClient, Page};
use super::error::DrChronoError;
use super::feeds::{ChangeFilter, Feed, Target};
use super::{pulled_rows, upserts_for, write_many_rows, RowWrite};

/// What a run (or one feed of it) did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Counts {
    /// Objects DrChrono sent.
    pub fetched: u32,
    /// Objects new to the mirror.
    pub inserted: u32,
    /// Objects that changed a stored row.
    pub updated: u32,
    /// Objects that changed nothing (equal, older, or known unchanged).
    pub unchanged: u32,
    /// Objects skipped as malformed.
    pub failed: u32,
    /// Pages committed.
    pub pages: u32,
}

impl Counts {
    fn add(&mut self, other: &Counts) {
        self.fetched += other.fetched;
        self.inserted += other.inserted;
        self.updated += other.updated;
        self.unchanged += other.unchanged;
        self.failed += other.failed;
        self.pages += other.pages;
    }
}

/// A run's progress, for progress bars and `GET /sync/runs/:id`.
#[derive(Debug, Default, Clone)]
pub struct Progress {
    /// The feed being pulled.
    pub feed: &'static str,
    /// The run's counts so far.
    pub counts: Counts,
    /// Calls left in this rate-limit window, as of the last page.
    pub calls_left: Option<u32>,
}

/// How a run pulls.
#[derive(Debug, Clone, Copy)]
pub struct PullOptions {
    /// Ignore watermarks and unfinished passes: read every list whole.
    pub full: bool,
    /// Ask for changes since this day, whatever the watermarks say.
    pub since: Option<chrono::NaiveDate>,
    /// Whose budget the calls come from.
    pub priority: Priority,
}

/// How a feed's pull ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeedEnd {
    /// The last page is in; the watermarks moved.
    Finished,
    /// The run's allowance ran out; the next run resumes where this one stopped.
    Stopped,
}

/// Pulls feeds for one run.
pub struct Puller<'a> {
    /// The DrChrono client.
    pub client: &'a DrChronoClient,
    /// The system of record.
    pub pool: &'a PgPool,
    /// The run (`sync_log.id`).
    pub run_id: Uuid,
    /// How to pull.
    pub options: PullOptions,
    /// Where progress goes.
    pub progress: &'a watch::Sender<Progress>,
}

struct Start {
    url: String,
    skip_before: Option<NaiveDateTime>,
}

impl Puller<'_> {
    /// Pulls `feed` until its last page, or until `max_calls` pages were fetched.
    pub async fn pull(
        &self,
        feed: &'static Feed,
        max_calls: Option<u32>,
        run: &mut Counts,
    ) -> Result<FeedEnd, DrChronoError> {
        let sync = tracing::info_span!("drchrono.sync", august.feed = feed.name);
        self.pull_pages(feed, max_calls, run).instrument(sync).await
    }

    async fn pull_pages(
        &self,
        feed: &'static Feed,
        max_calls: Option<u32>,
        run: &mut Counts,
    ) -> Result<FeedEnd, DrChronoError> {
        let Start { mut url, skip_before } = self.start(feed).await?;
        let mut calls = 0;
        loop {
            if max_calls.is_some_and(|most| calls >= most) {
                return Ok(FeedEnd::Stopped);
            }
            calls += 1;
            let span = tracing::info_span!(
                "drchrono.page",
                august.feed = feed.name,
                august.page = calls,
                august.objects = tracing::field::Empty
            );
            let (next, counts) = async {
                let page = self.client.page(&url, feed.path, self.options.priority).await?;
                tracing::Span::current().record("august.objects", page.results.len());
                let next = page.next.clone();
                let counts = crate::trace::commit("drchrono_pull", self.commit_page(feed, page, skip_before)).await?;
                Ok::<_, DrChronoError>((next, counts))
            }
            .instrument(span)
            .await?;
            run.add(&counts);
            tracing::debug!(
                feed = feed.name,
                page = calls,
                inserted = counts.inserted,
                updated = counts.updated,
                unchanged = counts.unchanged,
                "DrChrono page stored"
            );
            let calls_left = self.client.budget().last_calls_left();
            if let Some(left) = calls_left {
                metrics::gauge!(august_schema::metrics::DRCHRONO_CALLS_LEFT.name).set(f64::from(left));
            }
            for (outcome, n) in [
                ("inserted", counts.inserted),
                ("updated", counts.updated),
                ("unchanged", counts.unchanged),
                ("failed", counts.failed),
            ] {
                metrics::counter!(august_schema::metrics::DRCHRONO_OBJECTS.name, "feed" => feed.name, "outcome" => outcome)
                    .increment(u64::from(n));
            }
            self.progress.send_replace(Progress { feed: feed.name, counts: *run, calls_left });
            match next {
                Some(next) => url = next,
                None => {
                    self.finish(feed).await?;
                    return Ok(FeedEnd::Finished);
                }
            }
        }
    }

    /// Where this run starts the feed: where an unfinished pass stopped, or a fresh pass.
    async fn start(&self, feed: &'static Feed) -> Result<Start, DrChronoError> {
        let client = self.pool.get().await.map_err(pool_error)?;
        let state = client
            .query_one(
                "INSERT INTO drchrono_sync_state AS s (resource) VALUES ($1)
                 ON CONFLICT (resource) DO UPDATE SET resource = s.resource
                 RETURNING since_date, skip_before, resume_url",
                &[&feed.name],
            )
            .await
            .map_err(|e| DbError::new("read drchrono_sync_state", e))?;
        let (since_date, skip_before, resume_url): (Option<chrono::NaiveDate>, Option<NaiveDateTime>, Option<String>) =
            (state.get(0), state.get(1), state.get(2));
        let incremental = !self.options.full && self.options.since.is_none();
        let skip_before = skip_before.filter(|_| incremental);
        if let Some(url) = resume_url.filter(|_| incremental) {
            client
                .execute(
                    "UPDATE drchrono_sync_state SET run_id = $2, last_run_at = now(), last_error = NULL WHERE resource = $1",
                    &[&feed.name, &self.run_id],
                )
                .await
                .map_err(|e| DbError::new("resume in drchrono_sync_state", e))?;
            tracing::info!(feed = feed.name, "resuming an unfinished pass");
            return Ok(Start { url, skip_before });
        }
        client
            .execute(
                "UPDATE drchrono_sync_state SET run_watermark = watermark, run_started_at = now(), resume_url = NULL,
                        fetched = 0, inserted = 0, updated = 0, unchanged = 0, failed = 0, pages = 0, calls_used = 0,
                        run_id = $2, last_run_at = now(), last_error = NULL
                  WHERE resource = $1",
                &[&feed.name, &self.run_id],
            )
            .await
            .map_err(|e| DbError::new("start a pass in drchrono_sync_state", e))?;
        let since = match feed.filter {
            ChangeFilter::None => None,
            _ if !incremental => self.options.since,
            _ => since_date,
        };
        let since = match (since, feed.filter) {
            (None, ChangeFilter::SinceRequired) => Some("1970-01-01".to_string()),
            (since, _) => since.map(|d| d.to_string()),
        };
        let mut query: Vec<(&str, String)> = vec![("page_size", feed.page_size.to_string())];
        if feed.verbose {
            query.push(("verbose", "true".into()));
        }
        query.extend(feed.extra.iter().map(|(k, v)| (*k, v.to_string())));
        if let Some(since) = since {
            query.push(("since", since));
        }
        Ok(Start { url: self.client.url(feed.path, &query), skip_before })
    }

    /// One page, one transaction: its objects, the feed's resume point, the run's counts.
    async fn commit_page(
        &self,
        feed: &'static Feed,
        page: Page,
        skip_before: Option<NaiveDateTime>,
    ) -> Result<Counts, DrChronoError> {
        let mut counts = Counts { fetched: page.results.len() as u32, pages: 1, ..Counts::default() };
        let mut newest: Option<NaiveDateTime> = None;
        let mut rows: Vec<RowWrite> = Vec::new();
        let mut firsts: Vec<usize> = Vec::new(); // each written object's first row
        let mut deletions: Vec<i64> = Vec::new();
        for object in &page.results {
            let updated_at = updated_at(object);
            newest = newest.max(updated_at);
            if updated_at.is_some() && skip_before.is_some() && updated_at < skip_before {
                counts.unchanged += 1;
                continue;
            }
            let converted = match feed.target {
                Target::LineItemDeletions => deletion_id(object).map(|id| deletions.push(id)).ok_or(()),
                Target::Mirror(spec) => {
                    pulled_rows(Some(spec), object).map(|r| push(&mut rows, &mut firsts, r)).map_err(|_| ())
                }
                Target::ClinicalNotes => {
                    pulled_rows(None, object).map(|r| push(&mut rows, &mut firsts, r)).map_err(|_| ())
                }
            };
            if converted.is_err() {
                counts.failed += 1;
                tracing::warn!(feed = feed.name, id = %object_id(object, feed.id_field), "skipped a malformed DrChrono object");
            }
        }

        let mut client = self.pool.get().await.map_err(pool_error)?;
        let tx = client.transaction().await.map_err(|e| DbError::new("begin", e))?;
        let upserts = upserts_for(&rows);
        let actor = crate::journal::set_actor_text(&tx, Actor::DrChronoSync);
        let writes = write_many_rows(&tx, &upserts, &rows);
        let traced = crate::trace::emit(&tx);
        let deletes = async {
            if deletions.is_empty() {
                return Ok(Vec::new());
            }
            let soft_delete = tx
                .prepare_typed(
                    "UPDATE line_items SET deleted_at = now() WHERE drchrono_id = $1 AND deleted_at IS NULL",
                    &[Type::INT8],
                )
                .await?;
            let params: Vec<[&(dyn tokio_postgres::types::ToSql + Sync); 1]> =
                deletions.iter().map(|id| [id as _]).collect();
            futures_util::future::try_join_all(params.iter().map(|p| tx.execute(&soft_delete, p))).await
        };
        let (_, outcomes, deleted, _) = tokio::try_join!(biased; actor, writes, async {
            deletes.await.map_err(|e| DbError::new("soft-delete line items", e))
        }, traced)?;
        for first in &firsts {
            match outcomes[*first] {
                UpsertOutcome::Inserted => counts.inserted += 1,
                UpsertOutcome::Updated => counts.updated += 1,
                UpsertOutcome::Unchanged => counts.unchanged += 1,
            }
        }
        for n in deleted {
            if n > 0 {
                counts.updated += 1;
            } else {
                counts.unchanged += 1;
            }
        }
        let n = |v: u32| i32::try_from(v).unwrap_or(i32::MAX);
        let (fetched, inserted, updated, unchanged, failed) =
            (n(counts.fetched), n(counts.inserted), n(counts.updated), n(counts.unchanged), n(counts.failed));
        let run_id = self.run_id.to_string();
        let newest = newest.map(|t| t.to_string());
        tx.execute_typed(
            "WITH feed AS (
                UPDATE drchrono_sync_state SET resume_url = $2, watermark = GREATEST(watermark, $3::timestamp),
                       fetched = fetched + $4, inserted = inserted + $5, updated = updated + $6,
                       unchanged = unchanged + $7, failed = failed + $8, pages = pages + 1,
                       calls_used = calls_used + 1, last_run_at = now()
                 WHERE resource = $1
             )
             UPDATE sync_log SET records_received = records_received + $4, records_inserted = records_inserted + $5,
                    records_updated = records_updated + $6, records_unchanged = records_unchanged + $7,
                    records_failed = records_failed + $8, records_written = records_written + $5 + $6,
                    pages = pages + 1, calls = calls + 1
              WHERE id = $9::uuid",
            &[
                (&feed.name, Type::TEXT),
                (&page.next, Type::TEXT),
                (&newest, Type::TEXT),
                (&fetched, Type::INT4),
                (&inserted, Type::INT4),
                (&updated, Type::INT4),
                (&unchanged, Type::INT4),
                (&failed, Type::INT4),
                (&run_id, Type::TEXT),
            ],
        )
        .await
        .map_err(|e| DbError::new("record the page in drchrono_sync_state and sync_log", e))?;
        tx.commit().await.map_err(|e| DbError::new("commit a page", e))?;
        Ok(counts)
    }

    /// The last page is in: the next incremental run asks from the day before this pass began.
    async fn finish(&self, feed: &'static Feed) -> Result<(), DrChronoError> {
        let client = self.pool.get().await.map_err(pool_error)?;
        client
            .execute(
                "UPDATE drchrono_sync_state SET resume_url = NULL, last_success_at = now(),
                        since_date = (run_started_at AT TIME ZONE 'UTC')::date - 1,
                        skip_before = run_watermark
                  WHERE resource = $1",
                &[&feed.name],
            )
            .await
            .map_err(|e| DbError::new("finish a pass in drchrono_sync_state", e))?;
        let now = chrono::Utc::now().timestamp() as f64;
        metrics::gauge!(august_schema::metrics::DRCHRONO_LAST_SUCCESS.name, "feed" => feed.name).set(now);
        Ok(())
    }
}

fn push(rows: &mut Vec<RowWrite>, firsts: &mut Vec<usize>, object_rows: Vec<RowWrite>) {
    firsts.push(rows.len());
    rows.extend(object_rows);
}

/// An object's `updated_at` (DrChrono local time, no zone).
fn updated_at(object: &Value) -> Option<NaiveDateTime> {
    let text = object.get("updated_at")?.as_str()?;
    NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S")
        .or_else(|_| NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f"))
        .ok()
}

/// The line item a deletion entry names.
fn deletion_id(object: &Value) -> Option<i64> {
    match object.get("billing_line_item_id")? {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64)),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

/// An object's id for a log line (ids are not PHI).
fn object_id(object: &Value, field: &str) -> String {
    match object.get(field) {
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::String(s)) if s.len() <= 32 && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') => {
            s.clone()
        }
        _ => "unknown".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_and_deletion_ids_parse_as_drchrono_sends_them() {
        let t = updated_at(&serde_json::json!({"updated_at": "2024-02-14T13:40:39"})).unwrap();
        assert_eq!(t.to_string(), "2024-02-14 13:40:39");
        assert!(updated_at(&serde_json::json!({"updated_at": 3})).is_none());
        assert_eq!(deletion_id(&serde_json::json!({"billing_line_item_id": 17.0})), Some(17));
        assert_eq!(deletion_id(&serde_json::json!({"billing_line_item_id": "18"})), Some(18));
        assert_eq!(
            object_id(&serde_json::json!({"id": "Jane Doe"}), "id"),
            "unknown",
            "never a value that is not an id"
        );
    }
}
