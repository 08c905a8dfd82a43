//! Replication slots are shared by every database of a cluster: each database gets its own
//! default slot, an old `august` slot keeps working for its database, and a slot of another
//! database is refused before anything is copied.

use august_cdc::slot::{choose_slot, default_slot_name, drop_slot, is_valid_slot_name, prepare_slot, LEGACY_SLOT};
use august_cdc::CdcError;

async fn slot_database(client: &tokio_postgres::Client, slot: &str) -> Option<String> {
    client
        .query_opt("SELECT database::text FROM pg_replication_slots WHERE slot_name = $1", &[&slot])
        .await
        .unwrap()
        .and_then(|row| row.get(0))
}

#[test]
fn default_names_follow_the_slot_name_rules() {
    assert_eq!(default_slot_name("clinic"), "august_clinic");
    let (dashed, underscored) = (default_slot_name("Clinic-A"), default_slot_name("clinic_a"));
    assert_ne!(dashed, underscored, "names that differ only in what sanitising changes stay apart");
    assert!(dashed.starts_with("august_clinic_a_"), "{dashed}");
    let long = default_slot_name(&"production_clinic_".repeat(6));
    assert!(long.len() <= 63 && long.starts_with("august_production_clinic_"), "{long}");
    assert_ne!(long, default_slot_name(&"production_clinic_".repeat(7)), "truncated names keep their hash");
    for name in [dashed, underscored, long, default_slot_name("Ünïcode dätabase"), default_slot_name("")] {
        assert!(is_valid_slot_name(&name), "{name}");
    }
}

#[tokio::test]
async fn two_databases_on_one_cluster_each_get_their_own_default_slot() {
    let (a, b) = (august_testkit::fresh_db("slot_default_a").await, august_testkit::fresh_db("slot_default_b").await);
    let (ca, cb) = (a.client().await, b.client().await);
    let (slot_a, slot_b) = (choose_slot(&ca, None).await.unwrap(), choose_slot(&cb, None).await.unwrap());
    assert_ne!(slot_a, slot_b);
    assert!(slot_a.contains(&a.name) && slot_b.contains(&b.name), "{slot_a} {slot_b}");
    prepare_slot(&ca, &a.config(), &slot_a, false).await.unwrap();
    prepare_slot(&cb, &b.config(), &slot_b, false).await.unwrap();
    assert_eq!(slot_database(&ca, &slot_a).await, Some(a.name.clone()));
    assert_eq!(slot_database(&ca, &slot_b).await, Some(b.name.clone()));
    // The next start picks the same slots.
    assert_eq!(choose_slot(&ca, None).await.unwrap(), slot_a);
    assert_eq!(choose_slot(&cb, None).await.unwrap(), slot_b);
    drop_slot(&ca, &slot_a).await.unwrap();
    drop_slot(&cb, &slot_b).await.unwrap();
}

#[tokio::test]
async fn an_existing_august_slot_is_kept_and_another_databases_slot_is_refused() {
    let (a, b) = (august_testkit::fresh_db("slot_legacy_a").await, august_testkit::fresh_db("slot_legacy_b").await);
    let (ca, cb) = (a.client().await, b.client().await);
    prepare_slot(&ca, &a.config(), LEGACY_SLOT, false).await.unwrap();
    assert_eq!(choose_slot(&ca, None).await.unwrap(), LEGACY_SLOT, "the database that has `august` keeps it");
    assert_eq!(choose_slot(&ca, Some(LEGACY_SLOT)).await.unwrap(), LEGACY_SLOT);
    assert_eq!(choose_slot(&cb, None).await.unwrap(), default_slot_name(&b.name), "the other one gets its own");

    let refused = choose_slot(&cb, Some(LEGACY_SLOT)).await.unwrap_err();
    assert!(matches!(&refused, CdcError::SlotOfAnotherDatabase { database, .. } if *database == a.name), "{refused}");
    let message = refused.to_string();
    assert!(message.contains("AUGUST_SLOT") && message.contains(&a.name) && message.contains(&b.name), "{message}");
    assert_eq!(refused.kind(), august_schema::ErrorKind::Permanent);
    // Not even --resnapshot takes another database's slot.
    let refused = prepare_slot(&cb, &b.config(), LEGACY_SLOT, true).await.unwrap_err();
    assert!(matches!(refused, CdcError::SlotOfAnotherDatabase { .. }), "{refused}");
    assert_eq!(slot_database(&cb, LEGACY_SLOT).await, Some(a.name.clone()), "the slot is untouched");
    drop_slot(&ca, LEGACY_SLOT).await.unwrap();
}
