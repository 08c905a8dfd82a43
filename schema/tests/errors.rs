//! Database errors show SQLSTATEs and object names, never a value from the refused row.

use august_schema::ErrorKind;

#[tokio::test]
async fn refused_rows_show_sqlstate_and_names_but_no_value() {
    let db = august_testkit::fresh_db("schema_refused_rows").await;
    for refusal in august_testkit::refusals::refusals(&db).await {
        assert_eq!(refusal.error.kind(), ErrorKind::Permanent, "{}", refusal.what);
        assert!(refusal.error.refuses_data(), "{}", refusal.what);
        assert!(!refusal.error.summary().contains(refusal.values[0]), "{}: the summary holds a value", refusal.what);
        refusal.assert_hidden_in(|e| e);
    }
}

#[tokio::test]
async fn the_raw_client_error_does_quote_the_row() {
    // What the redaction is for: the client error itself prints the DETAIL and the message.
    let db = august_testkit::fresh_db("schema_raw_quotes").await;
    let refusals = august_testkit::refusals::refusals(&db).await;
    for refusal in &refusals[..3] {
        let raw = format!("{:?}", refusal.error.unredacted_postgres_error());
        assert!(raw.contains(refusal.values[0]), "{}: {raw}", refusal.what);
    }
}
