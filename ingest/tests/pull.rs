//! DrChrono pull sync against the in-repo DrChrono emulator and a real Postgres: backfill,
//! no-op re-runs, incremental changes, token expiry and refusal, 429s and 302s, the shared
//! budget, resuming a killed run, and claims.

use std::time::Duration;

use august_emulators::drchrono::{self, DrChronoConfig, DrChronoEmulator, Faults};
use august_ingest::drchrono::budget::Priority;
use august_ingest::drchrono::feeds::{feeds_for, FEEDS};
use august_ingest::drchrono::pull::{Progress, PullOptions};
use august_ingest::drchrono::runs::{RunSummary, StartError, Syncer};
use august_ingest::drchrono::{DrChronoClient, DrChronoSettings};
use august_schema::{PoolSettings, Secret};
use august_testkit::TestDb;

pub const TOKEN_KEY: &str = "a test key that seals the tokens";

pub async fn emulator(config: DrChronoConfig) -> DrChronoEmulator {
    drchrono::serve("127.0.0.1:0".parse().unwrap(), config).await.unwrap()
}

pub fn quota_off(patients: usize) -> DrChronoConfig {
    DrChronoConfig { patients, calls_per_window: None, ..DrChronoConfig::default() }
}

pub fn settings(emulator: &DrChronoEmulator, calls: u32, reserve: u32, window: Duration) -> DrChronoSettings {
    let config = DrChronoConfig::default();
    DrChronoSettings {
        api_base: emulator.base_url(),
        client_id: config.client_id,
        client_secret: Secret::new(config.client_secret),
        refresh_token: Some(Secret::new(config.refresh_token)),
        token_key: Secret::new(TOKEN_KEY.into()),
        calls_per_hour: calls,
        calls_reserve: reserve,
        rate_window: window,
    }
}

pub async fn syncer_with(db: &TestDb, settings: DrChronoSettings) -> Syncer {
    let pool = august_schema::connect_pool(&PoolSettings::default(), db.config()).await.unwrap();
    let client = DrChronoClient::connect(&settings, pool.clone(), db.config()).await.unwrap();
    Syncer::new(client, pool, db.config())
}

pub async fn syncer(db: &TestDb, emulator: &DrChronoEmulator) -> Syncer {
    syncer_with(db, settings(emulator, 100_000, 0, Duration::from_secs(3600))).await
}

pub fn manual(full: bool) -> PullOptions {
    PullOptions { full, since: None, priority: Priority::Manual }
}

pub async fn sync(syncer: &Syncer, resources: &[&str], options: PullOptions) -> RunSummary {
    let run = syncer.claim(feeds_for(resources.iter().copied()).unwrap(), options, "test").await.unwrap();
    run.run(tokio::sync::watch::channel(Progress::default()).0).await
}

/// Live rows of each mirror equal the emulator's objects.
async fn assert_mirrors_equal(db: &TestDb, emulator: &DrChronoEmulator) {
    let counts = emulator.counts();
    for (list, table) in [
        ("patients", "patients"),
        ("doctors", "providers"),
        ("appointments", "appointments"),
        ("clinical_notes", "clinical_notes"),
        ("medications", "medications"),
        ("problems", "problems"),
        ("allergies", "allergies"),
        ("line_items", "line_items"),
    ] {
        let live = db.count(&format!("SELECT count(*) FROM {table} WHERE deleted_at IS NULL")).await;
        assert_eq!(live as usize, counts[list], "{table}: Postgres has {live}, DrChrono {}", counts[list]);
    }
}

#[tokio::test]
async fn a_backfill_loads_every_resource_and_a_second_run_writes_nothing() {
    let db = august_testkit::fresh_db("pull_backfill").await;
    let emulator = emulator(quota_off(40)).await;
    let syncer = syncer(&db, &emulator).await;

    let first = sync(&syncer, &["all"], manual(false)).await;
    assert_eq!(first.status, "succeeded", "{:?}", first.error);
    assert_mirrors_equal(&db, &emulator).await;
    assert!(db.count("SELECT count(*) FROM insurance_records").await > 0, "verbose patients bring insurance");
    assert!(db.count("SELECT count(*) FROM allergies WHERE description IS NOT NULL").await > 0);
    assert_eq!(
        db.count("SELECT count(*) FROM change_log WHERE actor <> 'drchrono_sync'").await,
        0,
        "every write is attributed to the pull"
    );
    let calls = emulator.stats().api_calls as i64;
    assert_eq!(first.counts.pages as i64, calls, "one call per page");
    syncer.client().flush_access_log().await;
    assert_eq!(
        db.count("SELECT count(*) FROM access_log WHERE service = 'drchrono' AND path_template LIKE '/api/%'").await,
        calls,
        "every call has its access_log row"
    );

    let audit = db.count("SELECT count(*) FROM change_log").await;
    for options in [manual(false), manual(true)] {
        let again = sync(&syncer, &["all"], options).await;
        assert_eq!(again.status, "succeeded");
        assert_eq!((again.counts.inserted, again.counts.updated), (0, 0), "{:?}", again.counts);
        assert_eq!(db.count("SELECT count(*) FROM change_log").await, audit, "a re-run writes nothing");
    }
}

#[tokio::test]
async fn a_change_made_in_drchrono_arrives_on_the_next_incremental_run() {
    let db = august_testkit::fresh_db("pull_incremental").await;
    let emulator = emulator(quota_off(20)).await;
    let syncer = syncer(&db, &emulator).await;
    assert_eq!(sync(&syncer, &["all"], manual(false)).await.status, "succeeded");

    let patient = emulator.objects("patients")[3]["id"].as_i64().unwrap();
    let appointment = emulator.objects("appointments")[5]["id"].as_str().unwrap().to_string();
    let line_item = emulator.objects("line_items")[0]["id"].as_i64().unwrap();
    assert!(emulator.modify_patient(patient));
    assert!(emulator.modify_appointment(&appointment));
    assert!(emulator.delete_line_item(line_item));
    let audit = db.count("SELECT count(*) FROM change_log").await;

    let run = sync(&syncer, &["all"], PullOptions { priority: Priority::Scheduled, ..manual(false) }).await;
    assert_eq!(run.status, "succeeded", "{:?}", run.error);
    assert_eq!(run.counts.updated, 3, "exactly the three changes: {:?}", run.counts);
    assert!(run.counts.unchanged > 0, "the day's other objects are known unchanged");
    let changed = db.count(&format!("SELECT count(*) FROM change_log WHERE id > {audit}")).await;
    assert!(changed >= 3, "the changes are audited");
    let phone_now = emulator.objects("patients")[3]["cell_phone"].as_str().unwrap().to_string();
    let client = db.client().await;
    let stored: Option<String> =
        client.query_one("SELECT cell_phone FROM patients WHERE drchrono_id = $1", &[&patient]).await.unwrap().get(0);
    assert_eq!(stored.as_deref(), Some(phone_now.as_str()));
    let deleted = db
        .count(&format!("SELECT count(*) FROM line_items WHERE drchrono_id = {line_item} AND deleted_at IS NOT NULL"))
        .await;
    assert_eq!(deleted, 1, "a line item deleted in DrChrono is soft-deleted");
    assert_mirrors_equal(&db, &emulator).await;
}

#[tokio::test]
async fn an_expired_token_is_refreshed_and_the_run_continues_with_the_rotated_refresh_token() {
    let db = august_testkit::fresh_db("pull_token_expiry").await;
    let emulator = emulator(quota_off(10)).await;
    let syncer = syncer(&db, &emulator).await;
    assert_eq!(sync(&syncer, &["patients"], manual(false)).await.status, "succeeded");
    emulator.expire_access_tokens();
    let run = sync(&syncer, &["appointments", "providers"], manual(false)).await;
    assert_eq!(run.status, "succeeded", "{:?}", run.error);
    let stats = emulator.stats();
    assert_eq!(stats.unauthorized, 1, "one 401, then a refresh");
    assert_eq!(stats.token_refreshes, 2);

    // The rotated refresh token was stored: a new process (new client, same database) keeps
    // working after the old refresh token stopped working.
    emulator.expire_access_tokens();
    let restarted = self::syncer(&db, &emulator).await;
    assert_eq!(sync(&restarted, &["providers"], manual(false)).await.status, "succeeded");
    let client = db.client().await;
    let current = emulator.refresh_token().unwrap();
    let clear: i32 = client
        .query_one("SELECT position(convert_to($1, 'UTF8') IN refresh_token) FROM drchrono_oauth_tokens", &[&current])
        .await
        .unwrap()
        .get(0);
    assert_eq!(clear, 0, "the refresh token is not stored in clear");
}

#[tokio::test]
async fn a_refused_refresh_stops_the_run_with_the_reauthorisation_message() {
    let db = august_testkit::fresh_db("pull_refused_refresh").await;
    let emulator = emulator(quota_off(5)).await;
    let syncer = syncer(&db, &emulator).await;
    assert_eq!(sync(&syncer, &["providers"], manual(false)).await.status, "succeeded");
    emulator.refuse_refresh(true);
    emulator.expire_access_tokens();
    let run = sync(&syncer, &["all"], manual(false)).await;
    assert_eq!(run.status, "failed");
    let error = run.error.unwrap();
    assert!(error.contains("re-authorise") && error.contains("DRCHRONO_REFRESH_TOKEN"), "{error}");
    let client = db.client().await;
    let logged: (String, String) = {
        let row =
            client.query_one("SELECT status, error_code FROM sync_log WHERE id = $1", &[&run.run_id]).await.unwrap();
        (row.get(0), row.get(1))
    };
    assert_eq!(logged, ("failed".into(), "reauthorise".into()));
    assert!(emulator.stats().api_calls <= 2, "no call after the refusal but the one that found the token expired");
}

#[tokio::test]
async fn throttled_and_redirected_calls_are_repeated_until_the_backfill_is_whole() {
    let db = august_testkit::fresh_db("pull_429_302").await;
    let config = DrChronoConfig {
        patients: 12,
        calls_per_window: Some(6),
        window: Duration::from_secs(2),
        // Every list call is redirected once (the redirected URL then answers), so both the
        // 302s and the 429s they help cause are certain, not drawn.
        faults: Faults { redirect_rate: 1.0, ..Faults::default() },
        ..DrChronoConfig::default()
    };
    let emulator = emulator(config).await;
    // August's own budget is larger than the emulator's: DrChrono's 429 is the backstop.
    let syncer = syncer(&db, &emulator).await;
    let run = sync(&syncer, &["all"], manual(false)).await;
    assert_eq!(run.status, "succeeded", "{:?}", run.error);
    let stats = emulator.stats();
    assert!(stats.throttled > 0, "429s were met: {stats:?}");
    assert!(stats.redirects > 0, "302s were met: {stats:?}");
    assert_mirrors_equal(&db, &emulator).await;
}

#[tokio::test]
async fn the_shared_budget_is_never_exceeded_and_a_person_waits_for_the_next_window() {
    let db = august_testkit::fresh_db("pull_budget").await;
    let window = Duration::from_secs(2);
    let config = DrChronoConfig { patients: 12, calls_per_window: Some(5), window, ..DrChronoConfig::default() };
    let emulator = emulator(config).await;
    // Two processes' clients over one database share the budget.
    let (a, b) = (
        syncer_with(&db, settings(&emulator, 5, 0, window)).await,
        syncer_with(&db, settings(&emulator, 5, 0, window)).await,
    );
    let (ra, rb) = tokio::join!(
        sync(&a, &["patients", "providers", "problems"], manual(false)),
        sync(&b, &["appointments", "medications"], manual(false))
    );
    assert_eq!((ra.status, rb.status), ("succeeded", "succeeded"), "{:?} {:?}", ra.error, rb.error);
    let stats = emulator.stats();
    assert_eq!(stats.throttled, 0, "August never made DrChrono refuse a call: {stats:?}");
    assert!(stats.max_calls_in_window <= 5, "{stats:?}");
    assert!(stats.api_calls > 5, "the runs needed more than one window");
}

#[tokio::test]
async fn scheduled_work_leaves_the_reserve_and_the_next_run_resumes_where_it_stopped() {
    let db = august_testkit::fresh_db("pull_reserve").await;
    let emulator = emulator(quota_off(60)).await;
    // 6 calls an hour, 4 of them kept for people: scheduled runs get 2.
    let syncer = syncer_with(&db, settings(&emulator, 6, 4, Duration::from_secs(3600))).await;
    let scheduled = PullOptions { priority: Priority::Scheduled, ..manual(false) };
    let run = sync(&syncer, &["appointments"], scheduled).await;
    assert_eq!(run.status, "partial", "{:?}", run.error);
    assert_eq!(run.counts.pages, 2);
    assert!(run.error.unwrap().contains("allowance"), "the run says why it stopped");
    assert_eq!(db.count("SELECT count(*) FROM drchrono_sync_state WHERE resume_url IS NOT NULL").await, 1);
    let again = sync(&syncer, &["appointments"], scheduled).await;
    assert_eq!((again.status, again.counts.pages), ("partial", 0), "the reserve is not scheduled work's");

    // A person's run (here with a larger budget) picks up at page 3, not page 1.
    let person = syncer_with(&db, settings(&emulator, 1000, 4, Duration::from_secs(3600))).await;
    let before = emulator.stats().api_calls;
    let rest = sync(&person, &["appointments"], manual(false)).await;
    assert_eq!(rest.status, "succeeded", "{:?}", rest.error);
    let pages = emulator.counts()["appointments"].div_ceil(20) as u64;
    assert_eq!(emulator.stats().api_calls - before, pages - 2, "no page was fetched twice");
    assert_mirrors_equal_for(&db, "appointments", emulator.counts()["appointments"]).await;
}

#[tokio::test]
async fn a_run_killed_mid_way_resumes_from_its_last_committed_page() {
    let db = august_testkit::fresh_db("pull_killed").await;
    let config =
        DrChronoConfig { faults: Faults { latency: Duration::from_millis(30), ..Faults::default() }, ..quota_off(60) };
    let emulator = emulator(config).await;
    let syncer = syncer(&db, &emulator).await;
    let run = syncer.claim(feeds_for(["appointments"]).unwrap(), manual(false), "test").await.unwrap();
    let killed = run.id;
    let (progress, mut watch) = tokio::sync::watch::channel(Progress::default());
    let task = tokio::spawn(run.run(progress));
    while watch.borrow_and_update().counts.pages < 3 {
        watch.changed().await.unwrap();
    }
    task.abort();
    let _ = task.await;
    let pages_done = db.count("SELECT pages::bigint FROM drchrono_sync_state WHERE resource = 'appointments'").await;
    assert!(pages_done >= 3);
    let calls_before = emulator.stats().api_calls;

    let resumed = sync(&syncer, &["appointments"], manual(false)).await;
    assert_eq!(resumed.status, "succeeded");
    let total_pages = emulator.counts()["appointments"].div_ceil(20) as u64;
    assert!(
        emulator.stats().api_calls - calls_before <= total_pages - pages_done as u64 + 1,
        "the resumed run did not start over"
    );
    assert_mirrors_equal_for(&db, "appointments", emulator.counts()["appointments"]).await;
    let client = db.client().await;
    let status: String =
        client.query_one("SELECT status FROM sync_log WHERE id = $1", &[&killed]).await.unwrap().get(0);
    assert_eq!(status, "failed", "the killed run is closed as abandoned");
}

async fn assert_mirrors_equal_for(db: &TestDb, table: &str, expected: usize) {
    assert_eq!(db.count(&format!("SELECT count(*) FROM {table} WHERE deleted_at IS NULL")).await as usize, expected);
}

#[tokio::test]
async fn a_feed_held_by_a_run_is_refused_to_another_with_the_running_id() {
    let db = august_testkit::fresh_db("pull_claims").await;
    let emulator = emulator(quota_off(5)).await;
    let (a, b) = (syncer(&db, &emulator).await, syncer(&db, &emulator).await);
    let held = a.claim(feeds_for(["line-items"]).unwrap(), manual(false), "test").await.unwrap();
    match b.claim(FEEDS.iter().collect(), manual(false), "test").await {
        Err(StartError::AlreadyRunning { feed, run_id }) => {
            assert_eq!(feed, "line_items");
            assert_eq!(run_id, Some(held.id));
        }
        Err(other) => panic!("unexpected: {other}"),
        Ok(_) => panic!("two runs held one feed"),
    }
    assert!(b.claim(feeds_for(["patients"]).unwrap(), manual(false), "test").await.is_ok(), "other feeds are free");
    drop(held);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        b.claim(feeds_for(["line-items"]).unwrap(), manual(false), "test").await.is_ok(),
        "a dropped claim frees the feed"
    );
}

#[tokio::test]
async fn a_malformed_object_is_skipped_counted_and_named_by_id_while_the_run_goes_on() {
    let db = august_testkit::fresh_db("pull_malformed").await;
    let emulator = emulator(quota_off(20)).await;
    let bad = emulator.objects("patients")[4]["id"].as_i64().unwrap();
    assert!(emulator.malform_patient(bad));
    let syncer = syncer(&db, &emulator).await;
    let run = sync(&syncer, &["patients"], manual(false)).await;
    assert_eq!(run.status, "succeeded", "a bad object does not fail the run");
    assert_eq!(run.counts.failed, 1);
    assert_eq!(run.counts.inserted as usize, emulator.counts()["patients"] - 1);
    assert_eq!(
        db.count(&format!("SELECT count(*) FROM patients WHERE drchrono_id = {bad}")).await,
        0,
        "nothing half-written"
    );
    assert_eq!(db.count("SELECT records_failed::bigint FROM sync_log WHERE source = 'drchrono_sync'").await, 1);
}
