//! A private PostgreSQL run from the server binaries installed on this machine, for the
//! zero-setup paths: `august --embedded …`, the demo, and the test harness.
//!
//! It lives in a folder of its own (`data/`, `postgres.log`, the unix socket), is created with
//! `initdb` on first use and reused afterwards, listens on a free loopback port with
//! `wal_level = logical`, and runs as the `postgres` OS user when August runs as root
//! (Postgres refuses to run as root).
//!
//! It never outlives the process that started it: beside the server runs a small guardian
//! shell that blocks reading a pipe whose other end only this process holds. When the process
//! exits for any reason, even `kill -9`, the pipe closes and the guardian stops the server
//! (and, for throw-away clusters, removes the folder).

use std::fs;
use std::io::Write;
use std::net::TcpListener;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;

/// Why the embedded server could not be had. Always permanent for the command at hand.
#[derive(Debug, thiserror::Error)]
#[error("embedded PostgreSQL: {0}")]
pub struct EmbeddedError(String);

fn fail(message: impl Into<String>) -> EmbeddedError {
    EmbeddedError(message.into())
}

/// A running private server.
#[derive(Debug)]
pub struct EmbeddedPostgres {
    layout: Layout,
    port: u16,
    // Held open for the life of the process; its closing is the guardian's signal.
    _guardian: Mutex<Child>,
}

/// Where the server's programs and files are, and whom it runs as.
#[derive(Debug)]
struct Layout {
    bin_dir: PathBuf,
    root: PathBuf,
    run_as: Option<(u32, u32)>,
}

/// Settings appended to `postgresql.conf` at `initdb`.
const SERVER_SETTINGS: &str = "
# set by august (embedded)
listen_addresses = '127.0.0.1'
wal_level = logical
max_wal_senders = 64
max_replication_slots = 64
max_connections = 300
shared_buffers = 128MB
log_min_messages = warning
";

impl EmbeddedPostgres {
    /// Starts the server kept in `root`, creating it first if needed. With `throw_away`, the
    /// folder is removed when this process ends and durability is traded for speed
    /// (`fsync = off`: only an operating-system crash could lose data); the server's user must
    /// be allowed to remove `root` (a fresh temporary folder is).
    pub fn start(root: &Path, throw_away: bool) -> Result<Self, EmbeddedError> {
        let bin_dir = find_bin_dir()?;
        fs::create_dir_all(root).map_err(|e| fail(format!("cannot create {}: {e}", root.display())))?;
        let root = root.canonicalize().map_err(|e| fail(format!("{}: {e}", root.display())))?;
        let running_as_root = fs::metadata("/proc/self").map(|m| m.uid() == 0).unwrap_or(false);
        let run_as = if running_as_root { Some(postgres_user_ids()?) } else { None };
        if let Some((uid, gid)) = run_as {
            std::os::unix::fs::chown(&root, Some(uid), Some(gid))
                .map_err(|e| fail(format!("chown {}: {e}", root.display())))?;
        }
        let layout = Layout { bin_dir, root, run_as };
        // Checked before the guardian exists: it would stop another process's server.
        if layout
            .pg_ctl(&["status"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
        {
            return Err(fail(format!(
                "the server in {} is already running under another process; stop it first",
                layout.root.display()
            )));
        }
        let guardian = spawn_guardian(&layout, throw_away)?;
        if !layout.root.join("data/PG_VERSION").exists() {
            layout.init(throw_away)?;
        }
        let port = layout.start_on_free_port()?;
        Ok(Self { layout, port, _guardian: Mutex::new(guardian) })
    }

    /// Loopback address the server listens on.
    pub fn host(&self) -> &str {
        "127.0.0.1"
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A `postgres://` URL for `dbname` as the superuser `postgres`.
    pub fn url(&self, dbname: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{dbname}", self.port)
    }

    /// Path of one of the server's programs (`pg_recvlogical`, `pgbench`, …).
    pub fn bin(&self, program: &str) -> PathBuf {
        self.layout.bin_dir.join(program)
    }

    /// Restarts the server (`pg_ctl restart -m fast`), dropping every connection.
    pub fn restart(&self) -> Result<(), EmbeddedError> {
        self.layout.run_pg_ctl(&["restart", "-m", "fast", "-w", "-t", "60"])
    }

    /// Restarts the server as after a crash (`pg_ctl restart -m immediate`): every process is
    /// killed without a checkpoint, and the server recovers from its WAL at start.
    pub fn restart_immediate(&self) -> Result<(), EmbeddedError> {
        self.layout.run_pg_ctl(&["restart", "-m", "immediate", "-w", "-t", "60"])
    }

    /// Stops the server (`pg_ctl stop -m fast`); the data stays for the next start.
    pub fn stop(&self) -> Result<(), EmbeddedError> {
        self.layout.run_pg_ctl(&["stop", "-m", "fast", "-w", "-t", "60"])
    }
}

impl Layout {
    fn init(&self, throw_away: bool) -> Result<(), EmbeddedError> {
        let out = self
            .command("initdb")
            .arg("-D")
            .arg(self.root.join("data"))
            .args(["-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync"])
            .output()
            .map_err(|e| fail(format!("initdb: {e}")))?;
        if !out.status.success() {
            return Err(fail(format!("initdb failed: {}", String::from_utf8_lossy(&out.stderr).trim())));
        }
        let mut conf = fs::OpenOptions::new()
            .append(true)
            .open(self.root.join("data/postgresql.conf"))
            .map_err(|e| fail(format!("postgresql.conf: {e}")))?;
        let speed = if throw_away { "fsync = off\nfull_page_writes = off\n" } else { "" };
        write!(conf, "{SERVER_SETTINGS}unix_socket_directories = '{}'\n{speed}", self.root.display())
            .map_err(|e| fail(e.to_string()))
    }

    fn start_on_free_port(&self) -> Result<u16, EmbeddedError> {
        for _ in 0..5 {
            let port = free_port()?;
            let started = self
                .pg_ctl(&["start", "-w", "-t", "60", "-o", &format!("-p {port}")])
                .arg("-l")
                .arg(self.root.join("postgres.log"))
                .process_group(0)
                .stdout(Stdio::null())
                .status()
                .map_err(|e| fail(format!("pg_ctl start: {e}")))?;
            if started.success() {
                return Ok(port);
            }
        }
        let log = fs::read_to_string(self.root.join("postgres.log")).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(5).collect();
        Err(fail(format!("the server did not start; last log lines: {}", tail.join(" | "))))
    }

    fn run_pg_ctl(&self, args: &[&str]) -> Result<(), EmbeddedError> {
        let status = self.pg_ctl(args).stdout(Stdio::null()).status().map_err(|e| fail(format!("pg_ctl: {e}")))?;
        if status.success() {
            Ok(())
        } else {
            Err(fail(format!("pg_ctl {} failed ({status})", args[0])))
        }
    }

    fn pg_ctl(&self, args: &[&str]) -> Command {
        let mut command = self.command("pg_ctl");
        command.args(args).arg("-D").arg(self.root.join("data"));
        command
    }

    fn command(&self, program: &str) -> Command {
        let mut command = Command::new(self.bin_dir.join(program));
        command.current_dir(&self.root);
        if let Some((uid, gid)) = self.run_as {
            command.uid(uid).gid(gid);
        }
        command
    }
}

/// The guardian waits for this process to end, then stops the server (and removes `root`
/// when it was a throw-away one).
fn spawn_guardian(layout: &Layout, throw_away: bool) -> Result<Child, EmbeddedError> {
    let script = r#"trap '' INT TERM HUP; read _; "$1" stop -D "$2" -m fast -w -t 30 >/dev/null 2>&1 || "$1" stop -D "$2" -m immediate >/dev/null 2>&1; [ "$4" = yes ] && rm -rf "$3""#;
    let mut command = Command::new("sh");
    command
        .args(["-c", script, "august-pg-guardian"])
        .arg(layout.bin_dir.join("pg_ctl"))
        .arg(layout.root.join("data"))
        .arg(&layout.root)
        .arg(if throw_away { "yes" } else { "no" })
        .current_dir(&layout.root)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0);
    if let Some((uid, gid)) = layout.run_as {
        command.uid(uid).gid(gid);
    }
    command.spawn().map_err(|e| fail(format!("guardian: {e}")))
}

fn find_bin_dir() -> Result<PathBuf, EmbeddedError> {
    let has_initdb = |dir: &Path| dir.join("initdb").is_file();
    if let Ok(dir) = std::env::var("AUGUST_PG_BIN") {
        // Absolute, as the programs run from the cluster's own folder.
        let dir = PathBuf::from(dir);
        return if has_initdb(&dir) {
            dir.canonicalize().map_err(|e| fail(format!("AUGUST_PG_BIN={}: {e}", dir.display())))
        } else {
            Err(fail(format!("AUGUST_PG_BIN={} has no initdb", dir.display())))
        };
    }
    let mut versions: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .filter_map(|e| Some((e.file_name().to_str()?.parse::<u32>().ok()?, e.path().join("bin"))))
        .filter(|(_, bin)| has_initdb(bin))
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Ok(bin);
    }
    std::env::var_os("PATH")
        .and_then(|paths| std::env::split_paths(&paths).find(|dir| has_initdb(dir)))
        .and_then(|dir| dir.join("initdb").canonicalize().ok()?.parent().map(Path::to_path_buf))
        .ok_or_else(|| fail("no PostgreSQL server binaries (initdb) found: install them (apt-get install postgresql) or set AUGUST_PG_BIN"))
}

fn postgres_user_ids() -> Result<(u32, u32), EmbeddedError> {
    let passwd = fs::read_to_string("/etc/passwd").map_err(|e| fail(format!("/etc/passwd: {e}")))?;
    passwd
        .lines()
        .map(|line| line.split(':').collect::<Vec<_>>())
        .find(|fields| fields.first() == Some(&"postgres") && fields.len() > 3)
        .and_then(|fields| Some((fields[2].parse().ok()?, fields[3].parse().ok()?)))
        .ok_or_else(|| fail("running as root, and there is no `postgres` OS user to run the server as"))
}

fn free_port() -> Result<u16, EmbeddedError> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| fail(format!("no free port: {e}")))?;
    listener.local_addr().map(|a| a.port()).map_err(|e| fail(e.to_string()))
}
