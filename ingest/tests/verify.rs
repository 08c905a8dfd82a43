//! `august verify`'s DrChrono half against the emulator and a real Postgres: whole lists when
//! the hour's budget allows, samples when it does not, and differing rows named by id.

use std::time::Duration;

use august_ingest::drchrono::feeds::feeds_for;
use august_ingest::drchrono::verify::verify;

use super::pull::{emulator, quota_off, settings, sync, syncer, syncer_with};

#[tokio::test]
async fn verify_compares_whole_lists_then_samples_when_the_budget_is_short() {
    let db = august_testkit::fresh_db("verify_drchrono").await;
    let drchrono = emulator(quota_off(60)).await;
    let loader = syncer(&db, &drchrono).await;
    let options = august_ingest::drchrono::pull::PullOptions {
        full: false,
        since: None,
        priority: august_ingest::drchrono::budget::Priority::Manual,
    };
    assert_eq!(sync(&loader, &["all"], options).await.status, "succeeded");
    let feeds = feeds_for(["all"]).unwrap();

    let reports = verify(loader.client(), loader.pool(), &feeds).await.unwrap();
    assert!(reports.iter().all(|r| r.whole && r.equal()), "{reports:#?}");
    assert!(reports.iter().any(|r| r.table == "insurance_records"), "nested rows are compared too");
    let patients = reports.iter().find(|r| r.table == "patients").unwrap();
    assert_eq!(patients.drchrono_rows as usize, drchrono.counts()["patients"]);

    // A mirror edited behind DrChrono's back: named by id, nothing else.
    let tampered = drchrono.objects("appointments")[2]["id"].as_str().unwrap().to_string();
    let client = db.client().await;
    client
        .batch_execute(&format!(
            "BEGIN; SET LOCAL app.actor = 'august_migrate';
             UPDATE appointments SET reason = 'edited by hand' WHERE drchrono_id = '{tampered}'; COMMIT;"
        ))
        .await
        .unwrap();
    let reports = verify(loader.client(), loader.pool(), &feeds).await.unwrap();
    let appointments = reports.iter().find(|r| r.table == "appointments").unwrap();
    assert_eq!((appointments.differing_total, appointments.differing.clone()), (1, vec![tampered]));
    assert!(reports.iter().filter(|r| r.table != "appointments").all(|r| r.equal()));

    // A new hour (the loads above spent this one), with eight calls for eight feeds: one page
    // each, compared as a sample.
    client.batch_execute("DELETE FROM drchrono_call_budget").await.unwrap();
    let short = syncer_with(&db, settings(&drchrono, 8, 0, Duration::from_secs(3600))).await;
    let calls_before = drchrono.stats().api_calls;
    let sampled = verify(short.client(), short.pool(), &feeds).await.unwrap();
    assert_eq!(drchrono.stats().api_calls - calls_before, 8, "within the budget");
    let appointments = sampled.iter().find(|r| r.table == "appointments").unwrap();
    assert!(!appointments.whole && appointments.pages == 1, "{appointments:?}");
    assert!(sampled.iter().filter(|r| r.table != "appointments").all(|r| r.equal()), "{sampled:#?}");
    let refused = verify(short.client(), short.pool(), &feeds).await;
    assert!(refused.is_err(), "no calls left: no verification rather than an empty one");
}
