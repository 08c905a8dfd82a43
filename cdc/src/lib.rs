//! Change data capture: the logical replication consumer. It turns Postgres' WAL, read
//! through the `august_cdc` publication with pgoutput (protocol 1, text values, streaming of
//! large transactions off), into committed transactions of typed changes, and confirms a
//! position to Postgres only once downstream reports everything before it as durable.
//!
//! # The algorithm
//!
//! **Every start copies, then streams.** The dataflow keeps its state in memory, so each run
//! rebuilds it from a consistent copy; the sinks' ledgers make re-sending unchanged rows free.
//!
//! 1. Make sure the permanent slot (per database, see [`slot`]) exists, belongs to this
//!    database and can stream. A missing slot is created; one of another database is refused;
//!    a lost one (`wal_status = 'lost'`) is an error naming `august replicate --resnapshot`,
//!    which drops and recreates it. Every published table must have `REPLICA IDENTITY FULL`.
//! 2. Create a *temporary* slot that exports its snapshot, on a replication session of its
//!    own. Its consistent point `C` splits history: transactions that committed before `C` are
//!    in the snapshot, those committing at or after `C` are not. A normal connection imports the
//!    snapshot (`SET TRANSACTION SNAPSHOT`) and reads every published table through it: each row
//!    becomes a `SnapshotRow` at time `C`, then `SnapshotEnd { lsn: C }`. The temporary slot
//!    disappears with its session. (This is how Materialize starts too.) On the very first
//!    start the permanent slot is created just before, so its position is at or before `C`.
//! 3. Stream from the permanent slot from its confirmed position, which is at or before `C`,
//!    and drop every transaction whose commit LSN is below `C`: the copy already holds it.
//!    Writes that happen while the copy runs therefore appear exactly once: in the copy if
//!    they committed before `C`, in the stream otherwise.
//! 4. Deliver each remaining transaction as `Begin`, its changes, `Commit`, timestamped by its
//!    commit LSN (known at `Begin`), as the changes arrive: nothing is buffered per transaction,
//!    and a full channel to downstream stops the socket reads (bounded memory).
//! 5. Confirm to Postgres, as flushed, exactly the LSN downstream publishes as durable on its
//!    watch channel. Nothing else moves the slot: not receiving, not keepalives.
//!
//! **Within a run**, a lost connection (or a Postgres restart) is retried with exponential
//! backoff. The server resends from the confirmed position; transactions at or below the last
//! one delivered are dropped, and a transaction that was half delivered is resent whole and its
//! already-delivered changes skipped by position (see [`delivery`]).
//!
//! **Progress.** After a `Commit` at LSN `L`, no event earlier than `L + 1` follows. A keepalive
//! while no transaction is open, an empty transaction, and the transactional heartbeat
//! (`pg_logical_emit_message(true, 'august.heartbeat', …)`, see [`heartbeat`]) send
//! `Progress`, so the frontier, and with it the durable LSN and the slot, advance even when
//! only unpublished tables or other databases change.
//!
//! **Write-back notices.** A transactional message whose prefix is
//! `august_schema::writeback::EDIT_PREFIX` or `REFRESH_PREFIX` is delivered as
//! `Event::Notice` inside its transaction, in WAL order among its changes, and counts as one of
//! its positions for the skip-by-position rule; a transaction holding only such a notice is
//! still delivered (`Begin`, `Notice`, `Commit`). Other messages (heartbeats) deliver nothing.
//!
//! **Trace context.** A transactional message with prefix `august.trace` (the writer's W3C
//! `traceparent`, `august_schema::trace`) opens a `cdc.transaction` span below it and is
//! delivered as `Event::Trace` after the transaction's `Begin` (see [`trace`]).
//!
//! **TOAST.** An unchanged TOASTed value is filled from the old row in the same message (whole,
//! because of `REPLICA IDENTITY FULL`), never NULL, never dropped.
//!
//! **Schema changes.** pgoutput sends a new `Relation` before the first change after DDL; rows
//! are decoded with the latest description from then on.
#![forbid(missing_docs)]

pub mod change;
pub mod delivery;
mod error;
#[doc(hidden)]
pub mod fuzzing;
pub mod heartbeat;
pub mod lsn;
pub mod metrics;
pub mod pgoutput;
pub mod relation;
pub mod slot;
pub mod snapshot;
pub mod stream;
pub mod trace;
pub mod value;
pub mod walsender;

pub use change::{Change, ChangeKind, Event, NoticeKind, Row, WalNotice};
pub use error::CdcError;
pub use lsn::Lsn;
pub use relation::{Column, Relation, ReplicaIdentity};
pub use slot::{slot_status, SlotStatus};
pub use stream::{start, CdcConfig, ChangeStream, StreamStats};
pub use value::Value;
