//! Starting, restarting and finding the one PostgreSQL server a test run uses.

use std::fs;
use std::io::Write;
use std::net::TcpListener;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};

use august_schema::{migrate, Migration};

/// The server tests run against.
#[derive(Debug)]
pub struct Cluster {
    /// Host to connect to.
    pub host: String,
    /// Port to connect to.
    pub port: u16,
    /// Superuser (or a user allowed to create databases).
    pub user: String,
    /// Password, for an external server that needs one.
    pub password: Option<String>,
    /// Name of the migrated template database each test copies.
    pub template: String,
    private: Option<PrivateCluster>,
}

#[derive(Debug)]
struct PrivateCluster {
    bin_dir: PathBuf,
    data_dir: PathBuf,
    run_as: Option<(u32, u32)>,
    // Held open for the life of the process; its closing is the guardian's signal.
    _guardian: Mutex<Child>,
}

static CLUSTER: OnceLock<Result<Cluster, String>> = OnceLock::new();

/// The run's server, started on first use. Panics with a clear message when no server can be
/// had: a test that needs Postgres cannot go on without one. A failed start is remembered, so
/// the other tests fail at once with the same message instead of trying again.
pub fn cluster() -> &'static Cluster {
    let cluster = CLUSTER.get_or_init(|| {
        let cluster = match std::env::var("AUGUST_TEST_DATABASE_URL") {
            Ok(url) if !url.trim().is_empty() => external(&url)?,
            _ => start_private().map_err(|e| format!("cannot start a private PostgreSQL for the tests: {e}"))?,
        };
        create_template(&cluster).map_err(|e| format!("cannot prepare the template database: {e}"))?;
        Ok(cluster)
    });
    match cluster {
        Ok(cluster) => cluster,
        Err(e) => panic!("{e}"),
    }
}

impl Cluster {
    /// A `postgres://` URL for database `dbname` on this server.
    pub fn url(&self, dbname: &str) -> String {
        let auth = match &self.password {
            Some(p) => format!("{}:{}", self.user, p),
            None => self.user.clone(),
        };
        format!("postgres://{auth}@{}:{}/{dbname}", self.host, self.port)
    }

    /// Path of a PostgreSQL program (`pg_recvlogical`, `pgbench`, …) of the private cluster.
    /// `None` against an external server.
    pub fn bin(&self, program: &str) -> Option<PathBuf> {
        self.private.as_ref().map(|p| p.bin_dir.join(program))
    }

    /// Restarts the server (`pg_ctl restart -m fast`), dropping every connection. Panics for
    /// an external server, which tests must not restart.
    pub fn restart(&self) {
        let private = self.private.as_ref().expect("only the private test cluster can be restarted");
        let status = private
            .command("pg_ctl")
            .args(["restart", "-m", "fast", "-w", "-t", "60", "-D"])
            .arg(&private.data_dir)
            .stdout(Stdio::null())
            .status()
            .expect("pg_ctl runs");
        assert!(status.success(), "pg_ctl restart failed: {status}");
    }
}

impl PrivateCluster {
    fn command(&self, program: &str) -> Command {
        let mut command = Command::new(self.bin_dir.join(program));
        if let Some((uid, gid)) = self.run_as {
            command.uid(uid).gid(gid);
        }
        command
    }
}

fn external(url: &str) -> Result<Cluster, String> {
    let config: tokio_postgres::Config =
        url.parse().map_err(|_| "AUGUST_TEST_DATABASE_URL is not a valid connection string".to_string())?;
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        Some(tokio_postgres::config::Host::Unix(p)) => p.display().to_string(),
        None => "localhost".to_string(),
    };
    Ok(Cluster {
        host,
        port: config.get_ports().first().copied().unwrap_or(5432),
        user: config.get_user().unwrap_or("postgres").to_string(),
        password: config.get_password().map(|p| String::from_utf8_lossy(p).into_owned()),
        template: format!("august_template_{}", std::process::id()),
        private: None,
    })
}

fn start_private() -> Result<Cluster, String> {
    let bin_dir = find_bin_dir()?;
    let root = tempfile::Builder::new()
        .prefix("august-pg-")
        .tempdir()
        .map_err(|e| format!("temporary folder: {e}"))?
        .keep();
    let running_as_root = fs::metadata(&root).map_err(|e| e.to_string())?.uid() == 0;
    let run_as = if running_as_root {
        let ids = postgres_user_ids()?;
        std::os::unix::fs::chown(&root, Some(ids.0), Some(ids.1)).map_err(|e| format!("chown {}: {e}", root.display()))?;
        Some(ids)
    } else {
        None
    };
    let data_dir = root.join("data");
    let bin_dir = bin_dir.canonicalize().map_err(|e| e.to_string())?;
    let guardian = spawn_guardian(&bin_dir, &root, &data_dir, run_as)?;
    let private = PrivateCluster { bin_dir, data_dir: data_dir.clone(), run_as, _guardian: Mutex::new(guardian) };

    let out = private
        .command("initdb")
        .args(["-D"])
        .arg(&data_dir)
        .args(["-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync"])
        .current_dir(&root)
        .output()
        .map_err(|e| format!("initdb: {e}"))?;
    if !out.status.success() {
        return Err(format!("initdb failed: {}", String::from_utf8_lossy(&out.stderr)));
    }

    let mut last_error = String::new();
    for _ in 0..5 {
        let port = free_port()?;
        let mut conf = fs::OpenOptions::new()
            .append(true)
            .open(data_dir.join("postgresql.conf"))
            .map_err(|e| format!("postgresql.conf: {e}"))?;
        writeln!(
            conf,
            "\n# august test cluster\nport = {port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{root}'\n\
             wal_level = logical\nmax_wal_senders = 64\nmax_replication_slots = 64\nmax_connections = 300\n\
             fsync = off\nfull_page_writes = off\nshared_buffers = 128MB\nlog_min_messages = warning\n",
            root = root.display()
        )
        .map_err(|e| e.to_string())?;
        let status = private
            .command("pg_ctl")
            .args(["start", "-w", "-t", "60", "-D"])
            .arg(&data_dir)
            .arg("-l")
            .arg(root.join("postgres.log"))
            .current_dir(&root)
            .process_group(0)
            .stdout(Stdio::null())
            .status()
            .map_err(|e| format!("pg_ctl start: {e}"))?;
        if status.success() {
            return Ok(Cluster {
                host: "127.0.0.1".to_string(),
                port,
                user: "postgres".to_string(),
                password: None,
                template: "august_template".to_string(),
                private: Some(private),
            });
        }
        last_error = fs::read_to_string(root.join("postgres.log")).unwrap_or_default();
    }
    Err(format!("postgres did not start: {last_error}"))
}

/// The guardian waits for this process to end, then stops the cluster and removes `root`.
fn spawn_guardian(bin_dir: &Path, root: &Path, data_dir: &Path, run_as: Option<(u32, u32)>) -> Result<Child, String> {
    let pg_ctl = bin_dir.join("pg_ctl");
    let script = r#"trap '' INT TERM HUP; read _; "$1" stop -D "$2" -m immediate -w >/dev/null 2>&1; rm -rf "$3""#;
    let mut command = Command::new("sh");
    command
        .args(["-c", script, "guardian"])
        .arg(pg_ctl)
        .arg(data_dir)
        .arg(root)
        .current_dir(root)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0);
    if let Some((uid, gid)) = run_as {
        command.uid(uid).gid(gid);
    }
    command.spawn().map_err(|e| format!("guardian: {e}"))
}

fn find_bin_dir() -> Result<PathBuf, String> {
    let has_initdb = |dir: &Path| dir.join("initdb").is_file();
    if let Ok(dir) = std::env::var("AUGUST_PG_BIN") {
        let dir = PathBuf::from(dir);
        return if has_initdb(&dir) { Ok(dir) } else { Err(format!("AUGUST_PG_BIN={} has no initdb", dir.display())) };
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
    let on_path = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).find(|dir| has_initdb(dir)))
        .unwrap_or_default();
    on_path.ok_or_else(|| {
        "no PostgreSQL server binaries (initdb) found: install them (apt-get install postgresql), \
         or set AUGUST_PG_BIN, or point AUGUST_TEST_DATABASE_URL at a server"
            .to_string()
    })
}

fn postgres_user_ids() -> Result<(u32, u32), String> {
    let passwd = fs::read_to_string("/etc/passwd").map_err(|e| format!("/etc/passwd: {e}"))?;
    passwd
        .lines()
        .map(|line| line.split(':').collect::<Vec<_>>())
        .find(|fields| fields.first() == Some(&"postgres") && fields.len() > 3)
        .and_then(|fields| Some((fields[2].parse().ok()?, fields[3].parse().ok()?)))
        .ok_or_else(|| "running as root, and there is no `postgres` OS user to run the server as".to_string())
}

fn free_port() -> Result<u16, String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("no free port: {e}"))?;
    listener.local_addr().map(|a| a.port()).map_err(|e| e.to_string())
}

/// Migrates the template database once, on a thread of its own (the caller may be inside an
/// async runtime, where a second runtime cannot be started).
fn create_template(cluster: &Cluster) -> Result<(), String> {
    let admin = cluster.url("postgres");
    let template = cluster.template.clone();
    let url = cluster.url(&template);
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
        runtime.block_on(async move {
            let admin = connect(&admin).await?;
            for statement in [format!("DROP DATABASE IF EXISTS {template}"), format!("CREATE DATABASE {template}")] {
                admin.batch_execute(&statement).await.map_err(|e| format!("{statement}: {}", august_schema::DbError::new("", e)))?;
            }
            let mut client = connect(&url).await?;
            migrate(&mut client, Migration::embedded()).await.map_err(|e| e.to_string())?;
            Ok(())
        })
    })
    .join()
    .map_err(|_| "template thread panicked".to_string())?
}

pub(crate) async fn connect(url: &str) -> Result<tokio_postgres::Client, String> {
    let config: tokio_postgres::Config = url.parse().map_err(|e| format!("{e}"))?;
    august_schema::connect(&config).await.map_err(|e| e.to_string())
}

pub(crate) fn is_private(cluster: &Cluster) -> bool {
    cluster.private.is_some()
}
