//! Staff edits, as a person makes them in Coda's UI (not part of Coda's API):
//! `POST /_emulator/edit` with JSON `{"table", "row", "values": {column: value}, "user"}`, or
//! the page's form (`table`, `row`, `column`, `value`, `user`, form-encoded). The table is
//! named by id or name, the row by id, key value (its automation's key column) or display
//! value (its first column), each column by id or name; an empty value or null empties a cell.
//! The edit takes effect at once (a UI edit is synchronous), the JSON request is answered with
//! the row, the form with a redirect to the page; then the table's automation fires, as the
//! given user. Unknown table or row: 404; unknown column or a value Coda cannot hold: 400.

use std::collections::BTreeMap;

use axum::extract::{FromRequest, Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Form, Json};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::routes::{error, valid_value};
use super::state::{row_json, value_matches, Model, Table};
use super::Shared;

/// The JSON body of an edit.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EditRequest {
    table: String,
    row: String,
    values: Map<String, Value>,
    user: String,
}

/// The page's form: one cell.
#[derive(Debug, Deserialize)]
pub struct FormEdit {
    table: String,
    row: String,
    column: String,
    #[serde(default)]
    value: String,
    user: String,
}

/// A refused edit: its status and message.
type Refusal = (StatusCode, String);

/// `POST /_emulator/edit`: JSON, or the page's form.
pub async fn edit(State(shared): State<Shared>, request: Request) -> Response {
    let form = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if form {
        let Ok(Form(edit)) = Form::<FormEdit>::from_request(request, &()).await else {
            return error(StatusCode::BAD_REQUEST, "The form needs table, row, column, value and user.");
        };
        let mut model = shared.model.lock().expect("model lock");
        let value = typed(&model, &edit);
        return match apply(&mut model, &edit.table, &edit.row, [(edit.column.clone(), value)].into(), &edit.user) {
            Ok(_) => Redirect::to("/").into_response(),
            Err((status, message)) => error(status, &message),
        };
    }
    let edit = match Json::<EditRequest>::from_request(request, &()).await {
        Ok(Json(edit)) => edit,
        Err(rejection) => {
            return error(StatusCode::BAD_REQUEST, &format!("The body is not an edit ({}).", rejection.body_text()))
        }
    };
    let mut model = shared.model.lock().expect("model lock");
    let values = edit.values.into_iter().collect();
    match apply(&mut model, &edit.table, &edit.row, values, &edit.user) {
        Ok((doc, table, row)) => {
            let table = model.table(&doc, &table).expect("edited table");
            let row = table.rows.iter().find(|r| r.id == row).expect("edited row");
            Json(row_json(&shared.base, &doc, table, row)).into_response()
        }
        Err((status, message)) => error(status, &message),
    }
}

/// The form's text as the cell's kind of value: a boolean or number when the cell holds one.
fn typed(model: &Model, edit: &FormEdit) -> Value {
    let text = edit.value.trim();
    let current = find(model, &edit.table, &edit.row).ok().and_then(|(doc, t, r)| {
        let table = &model.docs[&doc][t];
        let column = table.column_id(&edit.column)?;
        table.rows[r].values.get(&column).cloned()
    });
    match current {
        Some(Value::Bool(_)) if text == "true" || text == "false" => Value::Bool(text == "true"),
        Some(Value::Number(_)) => text.parse::<serde_json::Number>().map_or_else(|_| Value::from(text), Value::Number),
        _ => Value::from(text),
    }
}

/// The (doc, table index, row index) of a table and row named as an edit names them.
fn find(model: &Model, table: &str, row: &str) -> Result<(String, usize, usize), Refusal> {
    let found = model
        .docs
        .iter()
        .find_map(|(doc, tables)| tables.iter().position(|t| t.id == table || t.name == table).map(|i| (doc, i)));
    let Some((doc, t)) = found else { return Err((StatusCode::NOT_FOUND, format!("No table {table}."))) };
    let found: &Table = &model.docs[doc][t];
    let wanted = Value::String(row.to_string());
    let key = found.automation.as_ref().map(|a| a.key_column.clone());
    let display = found.columns.first().map(|c| c.id.clone());
    let r = found
        .rows
        .iter()
        .position(|r| r.id == row)
        .or_else(|| key.and_then(|k| found.rows.iter().position(|r| value_matches(r.values.get(&k), &wanted))))
        .or_else(|| display.and_then(|k| found.rows.iter().position(|r| value_matches(r.values.get(&k), &wanted))));
    match r {
        Some(r) => Ok((doc.clone(), t, r)),
        None => Err((StatusCode::NOT_FOUND, format!("No row {row} in table {}.", found.id))),
    }
}

/// Applies an edit at once and fires the table's automation as `user`. Returns the doc,
/// table id and row id edited.
fn apply(
    model: &mut Model,
    table: &str,
    row: &str,
    values: Vec<(String, Value)>,
    user: &str,
) -> Result<(String, String, String), Refusal> {
    model.apply_due();
    if user.trim().is_empty() {
        return Err((StatusCode::BAD_REQUEST, "An edit names its user (an email).".into()));
    }
    let (doc, t, r) = find(model, table, row)?;
    let target: &Table = &model.docs[&doc][t];
    let mut cells = BTreeMap::new();
    for (column, value) in values {
        let Some(id) = target.column_id(&column) else {
            return Err((StatusCode::BAD_REQUEST, format!("No column {column} in table {}.", target.id)));
        };
        let value = if value.is_null() { Value::String(String::new()) } else { value };
        if !valid_value(&value, 0) {
            return Err((
                StatusCode::BAD_REQUEST,
                format!("Column {column}: a cell holds a scalar or a list of them."),
            ));
        }
        cells.insert(id, value);
    }
    let target = &mut model.docs.get_mut(&doc).expect("found doc")[t];
    let stored = &mut target.rows[r];
    let before = stored.values.clone();
    stored.values.extend(cells);
    stored.updated_at = chrono::Utc::now();
    let call = target.automation.as_ref().and_then(|a| a.call(&stored.id, &before, &stored.values, user));
    let done = (doc, target.id.clone(), stored.id.clone());
    model.fire(call.into_iter().collect());
    Ok(done)
}
