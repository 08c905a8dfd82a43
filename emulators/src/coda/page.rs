//! The emulator's page for people: every table and its rows, as plain HTML, and a form that
//! edits one cell as a staff member would in Coda (it posts to `/_emulator/edit`).

use axum::extract::State;
use axum::response::Html;

use super::Shared;

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// The edit form: table, row (id or key), column, value and the editing user's email.
fn edit_form(tables: &[&super::state::Table]) -> String {
    let options: String =
        tables.iter().map(|t| format!("<option value=\"{}\">{}</option>", escape(&t.id), escape(&t.name))).collect();
    format!(
        "<form method=\"post\" action=\"/_emulator/edit\"><b>Edit a cell as staff:</b> \
         <select name=\"table\">{options}</select> \
         <input name=\"row\" placeholder=\"row id or key\" required> \
         <input name=\"column\" placeholder=\"column\" required> \
         <input name=\"value\" placeholder=\"value (empty clears)\"> \
         <input name=\"user\" type=\"email\" placeholder=\"your email\" required> \
         <button>Save</button></form>"
    )
}

/// `GET /`: every doc's tables with their rows.
pub async fn tables_page(State(shared): State<Shared>) -> Html<String> {
    let mut model = shared.model.lock().expect("model lock");
    model.apply_due();
    let mut html = String::from(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>Coda emulator</title>\
         <style>body{font-family:sans-serif;margin:1.5em}table{border-collapse:collapse;margin-bottom:2em}\
         td,th{border:1px solid #ccc;padding:.25em .5em;font-size:.85em}th{background:#f0f0f0}form{margin:1em 0}</style>\
         <script>setInterval(function(){var f=document.querySelector('form');\
         if(!f||!f.contains(document.activeElement))location.reload()},2000)</script></head><body><h1>Coda emulator</h1>",
    );
    let all: Vec<_> = model.docs.values().flatten().collect();
    html.push_str(&edit_form(&all));
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
