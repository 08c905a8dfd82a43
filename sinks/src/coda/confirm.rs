//! Confirming writes, apart from the writer so a write slot is never missed while a status
//! is checked or the ledger written: the oldest mutation in flight is polled until Coda says
//! it completed, then recorded in the ledger, then reported back as done. A mutation Coda no
//! longer knows is reported lost, and the writer sends it again.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::sync::mpsc;

use super::client::{CodaClient, CodaError};
use super::ledger::{self, Confirmed};
use crate::SinkError;

/// What became of a write.
#[derive(Debug)]
pub enum Confirmation {
    /// Applied by Coda and recorded in the ledger.
    Done(String),
    /// Coda does not know the request (any more): send it again.
    Lost(String),
}

/// Where writes to confirm are sent: (request id, what the write changes).
pub type Requests = mpsc::UnboundedSender<(String, Vec<Confirmed>)>;
/// Where the confirmer answers.
pub type Answers = mpsc::UnboundedReceiver<Result<Confirmation, SinkError>>;

/// Starts the confirmer. Send it `(request id, what the write changes)`; it answers on the
/// returned receiver, in the order the writes were sent.
pub fn start(pg: tokio_postgres::Config, client: CodaClient, poll: Duration) -> (Requests, Answers) {
    let (tx, mut requests) = mpsc::unbounded_channel::<(String, Vec<Confirmed>)>();
    let (answers, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut queue: VecDeque<(String, Vec<Confirmed>)> = VecDeque::new();
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
            let (request, confirmed) = queue.front().expect("not empty");
            let answer = match client.mutation_completed(request).await {
                Ok(true) => match record(&pg, &mut db, confirmed).await {
                    Ok(()) => Some(Ok(Confirmation::Done(request.clone()))),
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot record a confirmed Coda write yet; retrying");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        None
                    }
                },
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

async fn record(
    pg: &tokio_postgres::Config,
    db: &mut Option<tokio_postgres::Client>,
    confirmed: &[Confirmed],
) -> Result<(), august_schema::DbError> {
    if db.as_ref().is_none_or(|c| c.is_closed()) {
        *db = Some(august_schema::connect(pg).await?);
    }
    ledger::record(db.as_mut().expect("connected above"), confirmed).await
}
