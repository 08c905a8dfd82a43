//! The consumer: runs the snapshot, then streams from the slot, reconnecting with backoff,
//! and tells Postgres how far downstream has made changes durable.
//!
//! One task owns the replication session and waits, in one `select!`, on the next frame, a
//! status tick and the stop signal. Status updates report as flushed exactly the durable LSN
//! downstream published on its watch channel (capped at what was received), and nothing else
//! moves the slot. Delivery to downstream is a bounded channel: when it is full the task stops
//! reading the socket, but keeps sending status updates, so the server neither times the
//! session out nor makes August buffer.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::delivery::Delivery;
use crate::walsender::{quote_ident, Frame, WalSender};
use crate::{heartbeat, metrics as m, pgoutput, relation, slot, snapshot, CdcError, Event, Lsn};

/// How the consumer runs.
#[derive(Debug, Clone)]
pub struct CdcConfig {
    /// The permanent slot (the binary picks it with [`slot::choose_slot`]).
    pub slot: String,
    /// The publication (`august_cdc`).
    pub publication: String,
    /// Copy the tables first (the pipeline does; `august tail` does not).
    pub snapshot: bool,
    /// Stream from a temporary slot of this session instead of the permanent one.
    pub temporary_slot: bool,
    /// Drop and recreate the permanent slot first (`--resnapshot`).
    pub resnapshot: bool,
    /// Deliver only these tables (all when `None`).
    pub only: Option<Vec<String>>,
    /// Emit a heartbeat this often (none when `None`).
    pub heartbeat: Option<Duration>,
    /// Send a status update at least this often.
    pub status_interval: Duration,
    /// Check for a durable LSN to confirm this often.
    pub confirm_interval: Duration,
    /// First and longest wait between reconnection attempts.
    pub backoff: (Duration, Duration),
    /// Events the channel to downstream holds.
    pub capacity: usize,
    /// How often the slot's lag is measured.
    pub monitor_interval: Duration,
}

impl Default for CdcConfig {
    fn default() -> Self {
        Self {
            slot: "august".into(),
            publication: august_schema::PUBLICATION.into(),
            snapshot: true,
            temporary_slot: false,
            resnapshot: false,
            only: None,
            heartbeat: Some(Duration::from_secs(10)),
            status_interval: Duration::from_secs(10),
            confirm_interval: Duration::from_millis(100),
            backoff: (Duration::from_millis(200), Duration::from_secs(30)),
            capacity: 4096,
            monitor_interval: Duration::from_secs(10),
        }
    }
}

/// Counters the consumer keeps, for tests, status lines and metrics.
#[derive(Debug, Default)]
pub struct StreamStats {
    /// Row changes delivered.
    pub changes: AtomicU64,
    /// Transactions delivered.
    pub transactions: AtomicU64,
    /// Reconnections.
    pub reconnects: AtomicU64,
    /// Highest WAL position received.
    pub received: AtomicU64,
    /// Highest position confirmed to the server.
    pub confirmed: AtomicU64,
    last_message_ms: AtomicU64,
}

impl StreamStats {
    fn touch(&self) {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
        self.last_message_ms.store(now, Ordering::Relaxed);
    }

    /// Seconds since the server last sent anything (0 before the first message).
    pub fn seconds_since_last_message(&self) -> f64 {
        let last = self.last_message_ms.load(Ordering::Relaxed);
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
        if last == 0 {
            0.0
        } else {
            now.saturating_sub(last) as f64 / 1000.0
        }
    }
}

/// A running consumer: its events, its counters, and how to stop it.
#[derive(Debug)]
pub struct ChangeStream {
    events: mpsc::Receiver<Event>,
    stats: Arc<StreamStats>,
    cancel: CancellationToken,
    task: JoinHandle<Result<(), CdcError>>,
}

/// Starts the consumer for the database `pg`. `durable` is where downstream publishes the LSN
/// below which everything it received is durable; it is the only thing that moves the slot.
pub fn start(pg: tokio_postgres::Config, config: CdcConfig, durable: watch::Receiver<Lsn>) -> ChangeStream {
    let (tx, events) = mpsc::channel(config.capacity.max(1));
    let stats = Arc::new(StreamStats::default());
    let cancel = CancellationToken::new();
    let consumer = Consumer {
        pg,
        config,
        tx,
        durable,
        cancel: cancel.clone(),
        stats: stats.clone(),
        confirmed: Lsn::ZERO,
        received: Lsn::ZERO,
    };
    ChangeStream { events, stats, cancel, task: tokio::spawn(consumer.run()) }
}

impl ChangeStream {
    /// The next event; `None` once the consumer has stopped (see [`ChangeStream::finish`]).
    pub async fn next(&mut self) -> Option<Event> {
        self.events.recv().await
    }

    /// The consumer's counters.
    pub fn stats(&self) -> &Arc<StreamStats> {
        &self.stats
    }

    /// Asks the consumer to stop: it confirms the durable LSN one last time and ends the
    /// session.
    pub fn stop(&self) {
        self.cancel.cancel();
    }

    /// Kills the consumer at once, as a crash would: no last status update, no goodbye to the
    /// server. For tests of what survives a crash.
    pub fn abort(self) {
        self.task.abort();
        self.cancel.cancel();
    }

    /// Stops the consumer and returns how it ended.
    pub async fn finish(self) -> Result<(), CdcError> {
        self.cancel.cancel();
        drop(self.events);
        self.task.await.unwrap_or_else(|e| Err(CdcError::Protocol(format!("the consumer task failed: {e}"))))
    }
}

struct Consumer {
    pg: tokio_postgres::Config,
    config: CdcConfig,
    tx: mpsc::Sender<Event>,
    durable: watch::Receiver<Lsn>,
    cancel: CancellationToken,
    stats: Arc<StreamStats>,
    confirmed: Lsn,
    received: Lsn,
}

/// Delivers snapshot rows downstream, waiting for room (no replication session is open
/// during the copy, so there is nothing to keep alive).
pub struct Emitter<'a> {
    tx: &'a mpsc::Sender<Event>,
    cancel: &'a CancellationToken,
}

impl Emitter<'_> {
    /// Sends one event, or fails when asked to stop or when downstream has gone.
    pub async fn send(&mut self, event: Event) -> Result<(), CdcError> {
        tokio::select! {
            biased;
            _ = self.cancel.cancelled() => Err(CdcError::Stopped),
            permit = self.tx.reserve() => {
                permit.map_err(|_| CdcError::ReaderGone)?.send(event);
                Ok(())
            }
        }
    }
}

impl Consumer {
    async fn run(mut self) -> Result<(), CdcError> {
        let result = self.run_inner().await;
        self.cancel.cancel(); // stops the heartbeat and the monitor
        match result {
            Err(CdcError::Stopped) | Err(CdcError::ReaderGone) => Ok(()),
            other => other,
        }
    }

    async fn run_inner(&mut self) -> Result<(), CdcError> {
        let mut control = august_schema::connect(&self.pg).await?;
        let exists = control
            .query_opt("SELECT 1 FROM pg_publication WHERE pubname = $1", &[&self.config.publication])
            .await
            .map_err(|e| CdcError::db("look up the publication", e))?;
        if exists.is_none() {
            return Err(CdcError::NoPublication(self.config.publication.clone()));
        }
        if !self.config.temporary_slot {
            slot::prepare_slot(&control, &self.pg, &self.config.slot, self.config.resnapshot).await?;
            tokio::spawn(slot::monitor_slot(
                self.pg.clone(),
                self.config.slot.clone(),
                self.config.monitor_interval,
                self.stats.clone(),
                self.cancel.child_token(),
            ));
        }
        let mut emitter = Emitter { tx: &self.tx, cancel: &self.cancel };
        let (snapshot_lsn, relations) = if self.config.snapshot {
            let (lsn, relations) =
                snapshot::copy_tables(&self.pg, &self.config.publication, self.config.only.as_deref(), &mut emitter)
                    .await?;
            emitter.send(Event::SnapshotEnd { lsn }).await?;
            (lsn, relations)
        } else {
            let relations = relation::published_relations(&control, &self.config.publication).await?;
            snapshot::require_full_identity(&relations)?;
            (Lsn::ZERO, relations)
        };
        if let Some(interval) = self.config.heartbeat {
            tokio::spawn(heartbeat::emit_heartbeats(self.pg.clone(), interval, self.cancel.child_token()));
        }

        let mut delivery = Delivery::new(snapshot_lsn, &relations, self.config.only.clone());
        metrics::counter!(m::RECONNECTS).increment(0); // a series from the start, for rate()
        let (min, max) = self.config.backoff;
        let mut wait = min;
        loop {
            let started = Instant::now();
            let error = match self.stream_once(&mut control, &mut delivery).await {
                Ok(()) => return Ok(()),
                Err(e) => e,
            };
            if error.kind() == august_schema::ErrorKind::Permanent || self.cancel.is_cancelled() {
                return Err(error);
            }
            if self.config.temporary_slot {
                return Err(error); // a temporary slot is gone with its session: nothing to resume
            }
            delivery.on_reconnect();
            self.stats.reconnects.fetch_add(1, Ordering::Relaxed);
            metrics::counter!(m::RECONNECTS).increment(1);
            if started.elapsed() > max {
                wait = min;
            }
            tracing::warn!(error = %error, retry_in_ms = wait.as_millis() as u64, "replication connection lost; reconnecting");
            tokio::select! {
                _ = self.cancel.cancelled() => return Err(CdcError::Stopped),
                _ = tokio::time::sleep(wait) => {}
            }
            wait = (wait * 2).min(max);
        }
    }

    async fn stream_once(
        &mut self,
        control: &mut tokio_postgres::Client,
        delivery: &mut Delivery,
    ) -> Result<(), CdcError> {
        if control.is_closed() {
            *control = august_schema::connect(&self.pg).await?; // e.g. after a server restart
        }
        // A plain session beside the replication one. A fast shutdown terminates plain
        // sessions first, then waits for each logical walsender's client to confirm everything
        // sent, which August will not do before downstream made it durable: so when the
        // watchdog is cut, August leaves, letting the server shut down, and comes back.
        let tls = august_schema::tls::for_config(&self.pg);
        let (_watchdog, watchdog) = tls
            .apply(&self.pg)
            .connect(tls.connector())
            .await
            .map_err(|e| CdcError::db("open the watchdog session", e))?;
        tokio::pin!(watchdog);
        let mut session = WalSender::connect(&self.pg).await?;
        let slot = if self.config.temporary_slot {
            let name = format!("august_tail_{}", std::process::id());
            session
                .simple_query(&format!(
                    "CREATE_REPLICATION_SLOT {} TEMPORARY LOGICAL pgoutput (SNAPSHOT 'nothing')",
                    quote_ident(&name)
                ))
                .await?;
            name
        } else {
            self.config.slot.clone()
        };
        session.start_replication(&slot, Lsn::ZERO, &self.config.publication).await.map_err(|e| match e {
            CdcError::Server { code, .. } if code == "42704" => CdcError::SlotMissing { slot: slot.clone() },
            other => other,
        })?;
        let mut confirm_ticks = tokio::time::interval(self.config.confirm_interval);
        let mut last_status = Instant::now();
        let mut events = Vec::new();
        loop {
            let frame = tokio::select! {
                biased;
                _ = self.cancel.cancelled() => {
                    self.send_status(&mut session, false).await?;
                    session.finish().await;
                    return Err(CdcError::Stopped);
                }
                _ = confirm_ticks.tick() => {
                    let due = last_status.elapsed() >= self.config.status_interval;
                    if self.durable_lsn() > self.confirmed || due {
                        self.send_status(&mut session, false).await?;
                        last_status = Instant::now();
                    }
                    continue;
                }
                _ = &mut watchdog => {
                    session.finish().await;
                    return Err(CdcError::io("the server is shutting down", std::io::ErrorKind::ConnectionAborted.into()));
                }
                frame = session.next_frame() => frame?,
            };
            self.stats.touch();
            match frame {
                Frame::Keepalive { wal_end, reply_requested } => {
                    self.received = self.received.max(wal_end);
                    delivery.on_keepalive(wal_end, &mut events);
                    if reply_requested {
                        self.send_status(&mut session, false).await?;
                        last_status = Instant::now();
                    }
                }
                Frame::XLogData { wal_end, data } => {
                    self.received = self.received.max(wal_end);
                    let message = pgoutput::decode(&data)?;
                    if let pgoutput::Message::Relation(relation) = message {
                        let keys = if delivery.knows(relation.oid) {
                            None
                        } else {
                            Some(primary_key(control, relation.oid).await?)
                        };
                        delivery.on_relation(relation, keys.as_deref());
                    } else {
                        let counted = delivery.on_message(message, &mut events)?;
                        self.stats.changes.fetch_add(counted.changes, Ordering::Relaxed);
                        self.stats.transactions.fetch_add(counted.transactions, Ordering::Relaxed);
                        metrics::counter!(m::CHANGES).increment(counted.changes);
                        metrics::counter!(m::TRANSACTIONS).increment(counted.transactions);
                    }
                }
            }
            self.stats.received.store(self.received.0, Ordering::Relaxed);
            metrics::gauge!(m::RECEIVED_LSN).set(self.received.0 as f64);
            for event in events.drain(..) {
                self.deliver(&mut session, event, &mut last_status).await?;
            }
        }
    }

    /// Sends one event downstream; while the channel is full, keeps the session alive.
    async fn deliver(
        &mut self,
        session: &mut WalSender,
        event: Event,
        last_status: &mut Instant,
    ) -> Result<(), CdcError> {
        let tx = self.tx.clone();
        let mut event = Some(event);
        loop {
            tokio::select! {
                biased;
                _ = self.cancel.cancelled() => {
                    // Stopped while downstream is full: still confirm what it made durable.
                    self.send_status(session, false).await?;
                    return Err(CdcError::Stopped);
                }
                permit = tx.reserve() => {
                    let permit = permit.map_err(|_| CdcError::ReaderGone)?;
                    permit.send(event.take().expect("sent once"));
                    return Ok(());
                }
                _ = tokio::time::sleep(self.config.status_interval.min(Duration::from_secs(1))) => {
                    self.send_status(session, false).await?;
                    *last_status = Instant::now();
                }
            }
        }
    }

    fn durable_lsn(&self) -> Lsn {
        (*self.durable.borrow()).min(self.received)
    }

    async fn send_status(&mut self, session: &mut WalSender, reply: bool) -> Result<(), CdcError> {
        let flushed = self.durable_lsn().max(self.confirmed);
        session.send_status(self.received, flushed, reply).await?;
        self.confirmed = flushed;
        self.stats.confirmed.store(flushed.0, Ordering::Relaxed);
        metrics::gauge!(m::FLUSHED_LSN).set(flushed.0 as f64);
        Ok(())
    }
}

/// The primary-key column names of a table that joined the publication mid-run.
async fn primary_key(control: &tokio_postgres::Client, oid: u32) -> Result<Vec<String>, CdcError> {
    let rows = control
        .query(
            "SELECT a.attname::text FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
              WHERE i.indrelid = $1 AND i.indisprimary",
            &[&oid],
        )
        .await
        .map_err(|e| CdcError::db("read a primary key", e))?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}
