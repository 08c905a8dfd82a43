//! The hash chains over `change_log` and `access_log` (migration 0012), and their verifier.
//!
//! Every row carries `chain_seq` (1, 2, 3, … without gaps), `prev_hash` (the previous row's
//! `row_hash`, 32 zero bytes for the first) and `row_hash`, computed by a BEFORE INSERT trigger
//! with the SQL function `audit_row_digest`. [`verify`] walks a chain in `chain_seq` order,
//! recomputes every hash with that same function, and names the first broken link: by sequence
//! number and row id, never by a value (the rows hold PHI). `audit_chain_heads` records each
//! chain's last position, so rows cut off or added at the end show too.

use std::time::{Duration, SystemTime};

use tokio_postgres::{Client, IsolationLevel};

use crate::{Actor, DbError};

/// The chained tables.
pub const CHAINS: &[&str] = &["change_log", "access_log"];

/// `prev_hash` of a chain's first row.
pub const GENESIS: [u8; 32] = [0; 32];

/// Rows read per round trip.
const PAGE: i64 = 5_000;

/// Where a verification starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Since {
    /// At this `chain_seq`; the link into it is taken on trust.
    Seq(i64),
    /// At the first row written at or after this time.
    Time(SystemTime),
}

/// How a link is broken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Break {
    /// A row's hash no longer matches its content (or the recorded head's hash).
    Edited,
    /// A position is missing: a gap in `chain_seq`, or the chain ends before its recorded head.
    Deleted,
    /// A row that does not belong: its `prev_hash` is not the previous row's hash, it lies
    /// beyond the recorded head, or it has no chain position at all.
    Inserted,
}

impl Break {
    /// `edited`, `deleted`, `inserted`.
    pub fn as_str(self) -> &'static str {
        match self {
            Break::Edited => "edited",
            Break::Deleted => "deleted",
            Break::Inserted => "inserted",
        }
    }
}

/// The first broken link of a chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokenLink {
    /// The position where the chain breaks (`None` for a row with no position).
    pub seq: Option<i64>,
    /// How.
    pub kind: Break,
    /// Ids and positions only.
    pub detail: String,
}

/// What one chain's verification found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainReport {
    /// `change_log` or `access_log`.
    pub chain: &'static str,
    /// Rows checked.
    pub rows: i64,
    /// The first position checked (1 unless `--since` or archived partitions).
    pub from_seq: i64,
    /// Rows before `from_seq` held by archived partitions (`audit_archives`), whose records
    /// were checked to link up from seq 1 to the first row kept.
    pub archived: i64,
    /// The recorded head: last position and its hash.
    pub head_seq: i64,
    /// Its hash.
    pub head_hash: Vec<u8>,
    /// The first broken link, if any.
    pub broken: Option<BrokenLink>,
}

impl std::fmt::Display for ChainReport {
    /// `change_log: ok, 12 rows, head 12 1f2e3d4c5b6a7988` or
    /// `change_log: BROKEN at seq 5: deleted (…)`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.broken {
            None => {
                let from = match (self.from_seq, self.archived) {
                    (1, _) => String::new(),
                    (from, 0) => format!(" from seq {from}"),
                    (from, archived) => format!(" from seq {from} (seq 1 to {} archived, {archived} rows)", from - 1),
                };
                let prefix = hex::encode(&self.head_hash[..self.head_hash.len().min(8)]);
                write!(f, "{}: ok, {} rows{from}, head {} {prefix}", self.chain, self.rows, self.head_seq)
            }
            Some(b) => {
                let at = b.seq.map_or_else(|| "an unchained row".to_string(), |s| format!("seq {s}"));
                write!(f, "{}: BROKEN at {at}: {} ({})", self.chain, b.kind.as_str(), b.detail)
            }
        }
    }
}

/// A chain's recorded head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    /// `change_log` or `access_log`.
    pub chain: String,
    /// Its last position.
    pub seq: i64,
    /// That row's hash.
    pub hash: Vec<u8>,
}

impl Head {
    /// The hash as lower-case hex.
    pub fn hash_hex(&self) -> String {
        hex::encode(&self.hash)
    }
}

/// Every chain's recorded head.
pub async fn heads(client: &Client) -> Result<Vec<Head>, DbError> {
    let rows = client
        .query("SELECT chain, seq, hash FROM audit_chain_heads ORDER BY chain", &[])
        .await
        .map_err(|e| DbError::new("read audit_chain_heads", e))?;
    Ok(rows.iter().map(|r| Head { chain: r.get(0), seq: r.get(1), hash: r.get(2) }).collect())
}

/// Verifies `chain` (one of [`CHAINS`]) from `since` (the first row without), in one
/// consistent snapshot.
pub async fn verify(client: &mut Client, chain: &'static str, since: Option<Since>) -> Result<ChainReport, DbError> {
    debug_assert!(CHAINS.contains(&chain));
    let tx = client
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await
        .map_err(|e| DbError::new("begin the verification", e))?;
    let head = tx
        .query_opt("SELECT seq, hash FROM audit_chain_heads WHERE chain = $1", &[&chain])
        .await
        .map_err(|e| DbError::new("read audit_chain_heads", e))?;
    let (head_seq, head_hash): (i64, Vec<u8>) = head.map_or((0, GENESIS.to_vec()), |r| (r.get(0), r.get(1)));
    let (mut archived, mut from_seq, mut entry, mut broken) = (0, 1, Some(GENESIS.to_vec()), None);
    match since {
        None => match archives(&tx, chain).await? {
            Ok(Some((last_seq, last_hash, rows))) => {
                (archived, from_seq, entry) = (rows, last_seq + 1, Some(last_hash));
            }
            Ok(None) => {}
            Err(gap) => broken = Some(gap),
        },
        Some(Since::Seq(seq)) => {
            (from_seq, entry) = (seq.clamp(1, head_seq + 1), None);
            // A position at or below the archived ones starts where the kept trail does.
            if let Ok(Some((last_seq, last_hash, rows))) = archives(&tx, chain).await? {
                if from_seq <= last_seq + 1 {
                    (archived, from_seq, entry) = (rows, last_seq + 1, Some(last_hash));
                }
            }
        }
        Some(Since::Time(time)) => {
            from_seq = tx
                .query_one(&format!("SELECT min(chain_seq) FROM {chain} WHERE created_at >= $1"), &[&time])
                .await
                .map_err(|e| DbError::new("find the first row since", e))?
                .get::<_, Option<i64>>(0)
                .unwrap_or(head_seq + 1);
            entry = None;
        }
    }
    if from_seq == 1 {
        entry = Some(GENESIS.to_vec());
    }
    let mut walk = Walk { from_seq, entry, last: None, rows: 0 };
    if broken.is_none() {
        broken = walk_pages(&tx, chain, &mut walk).await?;
    }
    if broken.is_none() {
        broken = walk.check_head(head_seq, &head_hash);
    }
    if broken.is_none() {
        let unchained = tx
            .query_one(
                &format!(
                    "SELECT min(id) FROM {chain} WHERE chain_seq IS NULL OR prev_hash IS NULL OR row_hash IS NULL"
                ),
                &[],
            )
            .await
            .map_err(|e| DbError::new("look for unchained rows", e))?
            .get::<_, Option<i64>>(0);
        broken = unchained.map(|id| BrokenLink {
            seq: None,
            kind: Break::Inserted,
            detail: format!("row id {id} has no chain position"),
        });
    }
    tx.commit().await.map_err(|e| DbError::new("end the verification", e))?;
    Ok(ChainReport { chain, rows: walk.rows, from_seq, archived, head_seq, head_hash, broken })
}

/// The archived partitions of `chain` (`audit_archives`), checked to form one run of positions
/// from seq 1, each linking to the one before: the last archived position, its hash and the rows
/// archived, or `None` when nothing is; `Err` names the first gap.
async fn archives(
    tx: &tokio_postgres::Transaction<'_>,
    chain: &str,
) -> Result<Result<Option<(i64, Vec<u8>, i64)>, BrokenLink>, DbError> {
    let rows = tx
        .query(
            "SELECT partition_name, first_seq, last_seq, prev_hash, last_hash, row_count FROM audit_archives
              WHERE chain = $1 AND first_seq IS NOT NULL ORDER BY first_seq",
            &[&chain],
        )
        .await
        .map_err(|e| DbError::new("read audit_archives", e))?;
    let mut end: Option<(i64, Vec<u8>, i64)> = None;
    for r in &rows {
        let (name, first, last, prev, hash, count): (String, i64, i64, Vec<u8>, Vec<u8>, i64) =
            (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4), r.get(5));
        let (expected, expected_prev) = end.as_ref().map_or((1, GENESIS.to_vec()), |(s, h, _)| (s + 1, h.clone()));
        if first != expected || prev != expected_prev {
            let detail = format!("archive {name} starts at seq {first}, not linked to seq {}", expected - 1);
            return Ok(Err(BrokenLink { seq: Some(expected), kind: Break::Deleted, detail }));
        }
        end = Some((last, hash, end.as_ref().map_or(0, |e| e.2) + count));
    }
    Ok(Ok(end))
}

/// One row as the verifier reads it.
struct Link {
    id: i64,
    seq: i64,
    prev_hash: Vec<u8>,
    row_hash: Vec<u8>,
    content_matches: bool,
}

/// The walk so far: the last row checked.
struct Walk {
    from_seq: i64,
    /// The hash the first row must link to (`None`: taken on trust, for `--since`).
    entry: Option<Vec<u8>>,
    last: Option<(i64, Vec<u8>)>,
    rows: i64,
}

async fn walk_pages(
    tx: &tokio_postgres::Transaction<'_>,
    chain: &'static str,
    walk: &mut Walk,
) -> Result<Option<BrokenLink>, DbError> {
    let sql = format!(
        "SELECT id, chain_seq, prev_hash, row_hash, audit_row_digest($1, chain_seq, prev_hash, t) = row_hash
           FROM {chain} t WHERE chain_seq >= $2 ORDER BY chain_seq LIMIT $3"
    );
    loop {
        let next = walk.last.as_ref().map_or(walk.from_seq, |(seq, _)| seq + 1);
        let rows = tx.query(&sql, &[&chain, &next, &PAGE]).await.map_err(|e| DbError::new("read the chain", e))?;
        for r in &rows {
            let link = Link {
                id: r.get(0),
                seq: r.get(1),
                prev_hash: r.get(2),
                row_hash: r.get(3),
                content_matches: r.get(4),
            };
            if let Some(broken) = walk.check(link) {
                return Ok(Some(broken));
            }
        }
        if (rows.len() as i64) < PAGE {
            return Ok(None);
        }
    }
}

impl Walk {
    /// Checks one row against the one before it.
    fn check(&mut self, link: Link) -> Option<BrokenLink> {
        let expected_seq = self.last.as_ref().map_or(self.from_seq, |(seq, _)| seq + 1);
        let expected_prev = match &self.last {
            Some((_, hash)) => Some(hash.as_slice()),
            None => self.entry.as_deref(),
        };
        let id = link.id;
        let broken = if link.seq > expected_seq {
            let missing = if link.seq == expected_seq + 1 {
                format!("seq {expected_seq} is missing")
            } else {
                format!("seq {expected_seq} to {} are missing", link.seq - 1)
            };
            Some(BrokenLink {
                seq: Some(expected_seq),
                kind: Break::Deleted,
                detail: format!("{missing}; next is row id {id}"),
            })
        } else if !link.content_matches {
            let detail = format!("row id {id}: its content does not match its hash");
            Some(BrokenLink { seq: Some(link.seq), kind: Break::Edited, detail })
        } else if expected_prev.is_some_and(|p| p != link.prev_hash.as_slice()) {
            let detail = format!("row id {id}: its prev_hash is not the hash of seq {}", link.seq - 1);
            Some(BrokenLink { seq: Some(link.seq), kind: Break::Inserted, detail })
        } else {
            None
        };
        if broken.is_none() {
            self.rows += 1;
            self.last = Some((link.seq, link.row_hash));
        }
        broken
    }

    /// Compares where the walk ended with the recorded head.
    fn check_head(&self, head_seq: i64, head_hash: &[u8]) -> Option<BrokenLink> {
        let last_seq = self.last.as_ref().map_or(self.from_seq - 1, |(seq, _)| *seq);
        if last_seq < head_seq {
            let detail = format!("the chain ends at seq {last_seq}, its recorded head is seq {head_seq}");
            return Some(BrokenLink { seq: Some(last_seq + 1), kind: Break::Deleted, detail });
        }
        if last_seq > head_seq {
            let detail = format!("rows lie beyond the recorded head, seq {head_seq}");
            return Some(BrokenLink { seq: Some(head_seq + 1), kind: Break::Inserted, detail });
        }
        let last = self.last.clone().or_else(|| self.entry.clone().map(|hash| (last_seq, hash)));
        match &last {
            Some((seq, hash)) if *seq > 0 && hash.as_slice() != head_hash => Some(BrokenLink {
                seq: Some(*seq),
                kind: Break::Edited,
                detail: "the last row's hash is not the recorded head's".into(),
            }),
            _ => None,
        }
    }
}

/// Leaves the `access_log` row of one verification run (actor `august_auditor`): rows checked,
/// how long it took, and the names of broken chains.
pub async fn record_run(client: &Client, reports: &[ChainReport], took: Duration) -> Result<(), DbError> {
    let rows: i64 = reports.iter().map(|r| r.rows).sum();
    let broken: Vec<&str> = reports.iter().filter(|r| r.broken.is_some()).map(|r| r.chain).collect();
    let error = (!broken.is_empty()).then(|| format!("broken: {}", broken.join(", ")));
    let duration_ms = i32::try_from(took.as_millis()).unwrap_or(i32::MAX);
    let row_count = i32::try_from(rows).unwrap_or(i32::MAX);
    client
        .execute(
            "INSERT INTO access_log (service, method, path_template, duration_ms, row_count, error, actor)
             VALUES ('postgres', 'VERIFY', 'audit chain', $1, $2, $3, $4)",
            &[&duration_ms, &row_count, &error, &Actor::Auditor.as_str()],
        )
        .await
        .map(|_| ())
        .map_err(|e| DbError::new("record the verification in access_log", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(id: i64, seq: i64, prev: &[u8], hash: &[u8], content_matches: bool) -> Link {
        Link { id, seq, prev_hash: prev.to_vec(), row_hash: hash.to_vec(), content_matches }
    }

    #[test]
    fn a_gap_is_a_deletion_and_a_foreign_prev_hash_an_insertion() {
        let mut walk = Walk { from_seq: 1, entry: Some(GENESIS.to_vec()), last: None, rows: 0 };
        assert_eq!(walk.check(link(1, 1, &GENESIS, b"a", true)), None);
        let gap = walk.check(link(3, 3, b"b", b"c", true)).unwrap();
        assert_eq!((gap.seq, gap.kind), (Some(2), Break::Deleted));
        let foreign = walk.check(link(2, 2, b"x", b"b", true)).unwrap();
        assert_eq!((foreign.seq, foreign.kind), (Some(2), Break::Inserted));
        let edited = walk.check(link(2, 2, b"a", b"b", false)).unwrap();
        assert_eq!((edited.seq, edited.kind), (Some(2), Break::Edited));
        assert_eq!(walk.rows, 1);
    }

    #[test]
    fn the_walk_must_end_at_the_recorded_head() {
        let mut walk = Walk { from_seq: 1, entry: Some(GENESIS.to_vec()), last: None, rows: 0 };
        assert_eq!(walk.check(link(1, 1, &GENESIS, b"a", true)), None);
        assert_eq!(walk.check_head(1, b"a"), None);
        assert_eq!(walk.check_head(2, b"b").map(|b| b.kind), Some(Break::Deleted));
        assert_eq!(walk.check_head(0, &GENESIS).map(|b| b.kind), Some(Break::Inserted));
        assert_eq!(walk.check_head(1, b"z").map(|b| b.kind), Some(Break::Edited));
    }

    #[test]
    fn since_takes_the_first_link_on_trust() {
        let mut walk = Walk { from_seq: 5, entry: None, last: None, rows: 0 };
        assert_eq!(walk.check(link(9, 5, b"whatever", b"e", true)), None);
        assert_eq!(walk.check_head(5, b"e"), None);
    }
}
