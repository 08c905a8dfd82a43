//! Decoding pgoutput, protocol version 1, text mode: the bytes of one `XLogData` payload into
//! one [`Message`]. Borrowing, so a value is copied once, when it becomes a [`crate::Value`].
//! Malformed input is an error, never a panic.

use bytes::Buf;

use crate::relation::{Column, ReplicaIdentity};
use crate::{CdcError, Lsn, Relation};

/// One column of a tuple, as sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Datum<'a> {
    /// SQL NULL.
    Null,
    /// A TOASTed value the change did not touch: not sent.
    UnchangedToast,
    /// The value's text output.
    Text(&'a str),
}

/// Whether an old tuple holds the key only (`K`) or the whole row (`O`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OldTuple {
    /// Key columns only (others NULL).
    Key,
    /// The whole old row (`REPLICA IDENTITY FULL`).
    Full,
}

/// One pgoutput message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message<'a> {
    /// A transaction starts.
    Begin {
        /// LSN of the commit record.
        final_lsn: Lsn,
        /// Commit time, microseconds since 2000-01-01 UTC.
        commit_time: i64,
        /// Transaction id.
        xid: u32,
    },
    /// The transaction committed.
    Commit {
        /// LSN of the commit record.
        commit_lsn: Lsn,
        /// LSN just past the commit record.
        end_lsn: Lsn,
        /// Commit time, microseconds since 2000-01-01 UTC.
        commit_time: i64,
    },
    /// A table's description (sent before its first change and after DDL).
    Relation(Relation),
    /// A row inserted.
    Insert {
        /// Table OID.
        relation: u32,
        /// The new row.
        new: Vec<Datum<'a>>,
    },
    /// A row updated.
    Update {
        /// Table OID.
        relation: u32,
        /// The old row or key, when logged.
        old: Option<(OldTuple, Vec<Datum<'a>>)>,
        /// The new row.
        new: Vec<Datum<'a>>,
    },
    /// A row deleted.
    Delete {
        /// Table OID.
        relation: u32,
        /// The old row or key.
        old: (OldTuple, Vec<Datum<'a>>),
    },
    /// Tables truncated.
    Truncate {
        /// Table OIDs.
        relations: Vec<u32>,
    },
    /// A logical decoding message (`pg_logical_emit_message`).
    LogicalMessage {
        /// Sent inside a transaction.
        transactional: bool,
        /// Its prefix, e.g. `august.heartbeat`.
        prefix: &'a str,
        /// Its content.
        content: &'a [u8],
    },
    /// Origin, type and other messages August does not use.
    Other(u8),
}

fn malformed(what: &str) -> CdcError {
    CdcError::Protocol(format!("malformed pgoutput message: {what}"))
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn need(&self, n: usize, what: &str) -> Result<(), CdcError> {
        if self.0.remaining() < n {
            Err(malformed(what))
        } else {
            Ok(())
        }
    }
    fn u8(&mut self, what: &str) -> Result<u8, CdcError> {
        self.need(1, what)?;
        Ok(self.0.get_u8())
    }
    fn i16(&mut self, what: &str) -> Result<i16, CdcError> {
        self.need(2, what)?;
        Ok(self.0.get_i16())
    }
    fn u32(&mut self, what: &str) -> Result<u32, CdcError> {
        self.need(4, what)?;
        Ok(self.0.get_u32())
    }
    fn i32(&mut self, what: &str) -> Result<i32, CdcError> {
        self.need(4, what)?;
        Ok(self.0.get_i32())
    }
    fn u64(&mut self, what: &str) -> Result<u64, CdcError> {
        self.need(8, what)?;
        Ok(self.0.get_u64())
    }
    fn i64(&mut self, what: &str) -> Result<i64, CdcError> {
        self.need(8, what)?;
        Ok(self.0.get_i64())
    }
    fn bytes(&mut self, n: usize, what: &str) -> Result<&'a [u8], CdcError> {
        self.need(n, what)?;
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }
    fn cstr(&mut self, what: &str) -> Result<&'a str, CdcError> {
        let end = self.0.iter().position(|b| *b == 0).ok_or_else(|| malformed(what))?;
        let s = std::str::from_utf8(&self.0[..end]).map_err(|_| malformed(what))?;
        self.0 = &self.0[end + 1..];
        Ok(s)
    }
    fn tuple(&mut self) -> Result<Vec<Datum<'a>>, CdcError> {
        let n = self.i16("tuple column count")?;
        let n = usize::try_from(n).map_err(|_| malformed("negative column count"))?;
        let mut datums = Vec::with_capacity(n);
        for _ in 0..n {
            datums.push(match self.u8("tuple column kind")? {
                b'n' => Datum::Null,
                b'u' => Datum::UnchangedToast,
                b't' => {
                    let len =
                        usize::try_from(self.i32("value length")?).map_err(|_| malformed("negative value length"))?;
                    let text =
                        std::str::from_utf8(self.bytes(len, "value")?).map_err(|_| malformed("value is not UTF-8"))?;
                    Datum::Text(text)
                }
                b'b' => return Err(malformed("binary values (August asks for text)")),
                _ => return Err(malformed("unknown tuple column kind")),
            });
        }
        Ok(datums)
    }
}

/// Decodes one pgoutput message.
pub fn decode(data: &[u8]) -> Result<Message<'_>, CdcError> {
    let mut r = Reader(data);
    let tag = r.u8("message tag")?;
    Ok(match tag {
        b'B' => Message::Begin {
            final_lsn: Lsn(r.u64("begin lsn")?),
            commit_time: r.i64("begin time")?,
            xid: r.u32("xid")?,
        },
        b'C' => {
            r.u8("commit flags")?;
            Message::Commit {
                commit_lsn: Lsn(r.u64("commit lsn")?),
                end_lsn: Lsn(r.u64("end lsn")?),
                commit_time: r.i64("commit time")?,
            }
        }
        b'R' => {
            let oid = r.u32("relation oid")?;
            let schema = r.cstr("namespace")?.to_string();
            let name = r.cstr("relation name")?.to_string();
            let replica_identity = ReplicaIdentity::from_code(r.u8("replica identity")?);
            let n = usize::try_from(r.i16("column count")?).map_err(|_| malformed("negative column count"))?;
            let mut columns = Vec::with_capacity(n);
            for _ in 0..n {
                let flags = r.u8("column flags")?;
                let name = r.cstr("column name")?.to_string();
                let type_oid = r.u32("column type")?;
                let type_modifier = r.i32("column type modifier")?;
                columns.push(Column { name, type_oid, type_modifier, is_key: flags & 1 == 1 });
            }
            Message::Relation(Relation { oid, schema, name, replica_identity, columns })
        }
        b'I' => {
            let relation = r.u32("insert relation")?;
            if r.u8("insert tuple tag")? != b'N' {
                return Err(malformed("insert without a new tuple"));
            }
            Message::Insert { relation, new: r.tuple()? }
        }
        b'U' => {
            let relation = r.u32("update relation")?;
            let mut old = None;
            let mut tag = r.u8("update tuple tag")?;
            if tag == b'K' || tag == b'O' {
                let kind = if tag == b'K' { OldTuple::Key } else { OldTuple::Full };
                old = Some((kind, r.tuple()?));
                tag = r.u8("update new tuple tag")?;
            }
            if tag != b'N' {
                return Err(malformed("update without a new tuple"));
            }
            Message::Update { relation, old, new: r.tuple()? }
        }
        b'D' => {
            let relation = r.u32("delete relation")?;
            let kind = match r.u8("delete tuple tag")? {
                b'K' => OldTuple::Key,
                b'O' => OldTuple::Full,
                _ => return Err(malformed("delete without an old tuple")),
            };
            Message::Delete { relation, old: (kind, r.tuple()?) }
        }
        b'T' => {
            let n = r.u32("truncate relation count")?;
            r.u8("truncate options")?;
            let relations = (0..n).map(|_| r.u32("truncated relation")).collect::<Result<_, _>>()?;
            Message::Truncate { relations }
        }
        b'M' => {
            let transactional = r.u8("message flags")? & 1 == 1;
            r.u64("message lsn")?;
            let prefix = r.cstr("message prefix")?;
            let len = usize::try_from(r.u32("message length")?).map_err(|_| malformed("message length"))?;
            Message::LogicalMessage { transactional, prefix, content: r.bytes(len, "message content")? }
        }
        other @ (b'O' | b'Y') => Message::Other(other),
        _ => return Err(malformed("unknown message tag")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cstr(buf: &mut Vec<u8>, s: &str) {
        buf.extend_from_slice(s.as_bytes());
        buf.push(0);
    }

    #[test]
    fn relation_then_update_with_old_row_and_unchanged_toast() {
        let mut rel = vec![b'R'];
        rel.extend_from_slice(&16384u32.to_be_bytes());
        cstr(&mut rel, "public");
        cstr(&mut rel, "notes");
        rel.push(b'f');
        rel.extend_from_slice(&2i16.to_be_bytes());
        for (name, oid) in [("id", 23u32), ("body", 25u32)] {
            rel.push(1);
            cstr(&mut rel, name);
            rel.extend_from_slice(&oid.to_be_bytes());
            rel.extend_from_slice(&(-1i32).to_be_bytes());
        }
        let Message::Relation(relation) = decode(&rel).unwrap() else { panic!("relation") };
        assert_eq!(relation.name, "notes");
        assert_eq!(relation.replica_identity, ReplicaIdentity::Full);
        assert_eq!(relation.columns[1].type_oid, 25);

        let mut upd = vec![b'U'];
        upd.extend_from_slice(&16384u32.to_be_bytes());
        upd.push(b'O');
        upd.extend_from_slice(&2i16.to_be_bytes());
        upd.extend_from_slice(&[b't', 0, 0, 0, 1, b'7', b't', 0, 0, 0, 3, b'o', b'l', b'd']);
        upd.push(b'N');
        upd.extend_from_slice(&2i16.to_be_bytes());
        upd.extend_from_slice(&[b't', 0, 0, 0, 1, b'7', b'u']);
        let Message::Update { old, new, .. } = decode(&upd).unwrap() else { panic!("update") };
        assert_eq!(old.unwrap().1, vec![Datum::Text("7"), Datum::Text("old")]);
        assert_eq!(new, vec![Datum::Text("7"), Datum::UnchangedToast]);
    }

    #[test]
    fn truncated_or_garbage_input_is_an_error_not_a_panic() {
        for input in
            [&b""[..], b"B\0\0", b"I\0\0\0\x01N\0\x01t\0\0\0\x09ab", b"Z", b"U\0\0\0\x01X", b"R\0\0\0\x01no-terminator"]
        {
            assert!(decode(input).is_err(), "{input:?}");
        }
    }
}
