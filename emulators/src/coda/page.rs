//! The emulator's page for people: every table and its rows, as plain HTML.

use axum::extract::State;
use axum::response::Html;

use super::Shared;

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// `GET /`: every doc's tables with their rows.
pub async fn tables_page(State(shared): State<Shared>) -> Html<String> {
    let mut model = shared.model.lock().expect("model lock");
    model.apply_due();
    let mut html = String::from(
        "<!doctype html><html><head><meta charset=\"utf-8\"><meta http-equiv=\"refresh\" content=\"2\"><title>Coda emulator</title>\
         <style>body{font-family:sans-serif;margin:1.5em}table{border-collapse:collapse;margin-bottom:2em}\
         td,th{border:1px solid #ccc;padding:.25em .5em;font-size:.85em}th{background:#f0f0f0}</style></head><body><h1>Coda emulator</h1>",
    );
    let mut docs: Vec<_> = model.docs.iter().collect();
    docs.sort_by_key(|(id, _)| id.as_str());
    for (doc, tables) in docs {
        html.push_str(&format!("<h2>doc {}</h2>", escape(doc)));
        for table in tables {
            html.push_str(&format!(
                "<h3>{} <small>({}, {} rows)</small></h3><table><tr><th>row</th>",
                escape(&table.name),
                escape(&table.id),
                table.rows.len()
            ));
            for column in &table.columns {
                html.push_str(&format!("<th>{}</th>", escape(&column.name)));
            }
            html.push_str("</tr>");
            for row in table.rows.iter().take(500) {
                html.push_str(&format!("<tr><td>{}</td>", escape(&row.id)));
                for column in &table.columns {
                    let value = row
                        .values
                        .get(&column.id)
                        .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string))
                        .unwrap_or_default();
                    html.push_str(&format!("<td>{}</td>", escape(&value)));
                }
                html.push_str("</tr>");
            }
            html.push_str("</table>");
        }
    }
    html.push_str("</body></html>");
    Html(html)
}
