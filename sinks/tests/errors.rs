//! The sinks' errors keep what a refused row held out of every message.

use august_sinks::SinkError;

#[tokio::test]
async fn a_refused_row_shows_in_no_sink_error() {
    let db = august_testkit::fresh_db("sinks_refused_rows").await;
    for refusal in august_testkit::refusals::refusals(&db).await {
        refusal.assert_hidden_in(|e| {
            let error = SinkError::Db(e);
            assert_eq!(error.kind(), august_schema::ErrorKind::Permanent);
            error
        });
    }
}
