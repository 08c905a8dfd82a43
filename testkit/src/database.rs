//! A fresh, migrated database for one test.

use std::sync::atomic::{AtomicUsize, Ordering};

use august_schema::DbSettings;

use crate::cluster::{cluster, connect, Cluster};

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// One test's own database, a copy of the migrated template.
#[derive(Debug)]
pub struct TestDb {
    /// The database's name.
    pub name: String,
    url: String,
    cluster: &'static Cluster,
}

/// Creates a database for one test. `hint` (usually the test's name) makes the database easy
/// to find in the server's logs.
pub async fn fresh_db(hint: &str) -> TestDb {
    let cluster = cluster();
    create_on(cluster, hint, &cluster.template).await
}

pub(crate) async fn create_on(cluster: &'static Cluster, hint: &str, template: &str) -> TestDb {
    let clean: String =
        hint.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '_' }).collect();
    let mut name = format!("t{}_{}_{clean}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
    name.truncate(63);
    let admin = connect(&cluster.url("postgres")).await.unwrap_or_else(|e| panic!("connect to the test server: {e}"));
    admin
        .batch_execute(&format!("CREATE DATABASE \"{name}\" TEMPLATE {template}"))
        .await
        .unwrap_or_else(|e| panic!("create test database {name}: {e}"));
    TestDb { url: cluster.url(&name), name, cluster }
}

impl TestDb {
    /// Its connection URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Its client configuration.
    pub fn config(&self) -> tokio_postgres::Config {
        self.url.parse().expect("test URLs are well formed")
    }

    /// Settings as `august` would build them from `DATABASE_URL`.
    pub fn settings(&self) -> DbSettings {
        DbSettings::from_url("DATABASE_URL", self.url.clone())
    }

    /// The `bigint` the query `sql` (e.g. a `count(*)`) answers, on a new connection.
    pub async fn count(&self, sql: &str) -> i64 {
        self.client().await.query_one(sql, &[]).await.unwrap_or_else(|e| panic!("{sql}: {e}")).get(0)
    }

    /// A new connection, driven on the current runtime.
    pub async fn client(&self) -> tokio_postgres::Client {
        connect(&self.url).await.unwrap_or_else(|e| panic!("connect to {}: {e}", self.name))
    }
}

impl Drop for TestDb {
    /// A private cluster is thrown away whole; on an external server the database (and any
    /// replication slot left on it) is dropped, best effort, on a thread of its own.
    fn drop(&mut self) {
        let cluster = self.cluster;
        if cluster.is_private() {
            return;
        }
        let admin = cluster.url("postgres");
        let name = self.name.clone();
        let _ = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
            runtime.block_on(async move {
                if let Ok(client) = connect(&admin).await {
                    let _ = client
                        .execute(
                            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE database = $1 AND NOT active",
                            &[&name],
                        )
                        .await;
                    let _ = client.batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)")).await;
                }
            })
        })
        .join();
    }
}

/// Creates an empty database (no migrations), for testing the migrations themselves.
pub async fn empty_db(hint: &str) -> TestDb {
    create_on(cluster(), hint, "template0").await
}
