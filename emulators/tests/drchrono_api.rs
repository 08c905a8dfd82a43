//! The DrChrono emulator behaves as DrChrono's documentation says, over HTTP: OAuth refresh
//! with rotating refresh tokens, the Bearer check, the hourly budget, page sizes and cursor
//! pagination, the filters (`since` by day, the appointments' date window, `show_archived`,
//! `verbose`), redirects, injected errors and the test mutations.

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use august_emulators::drchrono::{serve, DrChronoConfig, DrChronoEmulator, Envelope, Faults};
use reqwest::StatusCode;
use serde_json::{json, Value};

/// A client of one emulator, holding a fresh access token.
pub(crate) struct Api {
    pub http: reqwest::Client,
    pub base: String,
    pub token: String,
}

/// A small clinic with the quota off, unless `config` says otherwise.
pub(crate) fn quiet(patients: usize) -> DrChronoConfig {
    DrChronoConfig { patients, calls_per_window: None, seed: 7, ..DrChronoConfig::default() }
}

/// Starts an emulator and refreshes once for an access token.
pub(crate) async fn start(config: DrChronoConfig) -> (DrChronoEmulator, Api) {
    let emulator = serve("127.0.0.1:0".parse().unwrap(), config.clone()).await.unwrap();
    let http = reqwest::Client::new();
    let body = refresh(&http, &emulator.base_url(), &config, &config.refresh_token).await;
    let token = body["access_token"].as_str().unwrap().to_string();
    let api = Api { http, base: emulator.base_url(), token };
    (emulator, api)
}

/// `POST /o/token/` with the refresh grant; panics unless it is a 200.
pub(crate) async fn refresh(http: &reqwest::Client, base: &str, config: &DrChronoConfig, token: &str) -> Value {
    let (status, body) = token_request(http, base, &config.client_id, &config.client_secret, token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

async fn token_request(
    http: &reqwest::Client,
    base: &str,
    id: &str,
    secret: &str,
    refresh: &str,
) -> (StatusCode, Value) {
    let form =
        [("grant_type", "refresh_token"), ("refresh_token", refresh), ("client_id", id), ("client_secret", secret)];
    let response = http.post(format!("{base}/o/token/")).form(&form).send().await.unwrap();
    (response.status(), response.json().await.unwrap())
}

impl Api {
    /// GETs a path (`/api/…?…`) or an absolute URL with the Bearer token.
    pub async fn get(&self, path_or_url: &str) -> (StatusCode, Value) {
        let url = if path_or_url.starts_with("http") {
            path_or_url.to_string()
        } else {
            format!("{}{path_or_url}", self.base)
        };
        let response = self.http.get(url).bearer_auth(&self.token).send().await.unwrap();
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Every page from `path` on, following `next`: the pages' object lists.
    pub async fn pages(&self, path: &str) -> Vec<Vec<Value>> {
        let mut pages = Vec::new();
        let mut url = path.to_string();
        loop {
            let (status, body) = self.get(&url).await;
            assert_eq!(status, StatusCode::OK, "{url}: {body}");
            let key = if body.get("results").is_some() { "results" } else { "data" };
            pages.push(body[key].as_array().unwrap().clone());
            match body["next"].as_str() {
                Some(next) => url = next.to_string(),
                None => return pages,
            }
        }
    }

    /// Every object from `path` on.
    pub async fn all(&self, path: &str) -> Vec<Value> {
        self.pages(path).await.into_iter().flatten().collect()
    }
}

/// The paths that list everything: appointments need a window, and archived ones are asked for.
pub(crate) fn everything(resource: &str) -> String {
    match resource {
        "appointments" => "/api/appointments?since=2000-01-01&show_archived=true".to_string(),
        other => format!("/api/{other}"),
    }
}

pub(crate) const RESOURCES: [&str; 9] = [
    "patients",
    "doctors",
    "appointments",
    "clinical_notes",
    "medications",
    "problems",
    "allergies",
    "line_items",
    "line_item_deletions",
];

/// An object's identity in its list.
fn identity(resource: &str, object: &Value) -> String {
    let key = match resource {
        "clinical_notes" => "appointment",
        "line_item_deletions" => "billing_line_item_id",
        _ => "id",
    };
    object[key].to_string()
}

fn ids(resource: &str, objects: &[Value]) -> Vec<String> {
    objects.iter().map(|o| identity(resource, o)).collect()
}

fn with(path: &str, query: &str) -> String {
    format!("{path}{}{query}", if path.contains('?') { '&' } else { '?' })
}

#[tokio::test]
async fn pagination_returns_every_object_once_at_each_page_size() {
    let (emulator, api) = start(quiet(120)).await;
    for resource in RESOURCES {
        let expected = ids(resource, &emulator.objects(resource));
        assert!(!expected.is_empty(), "{resource} is empty");
        for (asked, verbose) in [(250, false), (50, true), (20, false), (7, false)] {
            let path = with(&everything(resource), &format!("page_size={asked}&verbose={verbose}"));
            let pages = api.pages(&path).await;
            let limit = match (resource, verbose) {
                ("appointments", _) => asked.min(20),
                (_, true) => asked.min(50),
                _ => asked,
            };
            assert!(pages.iter().all(|p| p.len() <= limit), "{path}: a page is over {limit}");
            assert!(pages.iter().rev().skip(1).all(|p| p.len() == limit), "{path}: only the last page may be short");
            let got: Vec<String> = pages.iter().flat_map(|p| ids(resource, p)).collect();
            assert_eq!(got, expected, "{path}: every object once, in list order");
        }
    }
    let (_, over) = api.get("/api/appointments?since=2000-01-01&page_size=250").await;
    assert_eq!(over["results"].as_array().unwrap().len(), 20, "appointments clamp to 20");
    let (_, verbose) = api.get("/api/patients?verbose=true&page_size=250").await;
    assert_eq!(verbose["results"].as_array().unwrap().len(), 50, "verbose clamps to 50");
    let (_, default) = api.get("/api/appointments?since=2000-01-01").await;
    assert_eq!(default["results"].as_array().unwrap().len(), 20, "the default is the maximum");
}

#[tokio::test]
async fn previous_links_walk_back_over_the_same_pages() {
    let (_emulator, api) = start(quiet(60)).await;
    let forward = api.pages("/api/patients?page_size=25").await;
    let mut url = {
        let mut last = api.get("/api/patients?page_size=25").await.1;
        while let Some(next) = last["next"].as_str() {
            last = api.get(next).await.1;
        }
        assert!(last["next"].is_null(), "next is null on the last page");
        last["previous"].as_str().map(str::to_string)
    };
    let mut backward = vec![forward.last().unwrap().clone()];
    while let Some(previous) = url {
        let (status, body) = api.get(&previous).await;
        assert_eq!(status, StatusCode::OK);
        assert!(
            previous.starts_with(&api.base) && previous.contains("page_size=25"),
            "absolute, parameters kept: {previous}"
        );
        backward.push(body["results"].as_array().unwrap().clone());
        url = body["previous"].as_str().map(str::to_string);
    }
    backward.reverse();
    assert_eq!(backward, forward);
    let (status, body) = api.get("/api/patients?cursor=not-a-cursor").await;
    assert_eq!((status, body), (StatusCode::NOT_FOUND, json!({"detail": "Invalid cursor"})));
}

#[tokio::test]
async fn since_matches_objects_changed_on_or_after_its_day() {
    let (emulator, api) = start(quiet(150)).await;
    for (resource, field) in [
        ("patients", "updated_at"),
        ("appointments", "updated_at"),
        ("line_items", "updated_at"),
        ("line_item_deletions", "created_at"),
    ] {
        let objects = emulator.objects(resource);
        let mut days: Vec<&str> = objects.iter().map(|o| &o[field].as_str().unwrap()[..10]).collect();
        days.sort();
        let day = days[days.len() * 2 / 3];
        let expected: BTreeSet<String> = objects
            .iter()
            .filter(|o| &o[field].as_str().unwrap()[..10] >= day)
            .map(|o| identity(resource, o))
            .collect();
        for since in [day.to_string(), format!("{day}T23:59:59")] {
            let path = format!("/api/{resource}?since={since}&show_archived=true");
            let got: BTreeSet<String> = api.all(&path).await.iter().map(|o| identity(resource, o)).collect();
            assert_eq!(got, expected, "{path}: by day, the timestamp's time ignored");
        }
    }
    let (status, body) = api.get("/api/patients?since=last-tuesday").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
}

#[tokio::test]
async fn appointments_need_a_date_window_of_at_most_190_days() {
    let (emulator, api) = start(quiet(80)).await;
    let (status, body) = api.get("/api/appointments").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["detail"].as_str().unwrap().contains("date_range"), "{body}");
    let (status, body) = api.get("/api/appointments?date_range=2024-01-01/2024-07-09").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "191 days: {body}");
    assert!(body["detail"].is_string(), "{body}");
    let (status, _) = api.get("/api/appointments?date_range=2024-01-01/2024-07-08").await;
    assert_eq!(status, StatusCode::OK, "190 days");

    let all = emulator.objects("appointments");
    let live: Vec<&Value> = all.iter().filter(|a| a["deleted_flag"] == json!(false)).collect();
    let day = &live[live.len() / 2]["scheduled_time"].as_str().unwrap()[..10];
    let on_day: BTreeSet<String> = live
        .iter()
        .filter(|a| &a["scheduled_time"].as_str().unwrap()[..10] == day)
        .map(|a| identity("appointments", a))
        .collect();
    let got: BTreeSet<String> =
        api.all(&format!("/api/appointments?date={day}")).await.iter().map(|a| identity("appointments", a)).collect();
    assert_eq!(got, on_day, "date= is the scheduled day");
    let range = api.all(&format!("/api/appointments?date_range={day}/{day}")).await;
    assert_eq!(range.len(), on_day.len());
}

#[tokio::test]
async fn archived_appointments_appear_only_with_show_archived() {
    let (emulator, api) = start(quiet(200)).await;
    let archived = emulator.objects("appointments").iter().filter(|a| a["deleted_flag"] == json!(true)).count();
    assert!(archived > 0, "the clinic has archived appointments");
    let shown = api.all("/api/appointments?since=2000-01-01").await;
    assert!(shown.iter().all(|a| a["deleted_flag"] == json!(false)));
    let with_archived = api.all("/api/appointments?since=2000-01-01&show_archived=1").await;
    assert_eq!(with_archived.len(), shown.len() + archived);
}

#[tokio::test]
async fn verbose_only_fields_come_with_verbose_true() {
    let (_emulator, api) = start(quiet(60)).await;
    for (path, fields) in [
        ("/api/patients", &["primary_insurance", "secondary_insurance", "tertiary_insurance"][..]),
        ("/api/allergies", &["description"][..]),
        ("/api/line_items", &["description"][..]),
    ] {
        let plain = api.all(path).await;
        let verbose = api.all(&format!("{path}?verbose=true")).await;
        assert_eq!(plain.len(), verbose.len());
        for field in fields {
            assert!(plain.iter().all(|o| o.get(*field).is_none()), "{path}: {field} without verbose");
            assert!(verbose.iter().all(|o| o.get(*field).is_some()), "{path}: {field} with verbose");
        }
    }
    let patients = api.all("/api/patients?verbose=true").await;
    let insured = patients.iter().filter(|p| p["primary_insurance"]["insurance_company"].is_string()).count();
    assert!(insured > 0 && insured < patients.len(), "some patients pay cash");
}

#[tokio::test]
async fn a_refresh_rotates_the_refresh_token() {
    let config = quiet(5);
    let (emulator, api) = start(config.clone()).await;
    let (http, base) = (&api.http, &api.base);
    let (status, body) =
        token_request(http, base, &config.client_id, &config.client_secret, &config.refresh_token).await;
    assert_eq!(
        (status, body),
        (StatusCode::BAD_REQUEST, json!({"error": "invalid_grant"})),
        "the first token was used"
    );
    let current = emulator.refresh_token().unwrap();
    let body = refresh(http, base, &config, &current).await;
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 172_800);
    assert!(body["scope"].is_string());
    let rotated = body["refresh_token"].as_str().unwrap();
    assert_ne!(rotated, current);
    let (status, _) = token_request(http, base, &config.client_id, &config.client_secret, &current).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "the old refresh token stops working");
    let (status, body) = token_request(http, base, &config.client_id, "wrong", rotated).await;
    assert_eq!((status, body), (StatusCode::UNAUTHORIZED, json!({"error": "invalid_client"})));
    emulator.refuse_refresh(true);
    let (status, body) = token_request(http, base, &config.client_id, &config.client_secret, rotated).await;
    assert_eq!((status, body), (StatusCode::BAD_REQUEST, json!({"error": "invalid_grant"})));
    emulator.refuse_refresh(false);
    refresh(http, base, &config, rotated).await;
    let stats = emulator.stats();
    assert_eq!((stats.token_refreshes, stats.token_refusals, stats.api_calls), (3, 4, 0), "tokens are not API calls");
}

#[tokio::test]
async fn a_missing_or_expired_access_token_is_401() {
    let config = quiet(5);
    let (emulator, mut api) = start(config.clone()).await;
    let response = api.http.get(format!("{}/api/doctors", api.base)).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(response.headers().contains_key("www-authenticate"));
    assert!(response.json::<Value>().await.unwrap()["detail"].is_string());
    assert_eq!(api.get("/api/doctors").await.0, StatusCode::OK);
    emulator.expire_access_tokens();
    let (status, body) = api.get("/api/doctors").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let body = refresh(&api.http, &api.base, &config, &emulator.refresh_token().unwrap()).await;
    api.token = body["access_token"].as_str().unwrap().to_string();
    assert_eq!(api.get("/api/doctors").await.0, StatusCode::OK);
    assert_eq!(emulator.stats().unauthorized, 2);
}

#[tokio::test]
async fn the_hourly_budget_answers_429_until_its_window_turns() {
    let window = Duration::from_secs(2);
    let config = DrChronoConfig { calls_per_window: Some(5), window, ..quiet(5) };
    let (emulator, api) = start(config).await;
    // Windows are aligned to multiples of their length: begin just after one starts.
    let into = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() % window.as_millis();
    tokio::time::sleep(Duration::from_millis((window.as_millis() - into) as u64 + 20)).await;
    for _ in 0..5 {
        assert_eq!(api.get("/api/doctors").await.0, StatusCode::OK);
    }
    let response = api.http.get(format!("{}/api/doctors", api.base)).bearer_auth(&api.token).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = response.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=2).contains(&wait), "Retry-After {wait}");
    let body: Value = response.json().await.unwrap();
    assert!(body["detail"].as_str().unwrap().starts_with("Request was throttled."), "{body}");
    tokio::time::sleep(Duration::from_secs(wait)).await;
    assert_eq!(api.get("/api/doctors").await.0, StatusCode::OK, "the next window admits again");
    let stats = emulator.stats();
    assert_eq!((stats.max_calls_in_window, stats.throttled), (5, 1));
}

#[tokio::test]
async fn a_302_sends_the_client_to_an_equivalent_url() {
    let (emulator, api) = start(quiet(30)).await;
    let (_, plain) = api.get("/api/patients?page_size=10").await;
    emulator.set_faults(Faults { redirect_rate: 1.0, ..Faults::default() });
    let no_follow = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let response =
        no_follow.get(format!("{}/api/patients?page_size=10", api.base)).bearer_auth(&api.token).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::FOUND);
    let location = response.headers()["location"].to_str().unwrap().to_string();
    assert!(location.starts_with(&api.base) && location.contains("page_size=10"), "{location}");
    let (status, moved) = api.get(&location).await;
    assert_eq!((status, &moved), (StatusCode::OK, &plain), "the same page at the new location");
    assert!(!moved["next"].as_str().unwrap().contains("_redirected"), "links do not carry the redirect marker");
    let (status, _) = api.get("/api/patients?page_size=10").await;
    assert_eq!(status, StatusCode::OK, "a client that follows redirects with its headers gets the page");
    assert_eq!(emulator.stats().redirects, 2);
}

#[tokio::test]
async fn injected_errors_are_drf_bodies_and_counted() {
    let (emulator, api) = start(quiet(5)).await;
    emulator.set_faults(Faults { error_rate: 1.0, ..Faults::default() });
    for _ in 0..4 {
        let (status, body) = api.get("/api/doctors").await;
        assert!(status == StatusCode::INTERNAL_SERVER_ERROR || status == StatusCode::SERVICE_UNAVAILABLE);
        assert!(body["detail"].is_string(), "{body}");
    }
    emulator.set_faults(Faults::default());
    assert_eq!(api.get("/api/doctors").await.0, StatusCode::OK);
    let stats = emulator.stats();
    assert_eq!((stats.faults, stats.api_calls, stats.calls_by_path["/api/doctors"]), (4, 5, 5));
    let served: Value =
        api.http.get(format!("{}/_emulator/stats", api.base)).send().await.unwrap().json().await.unwrap();
    assert_eq!(served["faults"], 4);
    assert_eq!(served["max_calls_in_window"], 5, "counted with the quota off too");
}

#[tokio::test]
async fn the_data_envelope_uses_the_schema_keys() {
    let (_emulator, api) = start(DrChronoConfig { envelope: Envelope::Data, ..quiet(10) }).await;
    let (_, patients) = api.get("/api/patients").await;
    assert!(patients["data"].is_array() && patients.get("results").is_none(), "{patients}");
    assert!(patients["previous"].is_null() && patients["next"].is_null());
    let (_, deletions) = api.get("/api/line_item_deletions").await;
    assert!(deletions["results"].is_array(), "the deletions' schema says results: {deletions}");
}

#[tokio::test]
async fn changes_made_in_drchrono_arrive_with_since_today() {
    let (emulator, api) = start(quiet(40)).await;
    let today = chrono::Utc::now().date_naive().to_string();
    assert!(api.all(&format!("/api/patients?since={today}")).await.is_empty(), "nothing generated changed today");
    let patient = emulator.objects("patients")[3].clone();
    let appointment = emulator.objects("appointments")[5].clone();
    let item = emulator.objects("line_items")[2].clone();
    assert!(emulator.modify_patient(patient["id"].as_i64().unwrap()));
    assert!(emulator.modify_appointment(appointment["id"].as_str().unwrap()));
    assert!(emulator.delete_line_item(item["id"].as_i64().unwrap()));
    assert!(!emulator.modify_patient(1), "no such patient");

    let changed = api.all(&format!("/api/patients?since={today}")).await;
    assert_eq!(ids("patients", &changed), vec![patient["id"].to_string()]);
    assert!(
        changed[0]["cell_phone"] != patient["cell_phone"]
            && changed[0]["updated_at"].as_str().unwrap().starts_with(&today)
    );
    let appointments = api.all(&format!("/api/appointments?since={today}&show_archived=true")).await;
    assert_eq!(ids("appointments", &appointments), vec![appointment["id"].to_string()]);
    assert_ne!(appointments[0]["status"], appointment["status"]);
    let deletions = api.all(&format!("/api/line_item_deletions?since={today}")).await;
    assert_eq!(deletions.len(), 1);
    assert_eq!(
        (&deletions[0]["billing_line_item_id"], &deletions[0]["appointment_id"]),
        (&item["id"], &item["appointment"])
    );
    assert!(!ids("line_items", &api.all("/api/line_items").await).contains(&item["id"].to_string()));
    assert_eq!(emulator.counts()["line_items"], emulator.objects("line_items").len());
}

#[tokio::test]
async fn the_clinic_is_the_same_for_the_same_seed_and_day() {
    let day = chrono::NaiveDate::from_ymd_opt(2025, 6, 1);
    let a = serve("127.0.0.1:0".parse().unwrap(), DrChronoConfig { today: day, ..quiet(50) }).await.unwrap();
    let b = serve("127.0.0.1:0".parse().unwrap(), DrChronoConfig { today: day, ..quiet(50) }).await.unwrap();
    let c = serve("127.0.0.1:0".parse().unwrap(), DrChronoConfig { today: day, seed: 8, ..quiet(50) }).await.unwrap();
    for resource in RESOURCES {
        assert_eq!(a.objects(resource), b.objects(resource), "{resource}");
    }
    assert_ne!(a.objects("patients"), c.objects("patients"));
    let counts = a.counts();
    assert!((3..=6).contains(&counts["doctors"]), "{counts:?}");
    assert!((100..=200).contains(&counts["appointments"]), "2–4 per patient: {counts:?}");
    assert_eq!(counts["clinical_notes"], counts["line_items"], "one of each per completed visit");
    assert!(counts["line_item_deletions"] >= 3);
    b.stop().await;
}
