//! Through `cdc` on a real Postgres: the table specs match the schema, a Deep Cura note
//! inserted before its clinical note is linked when it arrives, and a patient's phone change
//! updates their scheduling rows and nothing else; write-back notices come out before their
//! transaction's updates, and alone when it changed nothing.

use std::collections::BTreeSet;
use std::time::Duration;

use august_cdc::{CdcConfig, Lsn, Value};
use august_dataflow::tables::TABLES;
use august_dataflow::{DataflowConfig, Output, ViewUpdate};
use tokio::sync::{mpsc, watch};

/// cdc → dataflow on a test database; collects the output.
pub(crate) struct Live {
    output: mpsc::Receiver<Output>,
    durable: watch::Sender<Lsn>,
    pub updates: Vec<ViewUpdate>,
    /// Every output, in order.
    pub log: Vec<Output>,
    /// The order outputs came in: updates, and notices with their LSN and keys.
    order: Vec<Seen>,
    frontier: Lsn,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Seen {
    Updates,
    Notices(Lsn, Vec<String>),
}

impl Live {
    pub(crate) fn start(db: &august_testkit::TestDb) -> Self {
        let (durable, watch) = watch::channel(Lsn::ZERO);
        let config =
            CdcConfig { slot: db.name.clone(), heartbeat: Some(Duration::from_millis(200)), ..CdcConfig::default() };
        let stream = august_cdc::start(db.config(), config, watch);
        let (events, rx) = mpsc::channel(1024);
        let (tx, output) = mpsc::channel(1024);
        let dataflow = august_dataflow::spawn(&DataflowConfig::default(), rx, tx).unwrap();
        tokio::spawn(august_dataflow::feed(stream, events, std::future::pending()));
        std::thread::spawn(move || dataflow.join());
        Self { output, durable, updates: Vec::new(), log: Vec::new(), order: Vec::new(), frontier: Lsn::ZERO }
    }

    /// Collects output until the frontier passes everything committed so far.
    pub(crate) async fn catch_up(&mut self, client: &tokio_postgres::Client) {
        let target: String = client.query_one("SELECT pg_current_wal_lsn()::text", &[]).await.unwrap().get(0);
        let target: Lsn = target.parse().unwrap();
        while self.frontier <= target {
            let output = tokio::time::timeout(Duration::from_secs(30), self.output.recv())
                .await
                .expect("output in time")
                .unwrap();
            self.log.push(output.clone());
            match output {
                Output::Updates { updates, .. } => {
                    self.order.push(Seen::Updates);
                    self.updates.extend(updates)
                }
                Output::Notices { lsn, notices } => {
                    self.order.push(Seen::Notices(lsn, notices.iter().map(|n| n.notice.key.clone()).collect()))
                }
                Output::Trace { .. } => {}
                Output::Frontier(lsn) => {
                    self.frontier = lsn;
                    self.durable.send_replace(lsn);
                }
            }
        }
    }

    fn take(&mut self) -> Vec<ViewUpdate> {
        std::mem::take(&mut self.updates)
    }
}

#[tokio::test]
async fn the_table_specs_match_the_migrated_schema() {
    let db = august_testkit::fresh_db("dataflow_specs").await;
    let client = db.client().await;
    let published: BTreeSet<String> = client
        .query("SELECT tablename::text FROM pg_publication_tables WHERE pubname = 'august_cdc'", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(published, TABLES.iter().map(|t| t.name.to_string()).collect());
    for table in TABLES {
        let columns: Vec<String> = client
            .query("SELECT attname::text FROM pg_attribute WHERE attrelid = $1::text::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum", &[&table.name])
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert_eq!(columns, table.columns, "{}", table.name);
        let unique: bool = client
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = $1::text::regclass AND i.indisunique
                   AND (SELECT array_agg(a.attname::text ORDER BY a.attname) FROM pg_attribute a
                         WHERE a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)) = (SELECT array_agg(k ORDER BY k) FROM unnest($2::text[]) k))",
                &[&table.name, &table.key.iter().map(|k| k.to_string()).collect::<Vec<_>>()],
            )
            .await
            .unwrap()
            .get(0);
        assert!(unique, "{}: the natural key {:?} is unique in Postgres", table.name, table.key);
    }
}

/// Every column of every table in the schema has a PHI class: a published table's from its
/// spec (checked above to match the table), any other's from its `phi:<class>` column comment
/// (migration 0015), so a column added without a class fails here. Partitions share their
/// parent's columns and are skipped.
#[tokio::test]
async fn every_column_of_the_schema_has_a_phi_class() {
    let db = august_testkit::fresh_db("dataflow_phi_schema").await;
    let client = db.client().await;
    let rows = client
        .query(
            "SELECT c.relname::text, a.attname::text, col_description(c.oid, a.attnum)
               FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
               JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
              WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND NOT c.relispartition
              ORDER BY 1, a.attnum",
            &[],
        )
        .await
        .unwrap();
    let mut unclassed = Vec::new();
    let mut seen = BTreeSet::new();
    for row in &rows {
        let (table, column, comment): (String, String, Option<String>) = (row.get(0), row.get(1), row.get(2));
        seen.insert(table.clone());
        let class = match august_dataflow::tables::table(&table) {
            Some(spec) => spec.class(&column),
            None => comment
                .as_deref()
                .and_then(|c| c.strip_prefix("phi:"))
                .and_then(|c| august_dataflow::phi::PhiClass::parse(c.split(';').next().unwrap_or_default().trim())),
        };
        if class.is_none() {
            unclassed.push(format!("{table}.{column}"));
        }
    }
    assert!(unclassed.is_empty(), "columns with no PHI class: {unclassed:?}");
    for table in ["change_log", "access_log", "coda_disclosures", "sync_log", "sink_dead_letters", "patients"] {
        assert!(seen.contains(table), "{table} was checked");
    }
    let value_columns = "SELECT col_description('change_log'::regclass, attnum) FROM pg_attribute
                          WHERE attrelid = 'change_log'::regclass AND attname = 'new_values'";
    let class: Option<String> = client.query_one(value_columns, &[]).await.unwrap().get(0);
    assert!(class.unwrap_or_default().starts_with("phi:direct;"), "audited values are PHI of every class");
}

#[tokio::test]
async fn a_deepcura_note_before_its_clinical_note_is_linked_when_it_arrives() {
    let db = august_testkit::fresh_db("dataflow_e2e_link").await;
    let client = db.client().await;
    let mut live = Live::start(&db);
    client
        .batch_execute(
            "INSERT INTO patients (drchrono_id, first_name, last_name, drchrono_raw) VALUES (7, 'Ada', 'Lovelace', '{}');
             INSERT INTO appointments (drchrono_id, patient_id, scheduled_time, drchrono_raw) VALUES ('A-77', 7, '2026-03-02 10:00', '{}');
             INSERT INTO deepcura_notes (id, drchrono_patient_id, drchrono_appt_id, session_date, soap_plan, raw_payload)
             VALUES ('00000000-0000-0000-0000-0000000000aa', 7, NULL, '2026-03-02', 'follow up in 4 weeks', '{}');",
        )
        .await
        .unwrap();
    live.catch_up(&client).await;
    let note = Value::Uuid("00000000-0000-0000-0000-0000000000aa".parse().unwrap());
    let link = live.take().into_iter().rfind(|u| u.view == "deepcura_links" && u.key == note).unwrap();
    assert_eq!(link.row.unwrap()[7], Value::Text("no_match".into()));

    client
        .batch_execute(
            "INSERT INTO clinical_notes (drchrono_id, patient_id, locked, drchrono_raw) VALUES ('A-77', 7, true, '{}')",
        )
        .await
        .unwrap();
    live.catch_up(&client).await;
    let updates = live.take();
    let link = updates.iter().rfind(|u| u.view == "deepcura_links").unwrap().row.clone().unwrap();
    assert_eq!((&link[5], &link[6]), (&Value::Text("A-77".into()), &Value::Text("patient_date".into())));
    let enriched = updates.iter().rfind(|u| u.view == "clinical_notes").unwrap().row.clone().unwrap();
    assert_eq!(enriched[3], Value::Text("Ada Lovelace".into()));
    assert_eq!(enriched[12], Value::Text("follow up in 4 weeks".into()), "the SOAP plan enriches the clinical note");
    assert!(updates.iter().any(|u| u.view == "deepcura_review" && u.row.is_none()), "leaves the review list");
}

#[tokio::test]
async fn a_phone_change_updates_all_of_a_patients_scheduling_rows_and_nothing_else() {
    let db = august_testkit::fresh_db("dataflow_e2e_phone").await;
    let client = db.client().await;
    client
        .batch_execute(
            "INSERT INTO patients (drchrono_id, first_name, cell_phone, drchrono_raw) VALUES (1, 'Ada', '555-0100', '{}'), (2, 'Alan', '555-0200', '{}');
             INSERT INTO appointments (drchrono_id, patient_id, drchrono_raw) VALUES ('A1', 1, '{}'), ('A2', 1, '{}'), ('A3', 2, '{}');",
        )
        .await
        .unwrap();
    let mut live = Live::start(&db);
    live.catch_up(&client).await;
    live.take();

    client.batch_execute("UPDATE patients SET cell_phone = '555-0111' WHERE drchrono_id = 1").await.unwrap();
    live.catch_up(&client).await;
    let updates = live.take();
    let touched: Vec<(&str, &Value)> = updates.iter().map(|u| (u.view, &u.key)).collect();
    assert_eq!(
        touched,
        [
            ("scheduling_ops", &Value::Text("A1".into())),
            ("scheduling_ops", &Value::Text("A2".into())),
            ("patients", &Value::Int(1))
        ],
        "the patient's two appointments and the patient, nothing else"
    );
    assert_eq!(updates[0].row.as_ref().unwrap()[8], Value::Text("555-0111".into()));
}

#[tokio::test]
async fn write_back_notices_come_out_before_their_updates_and_alone_when_nothing_changed() {
    use august_schema::writeback::{emit, Notice, EDIT_PREFIX, REFRESH_PREFIX};
    let db = august_testkit::fresh_db("dataflow_e2e_notices").await;
    let mut client = db.client().await;
    client
        .batch_execute(
            "INSERT INTO patients (drchrono_id, first_name, last_name, drchrono_raw) VALUES (7, 'Ada', 'Lovelace', '{}');
             INSERT INTO appointments (drchrono_id, patient_id, scheduled_time, drchrono_raw) VALUES ('A-7', 7, '2026-03-02 10:00', '{}');
             INSERT INTO intake_checklists (appointment_id, patient_id) VALUES ('A-7', 7);",
        )
        .await
        .unwrap();
    let mut live = Live::start(&db);
    live.catch_up(&client).await;
    live.order.clear();
    let notice = |key: &str| Notice { target: "intake".into(), key: key.into(), coda_row_id: None, fields: vec![] };

    let tx = client.transaction().await.unwrap();
    tx.execute("UPDATE intake_checklists SET status = 'in_progress' WHERE appointment_id = 'A-7'", &[]).await.unwrap();
    emit(&tx, EDIT_PREFIX, &notice("A-7")).await.unwrap();
    tx.commit().await.unwrap();
    live.catch_up(&client).await;
    let edit = live.order.clone();
    assert!(matches!(edit.as_slice(), [Seen::Notices(_, keys), Seen::Updates] if keys == &["A-7"]), "{edit:?}");

    live.order.clear();
    let tx = client.transaction().await.unwrap();
    emit(&tx, REFRESH_PREFIX, &notice("A-8")).await.unwrap();
    tx.commit().await.unwrap();
    live.catch_up(&client).await;
    let Seen::Notices(refresh_lsn, keys) = &live.order[0] else { panic!("{:?}", live.order) };
    assert_eq!((live.order.len(), keys.as_slice()), (1, ["A-8".to_string()].as_slice()));
    let Seen::Notices(edit_lsn, _) = &edit[0] else { unreachable!() };
    assert!(refresh_lsn > edit_lsn, "each at its own commit LSN");
}
