//! The emulator's HTTP API: the Coda endpoints August uses, with Coda's status codes and
//! error body (`{statusCode, statusMessage, message}`), the Bearer check, the quotas, and the
//! injected faults.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::state::{parse_query, row_json, value_matches, Edit, StoredRow};
use super::Shared;

/// Coda's error response.
pub fn error(status: StatusCode, message: &str) -> Response {
    let reason = status.canonical_reason().unwrap_or("Error");
    (status, Json(json!({"statusCode": status.as_u16(), "statusMessage": reason, "message": message}))).into_response()
}

/// Auth, faults and quota, before any handler. `Err` is the response to send instead.
async fn gate(shared: &Shared, headers: &HeaderMap, write: bool) -> Result<(), Response> {
    let faults = shared.faults.lock().expect("faults lock").clone();
    if !faults.latency.is_zero() {
        tokio::time::sleep(faults.latency).await;
    }
    let expected = format!("Bearer {}", shared.token);
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(expected.as_str()) {
        return Err(error(StatusCode::UNAUTHORIZED, "The API token is invalid or has expired."));
    }
    if shared.storm.load(Ordering::Relaxed) > 0 {
        shared.storm.fetch_sub(1, Ordering::Relaxed);
        shared.stats.throttled.fetch_add(1, Ordering::Relaxed);
        return Err(with_retry_after(
            error(StatusCode::TOO_MANY_REQUESTS, "The client has sent too many requests."),
            Duration::from_millis(500),
        ));
    }
    if faults.error_rate > 0.0 && rand::random::<f64>() < faults.error_rate {
        shared.stats.faults.fetch_add(1, Ordering::Relaxed);
        if rand::random::<bool>() {
            tokio::time::sleep(faults.timeout).await; // longer than the client waits
        }
        return Err(error(StatusCode::SERVICE_UNAVAILABLE, "Injected fault"));
    }
    if shared.quota_enabled {
        let mut quotas = shared.quotas.lock().expect("quota lock");
        let window = if write { &mut quotas.0 } else { &mut quotas.1 };
        if let Err(wait) = window.admit(Instant::now()) {
            shared.stats.throttled.fetch_add(1, Ordering::Relaxed);
            return Err(with_retry_after(
                error(StatusCode::TOO_MANY_REQUESTS, "The client has sent too many requests."),
                wait,
            ));
        }
    }
    if write {
        shared.stats.writes.fetch_add(1, Ordering::Relaxed);
    } else {
        shared.stats.reads.fetch_add(1, Ordering::Relaxed);
    }
    Ok(())
}

/// The injected failure of every write to one table.
fn failing(shared: &Shared, table: &str) -> Option<Response> {
    if shared.failing_table.lock().expect("failing lock").as_deref() != Some(table) {
        return None;
    }
    shared.stats.faults.fetch_add(1, Ordering::Relaxed);
    Some(error(StatusCode::SERVICE_UNAVAILABLE, "Injected fault (this table's writes fail)"))
}

fn with_retry_after(mut response: Response, wait: Duration) -> Response {
    let seconds = wait.as_secs_f64().ceil().max(1.0) as u64;
    if let Ok(value) = seconds.to_string().parse() {
        response.headers_mut().insert("retry-after", value);
    }
    response
}

fn not_found() -> Response {
    error(StatusCode::NOT_FOUND, "The resource could not be located with the current API token.")
}

/// Page parameters.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListParams {
    limit: Option<usize>,
    page_token: Option<String>,
    query: Option<String>,
}

/// A page of `items`. Like Coda's, the page token carries the first request's limit, so a
/// client that sends only `pageToken` keeps its page size.
fn page<T: Clone>(items: &[T], params: &ListParams, max: usize) -> (Vec<T>, Option<String>) {
    let token = params.page_token.as_deref().and_then(|t| t.strip_prefix("o")).and_then(|rest| {
        let (start, limit) = rest.split_once('-')?;
        Some((start.parse::<usize>().ok()?, limit.parse::<usize>().ok()?))
    });
    let (start, limit) = token.unwrap_or((0, params.limit.unwrap_or(25)));
    let limit = limit.clamp(1, max);
    let end = (start + limit).min(items.len());
    let next = (end < items.len()).then(|| format!("o{end}-{limit}"));
    (items.get(start..end).unwrap_or_default().to_vec(), next)
}

/// `GET /docs/{docId}/tables`
pub async fn list_tables(State(shared): State<Shared>, headers: HeaderMap, Path(doc): Path<String>) -> Response {
    if let Err(r) = gate(&shared, &headers, false).await {
        return r;
    }
    let model = shared.model.lock().expect("model lock");
    let Some(tables) = model.docs.get(&doc) else { return not_found() };
    let base = &shared.base;
    let items: Vec<Value> = tables
        .iter()
        .map(|t| json!({"id": t.id, "type": "table", "tableType": "table", "href": format!("{base}/docs/{doc}/tables/{}", t.id), "browserLink": format!("{base}/d/_d{doc}#_tu{}", t.id), "name": t.name}))
        .collect();
    Json(json!({"items": items, "href": format!("{base}/docs/{doc}/tables")})).into_response()
}

/// `GET /docs/{docId}/tables/{tableIdOrName}/columns`
pub async fn list_columns(
    State(shared): State<Shared>,
    headers: HeaderMap,
    Path((doc, table)): Path<(String, String)>,
    Query(params): Query<ListParams>,
) -> Response {
    if let Err(r) = gate(&shared, &headers, false).await {
        return r;
    }
    let model = shared.model.lock().expect("model lock");
    let Some(table) = model.table(&doc, &table) else { return not_found() };
    let base = &shared.base;
    let columns: Vec<Value> = table
        .columns
        .iter()
        .map(|c| json!({"id": c.id, "type": "column", "href": format!("{base}/docs/{doc}/tables/{}/columns/{}", table.id, c.id), "name": c.name, "display": false, "calculated": false, "format": {"type": "text", "isArray": false}}))
        .collect();
    let (items, next) = page(&columns, &params, 100);
    list_response(items, next, &format!("{base}/docs/{doc}/tables/{}/columns", table.id))
}

fn list_response(items: Vec<Value>, next: Option<String>, href: &str) -> Response {
    let mut body = json!({"items": items, "href": href});
    if let Some(token) = next {
        body["nextPageLink"] = json!(format!("{href}?pageToken={token}"));
        body["nextPageToken"] = json!(token);
    }
    Json(body).into_response()
}

/// `GET /docs/{docId}/tables/{tableIdOrName}/rows`
pub async fn list_rows(
    State(shared): State<Shared>,
    headers: HeaderMap,
    Path((doc, table)): Path<(String, String)>,
    Query(params): Query<ListParams>,
) -> Response {
    if let Err(r) = gate(&shared, &headers, false).await {
        return r;
    }
    let mut model = shared.model.lock().expect("model lock");
    model.apply_due();
    let Some(table) = model.table(&doc, &table) else { return not_found() };
    let filter = match params.query.as_deref().map(|q| parse_query(table, q)).transpose() {
        Ok(filter) => filter,
        Err(message) => return error(StatusCode::BAD_REQUEST, &message),
    };
    let rows: Vec<&StoredRow> =
        table.rows.iter().filter(|r| filter.as_ref().is_none_or(|(c, v)| value_matches(r.values.get(c), v))).collect();
    let rows: Vec<Value> = rows.iter().map(|r| row_json(&shared.base, &doc, table, r)).collect();
    let (items, next) = page(&rows, &params, 500);
    list_response(items, next, &format!("{}/docs/{doc}/tables/{}/rows", shared.base, table.id))
}

/// The body of an upsert.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RowsUpsert {
    rows: Vec<RowEdit>,
    #[serde(default)]
    key_columns: Vec<String>,
}

/// One row's cells.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RowEdit {
    cells: Vec<CellEdit>,
}

/// One cell.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CellEdit {
    column: String,
    value: Value,
}

/// Whether Coda can hold a cell value: a scalar, or a list of them.
pub(super) fn valid_value(value: &Value, depth: u8) -> bool {
    match value {
        Value::String(_) | Value::Number(_) | Value::Bool(_) => true,
        Value::Array(items) => depth < 2 && items.iter().all(|v| valid_value(v, depth + 1)),
        Value::Null | Value::Object(_) => false,
    }
}

/// `POST /docs/{docId}/tables/{tableIdOrName}/rows`
pub async fn upsert_rows(
    State(shared): State<Shared>,
    headers: HeaderMap,
    Path((doc, table)): Path<(String, String)>,
    body: Option<Json<RowsUpsert>>,
) -> Response {
    if let Err(r) = gate(&shared, &headers, true).await {
        return r;
    }
    if let Some(r) = failing(&shared, &table) {
        return r;
    }
    let Some(Json(body)) = body else { return error(StatusCode::BAD_REQUEST, "The request body is not a RowsUpsert.") };
    let mut model = shared.model.lock().expect("model lock");
    let Some(table) = model.table(&doc, &table) else { return not_found() };
    let mut key_columns = Vec::new();
    for key in &body.key_columns {
        match table.column_id(key) {
            Some(id) => key_columns.push(id),
            None => return error(StatusCode::BAD_REQUEST, &format!("Unknown key column: {key}")),
        }
    }
    let mut rows = Vec::with_capacity(body.rows.len());
    for (i, row) in body.rows.iter().enumerate() {
        let mut cells = BTreeMap::new();
        for cell in &row.cells {
            let Some(id) = table.column_id(&cell.column) else {
                return error(StatusCode::BAD_REQUEST, &format!("Row {i}: unknown column {}", cell.column));
            };
            if !valid_value(&cell.value, 0) {
                return error(
                    StatusCode::BAD_REQUEST,
                    &format!("Row {i}: the value of column {} is not a scalar or an array of scalars", cell.column),
                );
            }
            if shared.reject_value.lock().expect("reject lock").as_ref() == Some(&cell.value) {
                return error(StatusCode::BAD_REQUEST, &format!("Row {i}: value rejected for column {}", cell.column));
            }
            cells.insert(id, cell.value.clone());
        }
        rows.push(cells);
    }
    let table_id = table.id.clone();
    shared.stats.rows_upserted.fetch_add(rows.len() as u64, Ordering::Relaxed);
    shared.stats.batch_sizes.lock().expect("stats lock").push(rows.len());
    let delay = shared.faults.lock().expect("faults lock").mutation_delay;
    let request = model.queue(Edit::Upsert { doc, table: table_id, rows, key_columns }, delay);
    (StatusCode::ACCEPTED, Json(json!({"requestId": request}))).into_response()
}

/// The body of a bulk delete.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RowsDelete {
    row_ids: Vec<String>,
}

/// `DELETE /docs/{docId}/tables/{tableIdOrName}/rows`
pub async fn delete_rows(
    State(shared): State<Shared>,
    headers: HeaderMap,
    Path((doc, table)): Path<(String, String)>,
    body: Option<Json<RowsDelete>>,
) -> Response {
    if let Err(r) = gate(&shared, &headers, true).await {
        return r;
    }
    if let Some(r) = failing(&shared, &table) {
        return r;
    }
    let Some(Json(body)) = body else { return error(StatusCode::BAD_REQUEST, "The request body is not a RowsDelete.") };
    let mut model = shared.model.lock().expect("model lock");
    let Some(table) = model.table(&doc, &table) else { return not_found() };
    let table_id = table.id.clone();
    shared.stats.rows_deleted.fetch_add(body.row_ids.len() as u64, Ordering::Relaxed);
    let delay = shared.faults.lock().expect("faults lock").mutation_delay;
    let request = model.queue(Edit::Delete { doc, table: table_id, row_ids: body.row_ids.clone() }, delay);
    (StatusCode::ACCEPTED, Json(json!({"requestId": request, "rowIds": body.row_ids}))).into_response()
}

/// `DELETE /docs/{docId}/tables/{tableIdOrName}/rows/{rowIdOrName}`
pub async fn delete_row(
    State(shared): State<Shared>,
    headers: HeaderMap,
    Path((doc, table, row)): Path<(String, String, String)>,
) -> Response {
    if let Err(r) = gate(&shared, &headers, true).await {
        return r;
    }
    let mut model = shared.model.lock().expect("model lock");
    model.apply_due();
    let Some(table) = model.table(&doc, &table) else { return not_found() };
    let Some(found) = table.rows.iter().find(|r| r.id == row) else { return not_found() };
    let (table_id, row_id) = (table.id.clone(), found.id.clone());
    let delay = shared.faults.lock().expect("faults lock").mutation_delay;
    let request = model.queue(Edit::Delete { doc, table: table_id, row_ids: vec![row_id.clone()] }, delay);
    (StatusCode::ACCEPTED, Json(json!({"requestId": request, "id": row_id}))).into_response()
}

/// `GET /mutationStatus/{requestId}`
pub async fn mutation_status(
    State(shared): State<Shared>,
    headers: HeaderMap,
    Path(request): Path<String>,
) -> Response {
    if let Err(r) = gate(&shared, &headers, false).await {
        return r;
    }
    match shared.model.lock().expect("model lock").completed(&request) {
        Some(completed) => Json(json!({"completed": completed})).into_response(),
        None => not_found(),
    }
}

/// `GET /_emulator/stats` (the emulator's own, not Coda's): what it saw.
pub async fn stats(State(shared): State<Shared>) -> Response {
    let stats = &shared.stats;
    let unchanged = shared.model.lock().expect("model lock").unchanged_rows;
    Json(json!({
        "writes": stats.writes.load(Ordering::Relaxed),
        "reads": stats.reads.load(Ordering::Relaxed),
        "throttled": stats.throttled.load(Ordering::Relaxed),
        "faults": stats.faults.load(Ordering::Relaxed),
        "rows_upserted": stats.rows_upserted.load(Ordering::Relaxed),
        "rows_deleted": stats.rows_deleted.load(Ordering::Relaxed),
        "rows_unchanged": unchanged,
        "automations": stats.automations.json(),
    }))
    .into_response()
}
