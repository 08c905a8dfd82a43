//! Any sequence of changes: the incremental views equal a from-scratch computation after every
//! transaction, and 1 and 4 workers give the same output.

use august_cdc::Value;
use august_dataflow::{reference, DataflowConfig};

use crate::model::{random_write, row, Db, Pipeline, Rng};

/// One random transaction: a few writes, sometimes a delete or an appointment renamed.
fn random_transaction(db: &mut Db, rng: &mut Rng) -> Vec<august_cdc::Event> {
    if rng.chance(5) {
        let (from, to) = (rng.pick(&["A1", "A2", "A3"]), rng.pick(&["A4", "A5", "A6"]));
        let events = db.rename_appointment(from, to);
        if !events.is_empty() {
            return events;
        }
    }
    let writes = (0..1 + rng.below(3)).map(|_| random_write(rng)).collect();
    let mut deletes = Vec::new();
    if rng.chance(15) && !db.rows.is_empty() {
        let index = rng.below(db.rows.len() as u64) as usize;
        let ((table, key), _) = db.rows.iter().nth(index).unwrap();
        let table: &'static str = august_dataflow::tables::table(table).unwrap().name;
        deletes.push((table, key.clone()));
    }
    db.transaction(writes, deletes)
}

#[tokio::test]
async fn incremental_views_equal_a_computation_from_scratch_after_every_step() {
    for seed in [1u64, 2, 3] {
        let mut rng = Rng::new(seed);
        let mut db = Db::default();
        let mut pipeline = Pipeline::start(2);
        for step in 0..150 {
            let events = random_transaction(&mut db, &mut rng);
            pipeline.apply(events, db.lsn()).await;
            let expected = reference::compute(&db.live());
            if pipeline.views != expected {
                for (view, rows) in &expected {
                    if pipeline.views.get(view) != Some(rows) {
                        panic!(
                            "seed {seed}, step {step}: view {view} differs\n incremental: {:?}\n expected:    {rows:?}",
                            pipeline.views.get(view)
                        );
                    }
                }
                panic!(
                    "seed {seed}, step {step}: the incremental views hold extra views: {:?}",
                    pipeline.views.keys().collect::<Vec<_>>()
                );
            }
        }
        assert!(pipeline.views.get("deepcura_links").is_some_and(|v| !v.is_empty()), "the sequence exercised links");
        pipeline.stop();
    }
}

#[tokio::test]
async fn one_and_four_workers_give_identical_output() {
    let mut outputs = Vec::new();
    for workers in [1, 4] {
        let mut rng = Rng::new(42);
        let mut db = Db::default();
        let mut pipeline = Pipeline::start(workers);
        for _ in 0..80 {
            let events = random_transaction(&mut db, &mut rng);
            pipeline.apply(events, db.lsn()).await;
        }
        outputs.push(std::mem::take(&mut pipeline.log));
        pipeline.stop();
    }
    assert!(outputs[0].len() > 40);
    assert_eq!(outputs[0], outputs[1]);
}

#[tokio::test]
async fn two_processes_give_the_same_output_as_one() {
    let run = |config: Option<DataflowConfig>| async move {
        let mut rng = Rng::new(7);
        let mut db = Db::default();
        let mut pipeline = match config {
            Some(config) => Pipeline::start_with(config),
            None => Pipeline::start(1),
        };
        for _ in 0..40 {
            let events = random_transaction(&mut db, &mut rng);
            pipeline.apply(events, db.lsn()).await;
        }
        let log = std::mem::take(&mut pipeline.log);
        pipeline.stop();
        log
    };
    let single = run(None).await;

    let ports: Vec<u16> =
        (0..2).map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()).collect();
    let addresses: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
    let peer_addresses = addresses.clone();
    // Process 1 computes only; it connects to process 0 and ends when the dataflow does.
    let peer = std::thread::spawn(move || {
        let (_events, rx) = tokio::sync::mpsc::channel(1);
        let (tx, _output) = tokio::sync::mpsc::channel(1);
        let dataflow = august_dataflow::spawn(
            &DataflowConfig { workers: 2, cluster: Some((1, peer_addresses)), ..DataflowConfig::default() },
            rx,
            tx,
        )
        .unwrap();
        dataflow.join().unwrap();
    });
    let clustered =
        run(Some(DataflowConfig { workers: 2, cluster: Some((0, addresses)), ..DataflowConfig::default() })).await;
    peer.join().unwrap();
    assert_eq!(single, clustered);
}

#[tokio::test]
async fn a_note_arriving_before_its_clinical_note_is_linked_when_the_clinical_note_arrives() {
    let mut db = Db::default();
    let mut pipeline = Pipeline::start(1);
    let note = row(
        "deepcura_notes",
        &[
            ("id", Value::Text("n1".into())),
            ("drchrono_patient_id", Value::Int(7)),
            ("drchrono_appt_id", Value::Text("A9".into())),
            ("session_date", Value::Date(chrono::NaiveDate::from_ymd_opt(2026, 3, 2).unwrap())),
        ],
    );
    let events = db.transaction(vec![("deepcura_notes", note)], vec![]);
    pipeline.apply(events, db.lsn()).await;
    let link = &pipeline.views["deepcura_links"][&Value::Text("n1".into())];
    assert_eq!(link[7], Value::Text("no_match".into()));
    assert!(pipeline.views["deepcura_review"].contains_key(&Value::Text("n1".into())));

    let clinical_note =
        row("clinical_notes", &[("drchrono_id", Value::Text("A9".into())), ("locked", Value::Bool(true))]);
    let events = db.transaction(vec![("clinical_notes", clinical_note)], vec![]);
    pipeline.apply(events, db.lsn()).await;
    let link = &pipeline.views["deepcura_links"][&Value::Text("n1".into())];
    assert_eq!(
        (&link[5], &link[6], &link[7]),
        (&Value::Text("A9".into()), &Value::Text("appointment_id".into()), &Value::Text("linked".into()))
    );
    assert!(!pipeline.views.contains_key("deepcura_review"), "no longer needs review");

    let events = db.transaction(vec![], vec![("clinical_notes", vec![Value::Text("A9".into())])]);
    pipeline.apply(events, db.lsn()).await;
    assert_eq!(
        pipeline.views["deepcura_links"][&Value::Text("n1".into())][7],
        Value::Text("no_match".into()),
        "unlinked again"
    );
    pipeline.stop();
}

#[tokio::test]
async fn a_phone_change_updates_that_patients_scheduling_rows_and_nothing_else() {
    let mut db = Db::default();
    let mut pipeline = Pipeline::start(1);
    let patient = |id: i64, phone: &str| {
        row("patients", &[("drchrono_id", Value::Int(id)), ("cell_phone", Value::Text(phone.into()))])
    };
    let appointment = |id: &str, patient: i64| {
        row("appointments", &[("drchrono_id", Value::Text(id.into())), ("patient_id", Value::Int(patient))])
    };
    let events = db.transaction(
        vec![
            ("patients", patient(1, "555-0100")),
            ("patients", patient(2, "555-0200")),
            ("appointments", appointment("A1", 1)),
            ("appointments", appointment("A2", 1)),
            ("appointments", appointment("A3", 2)),
        ],
        vec![],
    );
    pipeline.apply(events, db.lsn()).await;
    let before = pipeline.log.len();

    let events = db.transaction(vec![("patients", patient(1, "555-0111"))], vec![]);
    pipeline.apply(events, db.lsn()).await;
    let august_dataflow::Output::Updates { updates, .. } = &pipeline.log[before] else { unreachable!() };
    let scheduling: Vec<&Value> = updates.iter().filter(|u| u.view == "scheduling_ops").map(|u| &u.key).collect();
    assert_eq!(
        scheduling,
        [&Value::Text("A1".into()), &Value::Text("A2".into())],
        "both of the patient's rows, not patient 2's"
    );
    let views: Vec<&str> = updates.iter().map(|u| u.view).collect();
    assert_eq!(views, ["scheduling_ops", "scheduling_ops", "patients"], "and nothing else");
    assert_eq!(pipeline.views["scheduling_ops"][&Value::Text("A1".into())][8], Value::Text("555-0111".into()));
    pipeline.stop();
}
