//! The embedded server never outlives the process that started it, even one killed with
//! SIGKILL; a persistent one keeps its data for the next start.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use august_schema::embedded::EmbeddedPostgres;

const HELPER_ROOT: &str = "AUGUST_TEST_EMBEDDED_ROOT";
const HELPER_THROW_AWAY: &str = "AUGUST_TEST_EMBEDDED_THROW_AWAY";

/// Not a test on its own: the process the tests below start and kill.
#[test]
#[ignore = "run by the kill tests as a child process"]
fn embedded_helper_process() {
    let root = PathBuf::from(std::env::var(HELPER_ROOT).unwrap());
    let throw_away = std::env::var(HELPER_THROW_AWAY).unwrap() == "yes";
    let server = EmbeddedPostgres::start(&root, throw_away).unwrap();
    println!("READY {}", server.port());
    std::thread::sleep(Duration::from_secs(120));
}

/// Starts the helper, waits for its server, kills it with SIGKILL; returns the port it used.
fn start_and_kill(root: &Path, throw_away: bool) -> u16 {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "embedded::embedded_helper_process", "--ignored", "--nocapture", "--test-threads=1"])
        .env(HELPER_ROOT, root)
        .env(HELPER_THROW_AWAY, if throw_away { "yes" } else { "no" })
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let port = stdout
        .lines()
        .map_while(Result::ok)
        .find_map(|line| line.split("READY ").nth(1).map(|p| p.trim().parse::<u16>().unwrap()))
        .expect("the helper reports its server");
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_ok(), "server is up");
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    port
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_throw_away_server_is_stopped_and_removed_when_its_process_is_killed() {
    // As the test harness does: the folder itself is a temporary one in /tmp, which the
    // server's user may remove.
    let root = tempfile::Builder::new().prefix("august-pg-kill-").tempdir().unwrap().keep();
    let port = start_and_kill(&root, true);
    wait_until("the folder is removed", || !root.exists());
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err(), "nothing listens any more");
}

#[tokio::test]
async fn a_persistent_server_is_stopped_on_kill_and_its_data_kept_for_the_next_start() {
    let parent = tempfile::tempdir().unwrap();
    let root = parent.path().join("pg");
    let port = start_and_kill(&root, false);
    wait_until("the server has stopped", || !root.join("data/postmaster.pid").exists());
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
    assert!(root.join("data/PG_VERSION").exists(), "data kept");

    let server = EmbeddedPostgres::start(&root, false).unwrap();
    let client = august_schema::connect(&server.url("postgres").parse().unwrap()).await.unwrap();
    let n: i32 = client.query_one("SELECT 1", &[]).await.unwrap().get(0);
    assert_eq!(n, 1);
    drop(client);
    server.stop().unwrap();
    assert!(!root.join("data/postmaster.pid").exists());
}
