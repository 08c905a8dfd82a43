//! Confirming writes, apart from the writer so a write slot is never missed while a status
//! is checked or the ledger written: the oldest mutation in flight is polled until Coda says
//! it completed, then recorded in the ledger, then reported back as done. A mutation Coda no
//! longer knows is reported lost, and the writer sends it again.
//!
//! A mutation not completed within the deadline (`AUGUST_CODA_CONFIRM_DEADLINE_SECS`) is
//! settled by reading its table from Coda: the ledger takes what Coda holds for each of its
//! rows, and the writer sends again the rows where that is not what the write carried. So one
//! stuck mutation holds the durable LSN back for the deadline at most.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use opentelemetry::trace::SpanContext;
use tokio::sync::mpsc;

use super::cells::CellSources;
use super::client::{CodaClient, CodaError};
use super::ledger::{self, Confirmed, Held};
use super::mapping::Mapping;
use crate::SinkError;

/// What became of a write.
#[derive(Debug)]
pub enum Confirmation {
    /// Applied by Coda and recorded in the ledger; with the span of the status request that
    /// said so, when traced.
    Done(String, Option<SpanContext>),
    /// Coda does not know the request (any more): send it again.
    Lost(String),
    /// Not completed within the deadline, so settled by reading Coda (and the ledger updated):
    /// what Coda holds for each row of the write, and the keys where that is not what the
    /// write carried (to send again).
    Settled {
        /// The request.
        request: String,
        /// Coda's state of each row of the write (`None`: no row).
        found: Vec<(String, Option<Held>)>,
        /// The rows the write did not reach.
        missing: Vec<String>,
    },
}

/// A write to confirm: its request id, what it changes, and when it was sent.
pub type Sent = (String, Vec<Confirmed>, Instant);
/// Where writes to confirm are sent.
pub type Requests = mpsc::UnboundedSender<Sent>;
/// Where the confirmer answers.
pub type Answers = mpsc::UnboundedReceiver<Result<Confirmation, SinkError>>;

/// What the confirmer needs to read a table back from Coda after the deadline.
#[derive(Debug, Clone)]
pub struct Settling {
    /// The mapping.
    pub mapping: Arc<Mapping>,
    /// Per mapped table, how its cells are made.
    pub sources: Arc<Vec<CellSources>>,
    /// How long a mutation may take before it is settled by reading Coda.
    pub deadline: Duration,
}

/// Starts the confirmer. Send it what each write changes; it answers on the returned receiver,
/// in the order the writes were sent.
pub fn start(
    pg: tokio_postgres::Config,
    client: CodaClient,
    poll: Duration,
    settling: Settling,
) -> (Requests, Answers) {
    let (tx, mut requests) = mpsc::unbounded_channel::<Sent>();
    let (answers, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut queue: VecDeque<Sent> = VecDeque::new();
        let mut db: Option<tokio_postgres::Client> = None;
        loop {
            if queue.is_empty() {
                match requests.recv().await {
                    Some(request) => queue.push_back(request),
                    None => return,
                }
            }
            while let Ok(request) = requests.try_recv() {
                queue.push_back(request);
            }
            let (request, confirmed, sent) = queue.front().expect("not empty");
            let view = confirmed.first().map_or("", Confirmed::view);
            let (completed, by) = super::traced::carrying(view, Vec::new(), client.mutation_completed(request)).await;
            let answer = match completed {
                Ok(true) => match record(&pg, &mut db, confirmed, (&settling.mapping, request)).await {
                    Ok(()) => Some(Ok(Confirmation::Done(request.clone(), by))),
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot record a confirmed Coda write yet; retrying");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        None
                    }
                },
                Ok(false) if sent.elapsed() >= settling.deadline => {
                    match settle(&pg, &mut db, &client, &settling, request, confirmed).await {
                        Ok(settled) => Some(Ok(settled)),
                        Err(e) if e.kind() == august_schema::ErrorKind::Retryable => {
                            tracing::warn!(error = %e, "cannot settle an overdue Coda write yet; retrying");
                            tokio::time::sleep(poll.max(Duration::from_millis(500))).await;
                            None
                        }
                        Err(e) => Some(Err(e)),
                    }
                }
                Ok(false) => {
                    tokio::time::sleep(poll).await;
                    None
                }
                Err(CodaError::Fatal { status: 404, .. }) => Some(Ok(Confirmation::Lost(request.clone()))),
                Err(e) if e.kind() == august_schema::ErrorKind::Retryable => {
                    tokio::time::sleep(poll).await;
                    None
                }
                Err(e) => Some(Err(SinkError::Coda(e))),
            };
            if let Some(answer) = answer {
                queue.pop_front();
                let fatal = answer.is_err();
                if answers.send(answer).is_err() || fatal {
                    return;
                }
            }
        }
    });
    (tx, rx)
}

/// Settles an overdue write by reading its table from Coda: the ledger takes what Coda holds
/// for each of its rows (as at start-up, [`super::settle`]).
async fn settle(
    pg: &tokio_postgres::Config,
    db: &mut Option<tokio_postgres::Client>,
    client: &CodaClient,
    settling: &Settling,
    request: &str,
    confirmed: &[Confirmed],
) -> Result<Confirmation, SinkError> {
    let view = match confirmed.first() {
        Some(Confirmed::Written { view, .. } | Confirmed::Deleted { view, .. }) => view,
        None => return Ok(Confirmation::Done(request.to_string(), None)),
    };
    let mapping = &settling.mapping;
    let t = mapping.tables.iter().position(|m| m.view == *view).expect("a write goes to a mapped table");
    let in_coda = super::settle::coda_state(client, mapping, &settling.sources[t], t).await?;
    let mut found = Vec::with_capacity(confirmed.len());
    let mut missing = Vec::new();
    let mut disclosed = Vec::new();
    for item in confirmed {
        let (key, landed) = match item {
            Confirmed::Written { key, hash, .. } => (key, in_coda.get(key).is_some_and(|h| h.hash == *hash)),
            Confirmed::Deleted { key, .. } => (key, !in_coda.contains_key(key)),
        };
        if landed {
            disclosed.push(item.disclosure(Some(request)));
        } else {
            missing.push(key.clone());
        }
        found.push((key.clone(), in_coda.get(key).cloned()));
    }
    if db.as_ref().is_none_or(|c| c.is_closed()) {
        *db = Some(august_schema::connect(pg).await?);
    }
    ledger::settle(db.as_mut().expect("connected above"), view, &found, (mapping, &disclosed)).await?;
    tracing::warn!(
        view = %view,
        rows = found.len(),
        not_landed = missing.len(),
        deadline_secs = settling.deadline.as_secs(),
        "a Coda write did not complete within the deadline; settled it by reading the table"
    );
    Ok(Confirmation::Settled { request: request.to_string(), found, missing })
}

async fn record(
    pg: &tokio_postgres::Config,
    db: &mut Option<tokio_postgres::Client>,
    confirmed: &[Confirmed],
    disclosed: (&Mapping, &str),
) -> Result<(), august_schema::DbError> {
    if db.as_ref().is_none_or(|c| c.is_closed()) {
        *db = Some(august_schema::connect(pg).await?);
    }
    ledger::record(db.as_mut().expect("connected above"), confirmed, Some(disclosed)).await
}
