//! August's decoder against an independent one on the same WAL: a seeded random workload over
//! every type of a published column (on `deepcura_notes` and a scratch table that has a column
//! of each such type, and of the odd values the schema allows but rarely sees), with unchanged
//! TOAST values, key changes, rolled-back savepoints and transactions, and TRUNCATE. Every
//! change is decoded by August's stream and by `wal2json` on a second slot, both sides are
//! written as Postgres' own text output, and compared value by value.
//!
//! `AUGUST_DIFFERENTIAL_CHANGES` (default 300) sets the size of the workload and
//! `AUGUST_DIFFERENTIAL_SEED` its seed; a failure prints the seed to rerun it.

use std::collections::BTreeSet;
use std::time::Duration;

use august_cdc::{ChangeKind, Event, Relation, Row, Value};
use chrono::{Datelike, NaiveDate, NaiveTime, Timelike};

use crate::mirror::test_config;
use crate::Consumer;

const SCRATCH: &str = "CREATE TABLE differential_things (
        id bigint PRIMARY KEY, i2 smallint, i4 integer, i8 bigint, n numeric, f4 real, f8 double precision,
        b boolean, t text, vc varchar(20), bp char(5), u uuid, d date, tm time, ts timestamp, tstz timestamptz,
        j jsonb, js json, texts text[], ints int[], nums numeric[], jsonbs jsonb[], dates date[],
        tstzs timestamptz[], bytes bytea, iv interval, big text);
    ALTER TABLE differential_things ALTER COLUMN big SET STORAGE EXTERNAL;
    ALTER TABLE deepcura_notes ALTER COLUMN transcript SET STORAGE EXTERNAL;
    ALTER TABLE differential_things REPLICA IDENTITY FULL;
    ALTER PUBLICATION august_cdc ADD TABLE differential_things;";

const TABLES: [&str; 2] = ["differential_things", "deepcura_notes"];

/// One change as Postgres' text output: table, op, old row and new row by column name.
type Columns = Vec<(String, Option<String>)>;
#[derive(Debug, PartialEq)]
struct Decoded {
    table: String,
    op: &'static str,
    old: Option<Columns>,
    new: Option<Columns>,
}

#[tokio::test]
async fn august_decodes_every_value_as_wal2json_does() {
    let changes: usize = std::env::var("AUGUST_DIFFERENTIAL_CHANGES").map_or(300, |n| n.parse().unwrap());
    let seed: u64 = std::env::var("AUGUST_DIFFERENTIAL_SEED").map_or(0x5eed_a065, |s| s.parse().unwrap());
    let db = august_testkit::fresh_db("cdc_differential").await;
    let client = db.client().await;
    client.batch_execute(SCRATCH).await.unwrap();
    assert_scratch_covers_published_types(&client).await;

    let mut consumer = Consumer::start(&db, test_config(&db.name));
    consumer.mirror.keep_events = true;
    consumer.pump_until(Duration::from_secs(30), |m| m.snapshot_lsn.is_some()).await;
    let slot = format!("{}_wal2json", db.name);
    let compared = match client.execute("SELECT pg_create_logical_replication_slot($1, 'wal2json')", &[&slot]).await {
        Ok(_) => true,
        // Server binaries from outside the system packages (`AUGUST_PG_BIN`, e.g. the
        // PostgreSQL 16 run of .ci/run) come without wal2json and have no package for it.
        Err(e) if std::env::var_os("AUGUST_PG_BIN").is_some() => {
            let e = e.as_db_error().map_or(e.to_string(), |e| e.message().to_string());
            // Straight to stderr, past the test harness's capture, so the CI log shows it.
            let skipped = format!(
                "differential test: the wal2json comparison is SKIPPED, AUGUST_PG_BIN's server has none ({e})\n"
            );
            std::io::Write::write_all(&mut std::io::stderr(), skipped.as_bytes()).unwrap();
            false
        }
        Err(e) => {
            let e = e.as_db_error().map_or(e.to_string(), |e| e.message().to_string());
            panic!(
                "wal2json is not installed ({e}); install it: `apt-get install postgresql-15-wal2json` \
                 (.ci/run does), or the package for your Postgres version"
            );
        }
    };

    let mut workload = Workload { rng: Rng(seed | 1), next_id: 1 };
    let mut written = 0;
    while written < changes {
        let (sql, n) = workload.transaction();
        if let Err(e) = client.batch_execute(&sql).await {
            let sql: String = sql.lines().map(|l| format!("{}\n", l.chars().take(400).collect::<String>())).collect();
            panic!("seed {seed}: {:?}\n{sql}", e.as_db_error().map(|e| e.message()));
        }
        written += n;
    }
    consumer.catch_up(&client).await;
    assert!(consumer.mirror.faults.is_empty(), "{:?}", consumer.mirror.faults);

    let ours = august_changes(&consumer.mirror.events);
    if compared {
        let (theirs, unchanged_toast) = wal2json_changes(&client, &slot).await;
        client.execute("SELECT pg_drop_replication_slot($1)", &[&slot]).await.unwrap();
        for (i, (ours, theirs)) in ours.iter().zip(&theirs).enumerate() {
            if ours != theirs {
                let differences = differences(ours, theirs);
                panic!(
                    "seed {seed}: change {i} ({} {}) differs, (column, August, wal2json): {differences:#?}",
                    ours.op, ours.table
                );
            }
        }
        assert_eq!(ours.len(), theirs.len(), "seed {seed}: as many changes");
        assert!(unchanged_toast > 0, "seed {seed}: no update left a TOASTed value unchanged");
    }
    consumer.stream.finish().await.unwrap();
    assert!(ours.len() >= changes / 4, "the workload wrote {} changes", ours.len());

    // What `august tail` prints of each JSON value is the same document, every digit kept.
    let (texts, printed): (Vec<String>, Vec<String>) = json_values(&consumer.mirror.events).into_iter().unzip();
    let long_number = |t: &String| t.as_bytes().windows(20).any(|w| w.iter().all(u8::is_ascii_digit));
    assert!(texts.iter().any(long_number), "seed {seed}: no JSON number beyond f64");
    let sql = "SELECT a, b FROM unnest($1::text[], $2::text[]) AS x(a, b) WHERE a::jsonb IS DISTINCT FROM b::jsonb";
    let differ: Vec<(String, String)> =
        client.query(sql, &[&texts, &printed]).await.unwrap().iter().map(|r| (r.get(0), r.get(1))).collect();
    assert!(differ.is_empty(), "seed {seed}: exact_json changed these documents (text, printed): {differ:?}");
    for op in ["insert", "update", "delete", "truncate"] {
        assert!(ours.iter().any(|c| c.op == op), "seed {seed}: no {op}");
    }
}

/// Every JSON value in the changes, with its [`Value::exact_json`].
fn json_values(events: &[Event]) -> Vec<(String, String)> {
    fn collect(value: &Value, out: &mut Vec<(String, String)>) {
        match value {
            Value::Json(text) => out.push((text.clone(), value.exact_json())),
            Value::Array(items) => items.iter().for_each(|item| collect(item, out)),
            _ => {}
        }
    }
    let mut out = vec![];
    for event in events {
        if let Event::Change(change) = event {
            let rows = match &change.kind {
                ChangeKind::Insert { new } => vec![new],
                ChangeKind::Update { old, new } => old.iter().chain([new]).collect(),
                ChangeKind::Delete { old } => vec![old],
            };
            rows.into_iter().flat_map(|row| &row.0).for_each(|value| collect(value, &mut out));
        }
    }
    out
}

/// What differs between two decodings of one change, shortened to be readable.
fn differences(ours: &Decoded, theirs: &Decoded) -> Vec<(String, String, String)> {
    let short = |v: Option<&Option<String>>| format!("{v:?}").chars().take(300).collect::<String>();
    if (&ours.table, ours.op) != (&theirs.table, theirs.op) {
        return vec![(
            "change".into(),
            format!("{} {}", ours.op, ours.table),
            format!("{} {}", theirs.op, theirs.table),
        )];
    }
    let mut out = vec![];
    for (side, a, b) in [("old", &ours.old, &theirs.old), ("new", &ours.new, &theirs.new)] {
        let names: BTreeSet<&String> = a.iter().chain(b).flatten().map(|(n, _)| n).collect();
        for name in names {
            let (x, y) = (a.as_ref().and_then(|a| lookup(a, name)), b.as_ref().and_then(|b| lookup(b, name)));
            if x != y {
                out.push((format!("{side}.{name}"), short(x), short(y)));
            }
        }
    }
    out
}

/// Fails when the schema publishes a column of a type the scratch table (and so the workload)
/// does not have.
async fn assert_scratch_covers_published_types(client: &tokio_postgres::Client) {
    let types = |filter: &str| {
        format!(
            "SELECT DISTINCT a.atttypid::regtype::text FROM pg_publication_tables p
             JOIN pg_attribute a ON a.attrelid = format('%I.%I', p.schemaname, p.tablename)::regclass
             WHERE p.pubname = 'august_cdc' AND a.attnum > 0 AND NOT a.attisdropped AND {filter}"
        )
    };
    let set = |rows: Vec<tokio_postgres::Row>| rows.iter().map(|r| r.get(0)).collect::<BTreeSet<String>>();
    let published = set(client.query(&types("p.tablename <> 'differential_things'"), &[]).await.unwrap());
    let scratch = set(client.query(&types("p.tablename = 'differential_things'"), &[]).await.unwrap());
    let missing: Vec<_> = published.difference(&scratch).collect();
    assert!(missing.is_empty(), "add columns of these published types to differential_things: {missing:?}");
}

fn august_changes(events: &[Event]) -> Vec<Decoded> {
    let row = |relation: &Relation, row: &Row| {
        relation.columns.iter().zip(&row.0).map(|(c, v)| (c.name.clone(), wal2json_text(v))).collect::<Columns>()
    };
    let mut out = vec![];
    for event in events {
        match event {
            Event::Change(change) if TABLES.contains(&change.relation.name.as_str()) => {
                let relation = &change.relation;
                let (old, new) = match &change.kind {
                    ChangeKind::Insert { new } => (None, Some(row(relation, new))),
                    ChangeKind::Update { old, new } => {
                        (old.as_ref().map(|o| row(relation, o)), Some(row(relation, new)))
                    }
                    ChangeKind::Delete { old } => (Some(row(relation, old)), None),
                };
                out.push(Decoded { table: relation.name.clone(), op: change.op(), old, new });
            }
            Event::Truncate(relations) => {
                for relation in relations.iter().filter(|r| TABLES.contains(&r.name.as_str())) {
                    out.push(Decoded { table: relation.name.clone(), op: "truncate", old: None, new: None });
                }
            }
            _ => {}
        }
    }
    out
}

/// The slot's changes, and how many updates left a TOASTed value out (wal2json omits unchanged
/// TOAST values from the new row; the old row, logged whole, has them).
async fn wal2json_changes(client: &tokio_postgres::Client, slot: &str) -> (Vec<Decoded>, usize) {
    // The output functions run in this session: pin what August's sessions pin.
    client
        .batch_execute(
            "SET DateStyle = ISO; SET TimeZone = 'UTC'; SET extra_float_digits = 3;
             SET IntervalStyle = postgres; SET bytea_output = hex",
        )
        .await
        .unwrap();
    let rows = client
        .query(
            "SELECT data FROM pg_logical_slot_get_changes($1, NULL, NULL, 'format-version', '2',
                 'include-types', 'true', 'include-transaction', 'false',
                 'add-tables', 'public.differential_things,public.deepcura_notes')",
            &[&slot],
        )
        .await
        .unwrap();
    let (mut out, mut unchanged_toast) = (vec![], 0);
    for row in rows {
        let data: String = row.get(0);
        let change: serde_json::Value = serde_json::from_str(&data).unwrap_or_else(|e| panic!("{e}: {data}"));
        let table = change["table"].as_str().unwrap_or_default().to_string();
        let (op, old, new) = match change["action"].as_str().unwrap() {
            "I" => ("insert", None, columns(client, &data, "columns").await),
            "U" => {
                let old = columns(client, &data, "identity").await;
                let mut new = columns(client, &data, "columns").await.unwrap();
                let old_row = old.as_ref().expect("REPLICA IDENTITY FULL logs the old row");
                if new.len() < old_row.len() {
                    unchanged_toast += 1;
                    new = old_row
                        .iter()
                        .map(|(name, v)| (name.clone(), lookup(&new, name).unwrap_or(v).clone()))
                        .collect();
                }
                ("update", old, Some(new))
            }
            "D" => ("delete", columns(client, &data, "identity").await, None),
            "T" => ("truncate", None, None),
            _ => continue,
        };
        out.push(Decoded { table, op, old, new });
    }
    (out, unchanged_toast)
}

/// A wal2json row's values as text. wal2json writes numbers as bare JSON numbers (2.5 has no
/// `numeric-data-types-as-string`), so Postgres' `json` operators, which return a number's
/// token as written, extract them: `serde_json` would round them to f64.
async fn columns(client: &tokio_postgres::Client, data: &str, field: &str) -> Option<Columns> {
    // wal2json writes bytea as bare hex, without `bytea_output`'s `\x`.
    let sql = "SELECT e->>'name',
                   CASE WHEN json_typeof(e->'value') = 'boolean' THEN left(e->>'value', 1)
                        WHEN e->>'type' = 'bytea' THEN '\\x' || (e->>'value') ELSE e->>'value' END
               FROM json_array_elements($1::text::json -> $2) WITH ORDINALITY AS x(e, i) ORDER BY i";
    let present: bool =
        client.query_one("SELECT $1::text::json -> $2 IS NOT NULL", &[&data, &field]).await.unwrap().get(0);
    let rows = client.query(sql, &[&data, &field]).await.unwrap();
    present.then(|| rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

fn lookup<'a>(columns: &'a Columns, name: &str) -> Option<&'a Option<String>> {
    columns.iter().find(|(n, _)| n == name).map(|(_, v)| v)
}

/// [`pg_text`] as wal2json shows it: it writes a number column's NaN and infinities as JSON
/// null, like SQL NULL (inside arrays they are text and stay).
fn wal2json_text(value: &Value) -> Option<String> {
    match value {
        Value::Numeric(n) if ["NaN", "Infinity", "-Infinity"].contains(&n.as_str()) => None,
        other => pg_text(other),
    }
}

/// A decoded value as Postgres writes it (ISO dates, UTC, `array_out`'s quoting), written
/// here from the documented output formats rather than by August's code.
fn pg_text(value: &Value) -> Option<String> {
    Some(match value {
        Value::Null => return None,
        Value::Bool(b) => if *b { "t" } else { "f" }.to_string(),
        Value::Int(i) => i.to_string(),
        Value::Numeric(s) | Value::Text(s) | Value::Json(s) => s.clone(),
        Value::Bytes(b) => format!("\\x{}", hex::encode(b)),
        Value::Uuid(u) => u.to_string(),
        Value::Date(d) => pg_date(*d, ""),
        Value::Time(t) => pg_time(*t),
        Value::Timestamp(t) => pg_date(t.date(), &pg_time(t.time())),
        Value::TimestampTz(t) => pg_date(t.date_naive(), &format!("{}+00", pg_time(t.time()))),
        Value::Array(items) => {
            let items: Vec<String> = items
                .iter()
                .map(|item| match (item, pg_text(item)) {
                    (Value::Array(_), Some(nested)) => nested,
                    (_, None) => "NULL".to_string(),
                    (_, Some(text)) => array_element(&text),
                })
                .collect();
            format!("{{{}}}", items.join(","))
        }
    })
}

fn array_element(text: &str) -> String {
    let special = |c: char| matches!(c, '"' | '\\' | '{' | '}' | ',' | ' ' | '\t' | '\n' | '\r' | '\u{0b}' | '\u{0c}');
    if text.is_empty() || text.eq_ignore_ascii_case("NULL") || text.contains(special) {
        let escaped: String =
            text.chars().flat_map(|c| (c == '"' || c == '\\').then_some('\\').into_iter().chain([c])).collect();
        format!("\"{escaped}\"")
    } else {
        text.to_string()
    }
}

fn pg_date(d: NaiveDate, time: &str) -> String {
    let (year, era) = if d.year() > 0 { (d.year(), "") } else { (1 - d.year(), " BC") };
    let time = if time.is_empty() { String::new() } else { format!(" {time}") };
    format!("{year:04}-{:02}-{:02}{time}{era}", d.month(), d.day())
}

fn pg_time(t: NaiveTime) -> String {
    let micros = t.nanosecond() / 1000;
    let base = format!("{:02}:{:02}:{:02}", t.hour(), t.minute(), t.second());
    if micros == 0 {
        base
    } else {
        format!("{base}.{micros:06}").trim_end_matches('0').to_string()
    }
}

/// xorshift64*: seeded, so a failure reruns exactly.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

struct Workload {
    rng: Rng,
    next_id: i64,
}

/// Characters that have tripped decoders: quotes, backslashes, array syntax, ASCII and
/// non-ASCII whitespace, and text spelled like NULL.
const PIECES: &[&str] = &[
    "a", "Z", "7", " ", "\t", "\n", "\r", "\u{0b}", "\u{0c}", "\u{a0}", "\u{2003}", "\"", "'", "\\", "{", "}", ",",
    "null", "NULL", "NuLl", "é", "ß", "日本", "🦀", "\u{200b}", "\\x", "[0:1]=", "$$", "\u{7f}",
];

/// A SQL string literal (standard conforming: only `'` needs doubling).
fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

impl Workload {
    /// One transaction's SQL, and how many row changes it commits (roughly).
    fn transaction(&mut self) -> (String, usize) {
        let rng = &mut self.rng;
        if rng.chance(2) {
            return ("TRUNCATE differential_things".into(), 1);
        }
        let mut sql = String::from("BEGIN;\n");
        let mut n = 0;
        for _ in 0..=self.rng.below(4) {
            let statement = self.statement();
            if self.rng.chance(15) {
                sql += &format!("SAVEPOINT s; {statement}; {}; ROLLBACK TO SAVEPOINT s;\n", self.statement());
            } else {
                sql += &format!("{statement};\n");
                n += 1;
            }
        }
        sql += if self.rng.chance(5) { "ROLLBACK;" } else { "COMMIT;" };
        (sql, n)
    }

    fn statement(&mut self) -> String {
        let notes = self.rng.chance(25);
        let existing = |rng: &mut Rng, table: &str| {
            format!("(SELECT id FROM {table} ORDER BY id LIMIT 1 OFFSET {})", rng.below(8))
        };
        match (notes, self.rng.below(10)) {
            (false, 0..=3) => {
                let id = self.next_id();
                let columns: Vec<(&str, String)> = THINGS.iter().map(|c| (*c, self.thing_value(c))).collect();
                let (names, values): (Vec<_>, Vec<_>) = columns.into_iter().unzip();
                format!(
                    "INSERT INTO differential_things (id, {}) VALUES ({id}, {})",
                    names.join(", "),
                    values.join(", ")
                )
            }
            (false, 4..=7) => {
                let sets = self.sets(THINGS, Self::thing_value);
                format!(
                    "UPDATE differential_things SET {sets} WHERE id = {}",
                    existing(&mut self.rng, "differential_things")
                )
            }
            (false, 8) => {
                let id = self.next_id();
                format!(
                    "UPDATE differential_things SET id = {id} WHERE id = {}",
                    existing(&mut self.rng, "differential_things")
                )
            }
            (false, _) => {
                format!("DELETE FROM differential_things WHERE id = {}", existing(&mut self.rng, "differential_things"))
            }
            (true, 0..=3) => {
                let id = format!("'00000000-0000-4000-8000-{:012x}'", self.next_id());
                let columns: Vec<(&str, String)> = NOTES.iter().map(|c| (*c, self.note_value(c))).collect();
                let (names, values): (Vec<_>, Vec<_>) = columns.into_iter().unzip();
                format!("INSERT INTO deepcura_notes (id, {}) VALUES ({id}, {})", names.join(", "), values.join(", "))
            }
            (true, 4..=8) => {
                let sets = self.sets(NOTES, Self::note_value);
                format!("UPDATE deepcura_notes SET {sets} WHERE id = {}", existing(&mut self.rng, "deepcura_notes"))
            }
            (true, _) => format!("DELETE FROM deepcura_notes WHERE id = {}", existing(&mut self.rng, "deepcura_notes")),
        }
    }

    fn next_id(&mut self) -> i64 {
        self.next_id += 1;
        self.next_id
    }

    /// A few columns set to new values; the TOASTed column is mostly left alone.
    fn sets(&mut self, columns: &[&str], value: fn(&mut Self, &str) -> String) -> String {
        let mut sets = vec![];
        while sets.is_empty() {
            for column in columns {
                let toasted = *column == "big" || *column == "transcript";
                if self.rng.chance(if toasted { 3 } else { 20 }) {
                    sets.push(format!("{column} = {}", value(self, column)));
                }
            }
        }
        sets.join(", ")
    }

    fn text(&mut self, max: u64) -> String {
        (0..self.rng.below(max + 1)).map(|_| self.rng.pick(PIECES)).collect()
    }

    fn digits(&mut self, max: u64) -> String {
        // No leading zeros, which JSON forbids.
        let n = 1 + self.rng.below(max);
        let digits: String = (0..n).map(|_| char::from(b'0' + self.rng.below(10) as u8)).collect();
        match digits.trim_start_matches('0') {
            "" => "0".into(),
            digits => digits.into(),
        }
    }

    fn json(&mut self, depth: u32) -> String {
        let rng = &mut self.rng;
        match rng.below(if depth == 0 { 4 } else { 6 }) {
            0 => rng.pick(&["null", "true", "false", "-0", "1.0E+2", "1e400", "-1e-400", "0.1"]).to_string(),
            1 => {
                let (int, frac) = (self.digits(40), self.digits(30));
                format!("{}{int}.{frac}", self.rng.pick(&["", "-"]))
            }
            2 => self.digits(25),
            3 => serde_json::Value::String(self.text(6)).to_string(),
            4 => {
                let items: Vec<String> = (0..self.rng.below(4)).map(|_| self.json(depth - 1)).collect();
                format!("[{}]", items.join(", "))
            }
            _ => {
                let items: Vec<String> = (0..self.rng.below(4))
                    .map(|_| format!("{}: {}", serde_json::Value::String(self.text(3)), self.json(depth - 1)))
                    .collect();
                format!("{{{}}}", items.join(",\n "))
            }
        }
    }

    fn array(&mut self, element: fn(&mut Self) -> String, cast: &str) -> String {
        if self.rng.chance(10) {
            return format!("'{{}}'::{cast}");
        }
        let items: Vec<String> = (0..1 + self.rng.below(4))
            .map(|_| if self.rng.chance(20) { "NULL".into() } else { element(self) })
            .collect();
        format!("ARRAY[{}]::{cast}", items.join(", "))
    }

    fn date(&mut self) -> String {
        let rng = &mut self.rng;
        match rng.below(8) {
            0 => rng
                .pick(&["infinity", "-infinity", "0044-03-15 BC", "4713-01-01 BC", "10000-01-01", "0001-01-01"])
                .into(),
            _ => format!("{:04}-{:02}-{:02}", 1900 + rng.below(200), 1 + rng.below(12), 1 + rng.below(28)),
        }
    }

    fn time(&mut self) -> String {
        let rng = &mut self.rng;
        if rng.chance(5) {
            return "24:00:00".into();
        }
        let fraction = match rng.below(3) {
            0 => String::new(),
            1 => format!(".{}", rng.below(1000)),
            _ => format!(".{:06}", rng.below(1_000_000)),
        };
        format!("{:02}:{:02}:{:02}{fraction}", rng.below(24), rng.below(60), rng.below(60))
    }

    fn timestamp(&mut self, zone: bool) -> String {
        if self.rng.chance(10) {
            return self.rng.pick(&["infinity", "-infinity", "0044-03-15 12:00:00 BC", "10000-01-01 00:00:00"]).into();
        }
        let date = Some(self.date()).filter(|d| !d.contains("infinity")).unwrap_or_else(|| "2026-01-01".into());
        let time = self.time().replace("24:00:00", "23:59:59");
        let offset = if zone { self.rng.pick(&["+00", "-05", "+05:30", "+14"]) } else { "" };
        match date.strip_suffix(" BC") {
            Some(date) => format!("{date} {time}{offset} BC"),
            None => format!("{date} {time}{offset}"),
        }
    }

    fn thing_value(&mut self, column: &str) -> String {
        if column != "big" && self.rng.chance(10) {
            return "NULL".into();
        }
        let rng = &mut self.rng;
        match column {
            "i2" => rng.pick(&["-32768", "32767", "0", "-1", "42"]).into(),
            "i4" => format!("{}", rng.next() as i32),
            "i8" => format!("{}", rng.next() as i64),
            "n" => match rng.below(6) {
                0 => quote(rng.pick(&["NaN", "Infinity", "-Infinity", "-0.000", "0"])),
                _ => format!("{}{}.{}", self.rng.pick(&["", "-"]), self.digits(60), self.digits(40)),
            },
            "f4" | "f8" => match rng.below(3) {
                0 => quote(rng.pick(&["NaN", "Infinity", "-Infinity", "-0", "1e-45", "3.4028235e38", "5e-324"])),
                _ if column == "f4" => {
                    format!("{:e}", Some(f32::from_bits(rng.next() as u32)).filter(|f| f.is_finite()).unwrap_or(0.0))
                }
                _ => format!("{:e}", Some(f64::from_bits(rng.next())).filter(|f| f.is_finite()).unwrap_or(0.0)),
            }
            .replace("5e-324", if column == "f4" { "1e-45" } else { "5e-324" }),
            "b" => rng.pick(&["true", "false"]).into(),
            "t" => quote(&self.text(12)),
            "vc" => quote(&self.text(20).chars().take(20).collect::<String>()),
            "bp" => quote(&self.text(5).chars().take(5).collect::<String>()),
            "u" => format!("'{:016x}{:016x}'::uuid", rng.next(), rng.next()),
            "d" => quote(&self.date()),
            "tm" => quote(&self.time()),
            "ts" => quote(&self.timestamp(false)),
            "tstz" => quote(&self.timestamp(true)),
            "j" => quote(&self.json(3)),
            "js" => quote(&format!(" {}\n", self.json(3))),
            "texts" => self.array(|w| quote(&w.text(6)), "text[]"),
            "ints" => match rng.below(4) {
                0 => "'{{1,2},{3,NULL}}'::int[]".into(),
                _ => self.array(|w| (w.rng.next() as i32).to_string(), "int[]"),
            },
            "nums" => self.array(|w| quote(&format!("{}.{}", w.digits(30), w.digits(10))), "numeric[]"),
            "jsonbs" => self.array(|w| quote(&w.json(2)), "jsonb[]"),
            "dates" => self.array(|w| quote(&w.date()), "date[]"),
            "tstzs" => self.array(|w| quote(&w.timestamp(true)), "timestamptz[]"),
            "bytes" => {
                let n = rng.below(9) as usize;
                format!("'\\x{}'::bytea", hex::encode(&rng.next().to_le_bytes()[..n]))
            }
            "iv" => quote(rng.pick(&["1 day", "-1 year 2 mons", "00:00:00.000001", "1000000 hours", "0"])),
            "big" => {
                let piece = self.text(40);
                quote(&piece.repeat(1 + (4000 / (piece.len() + 1))))
            }
            other => unreachable!("{other}"),
        }
    }

    fn note_value(&mut self, column: &str) -> String {
        let rng = &mut self.rng;
        match column {
            "drchrono_patient_id" => format!("{}", rng.next() as i64),
            "session_date" => quote(&self.date()),
            "transcript" => {
                let piece = self.text(40);
                quote(&piece.repeat(1 + (4000 / (piece.len() + 1))))
            }
            "soap_plan" | "drchrono_appt_id" => quote(&self.text(12)),
            "icd10_suggestions" | "medications_mentioned" => {
                let items: Vec<String> = (0..self.rng.below(3)).map(|_| self.json(2)).collect();
                quote(&format!("[{}]", items.join(", ")))
            }
            "risk_assessment" => {
                let level = rng.pick(&["low", "moderate", "high"]);
                quote(&format!(r#"{{"level": "{level}", "factors": {}}}"#, self.json(2)))
            }
            "raw_payload" => quote(&self.json(4)),
            "needs_review" => rng.pick(&["true", "false"]).into(),
            "linked_at" => quote(&self.timestamp(true)),
            other => unreachable!("{other}"),
        }
    }
}

const THINGS: &[&str] = &[
    "i2", "i4", "i8", "n", "f4", "f8", "b", "t", "vc", "bp", "u", "d", "tm", "ts", "tstz", "j", "js", "texts", "ints",
    "nums", "jsonbs", "dates", "tstzs", "bytes", "iv", "big",
];

const NOTES: &[&str] = &[
    "drchrono_patient_id",
    "session_date",
    "transcript",
    "soap_plan",
    "drchrono_appt_id",
    "icd10_suggestions",
    "medications_mentioned",
    "risk_assessment",
    "raw_payload",
    "needs_review",
    "linked_at",
];
