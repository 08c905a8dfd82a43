//! Real refusals from Postgres whose server messages quote PHI-looking values, so that each
//! crate can check that its error types never show them ([`Refusal::assert_hidden_in`]).

use std::error::Error;

use august_schema::DbError;

use crate::TestDb;

/// One refused write: the error as August's code wraps it, the values the raw server error
/// quotes, and the names (SQLSTATE, condition, table, column, constraint) that must stay.
#[derive(Debug)]
pub struct Refusal {
    /// What was refused, for assertion messages.
    pub what: &'static str,
    /// The error, as `DbError::new` wraps it everywhere in August.
    pub error: DbError,
    /// Values that were written and must show nowhere.
    pub values: &'static [&'static str],
    /// Names that must show in the error's `Display`.
    pub names: &'static [&'static str],
}

/// Drives a unique violation (on an index over `email` made for the test), a CHECK violation
/// on `patients.patient_status`, a date given a name, and a NUL byte in text, on `db`.
pub async fn refusals(db: &TestDb) -> Vec<Refusal> {
    let client = db.client().await;
    client
        .batch_execute("CREATE UNIQUE INDEX patients_email_key ON patients (email)")
        .await
        .expect("an index on email");
    let insert = "INSERT INTO patients (drchrono_id, first_name, email, patient_status, date_of_birth, drchrono_raw)
                  VALUES ($1, $2, $3, $4, $5::text::date, '{}')";
    let write = |id: i64, name: &'static str, email: &'static str, status: &'static str, born: &'static str| {
        let client = &client;
        async move { client.execute(insert, &[&id, &name, &email, &status, &born]).await.map(|_| ()) }
    };
    write(1, "Jane Roe", "jane.roe@example.com", "A", "1990-04-01").await.expect("a valid patient");
    let duplicate =
        write(2, "Janet Roe", "jane.roe@example.com", "A", "1991-05-02").await.expect_err("a duplicate email");
    let status = write(3, "Mary Major", "mary.major@example.com", "Mary Major, DOB 1985-07-09", "1985-07-09").await;
    let born = write(4, "John Doe", "john.doe@example.com", "A", "John Doe 555-0199").await;
    let nul = write(5, "Ada\0Lovelace", "ada@example.com", "A", "1815-12-10").await;
    vec![
        Refusal {
            what: "a unique violation",
            error: DbError::new("upsert", duplicate),
            values: &["jane.roe@example.com", "Janet", "1991-05-02"],
            names: &["23505", "unique_violation", "patients", "patients_email_key"],
        },
        Refusal {
            what: "a CHECK violation",
            error: DbError::new("upsert", status.expect_err("a status outside the CHECK")),
            values: &["Mary Major", "mary.major@example.com", "1985-07-09"],
            names: &["23514", "check_violation", "patients", "patients_patient_status_check"],
        },
        Refusal {
            what: "a date given a name and a phone number",
            error: DbError::new("upsert", born.expect_err("a name for a date")),
            values: &["John Doe", "555-0199", "john.doe@example.com"],
            names: &["22007", "invalid_datetime_format"],
        },
        Refusal {
            what: "a NUL byte in text",
            error: DbError::new("upsert", nul.expect_err("a NUL in text")),
            values: &["Ada", "Lovelace", "ada@example.com", "1815"],
            names: &["22021", "character_not_in_repertoire"],
        },
    ]
}

impl Refusal {
    /// Asserts that the error, wrapped by `wrap` into a crate's own error type, shows none of
    /// the values in its `Display`, `{:#}` through `anyhow`, `Debug`, or any `source()`, and
    /// that its `Display` names the SQLSTATE and the objects.
    pub fn assert_hidden_in<E: Error + Send + Sync + 'static>(self, wrap: impl FnOnce(DbError) -> E) {
        let Refusal { what, error, values, names } = self;
        let error = wrap(error);
        let display = error.to_string();
        let mut shown = vec![display.clone(), format!("{error:?}"), format!("{error:#?}")];
        let mut source = error.source();
        while let Some(cause) = source {
            shown.extend([cause.to_string(), format!("{cause:?}")]);
            source = cause.source();
        }
        let chained = anyhow::Error::new(error).context("august: error");
        shown.extend([format!("{chained:#}"), format!("{chained:?}"), format!("{chained:#?}")]);
        for text in &shown {
            for value in values {
                assert!(!text.contains(value), "{what}: `{value}` shows in {text:?}");
            }
        }
        for name in names {
            assert!(display.contains(name), "{what}: `{name}` missing from {display:?}");
        }
    }
}
