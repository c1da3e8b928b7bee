//! Storage faults under load: a full disk, the database file moved away and
//! back, PostgreSQL restarted. Through each, `/readyz` tells the truth,
//! every failing call is a quick 503, nothing acknowledged is lost, and
//! service resumes by itself. And a host killed with leases out resumes
//! them at once when it restarts.

use std::fs::Permissions;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::support::eventually;
use crate::support::faults::{Load, Report, Tmpfs, readyz_becomes};
use crate::support::http::{Receiver, Reply, reply};
use crate::support::pg;
use crate::support::pg_server::PgServer;
use crate::support::server::Postern;

/// How long each fault lasts (the measurement).
const FAULT: Duration = Duration::from_secs(3);

fn config(rx: &Receiver) -> String {
    format!(
        "[server]\nbase_url = \"https://2fa.example.com\"\n[api]\ntwo_fa_token_delivery = \"{}\"\n\
         [limits]\ntenant_deliveries_per_minute = 100000\n",
        rx.url("/hook")
    )
}

/// The fault tests' server: a short lease, so a delivery whose outcome was
/// not recorded would be sent again within the test.
fn fault_config(rx: &Receiver) -> String {
    format!("{}[delivery]\nlease_seconds = 10\n", config(rx))
}

/// A provider slow enough that attempts are in flight when a fault begins.
async fn provider() -> Receiver {
    Receiver::start(vec![Reply {
        status: 200,
        body: "ok".into(),
        delay: Duration::from_millis(100),
    }])
    .await
}

/// Runs the workload through one fault (`begin`, [`FAULT`], `end`) and
/// checks what an operator would: readiness within 2 s of the fault and
/// within 5 s of its end, writes back within 5 s, quick 503s only, nothing
/// acknowledged lost, nothing refused sent. Prints the figures.
async fn through_a_fault(
    p: &Postern,
    rx: &Receiver,
    what: &str,
    begin: impl FnOnce(),
    end: impl FnOnce(),
) -> Report {
    assert!(
        readyz_becomes(p, 200, Instant::now(), Duration::from_secs(5))
            .await
            .is_some()
    );
    let load = Load::start(p, &what.replace(' ', "-"), Duration::from_millis(20));
    tokio::time::sleep(Duration::from_secs(1)).await;
    begin();
    let began = Instant::now();
    let down = readyz_becomes(p, 503, began, Duration::from_secs(2)).await;
    tokio::time::sleep(FAULT.saturating_sub(began.elapsed())).await;
    end();
    let ended = Instant::now();
    let up = readyz_becomes(p, 200, ended, Duration::from_secs(5)).await;
    tokio::time::sleep(Duration::from_secs(7).saturating_sub(ended.elapsed())).await;
    let calls = load.stop().await;
    let acknowledged = calls.iter().filter(|c| c.status == 200).count();
    // Everything acknowledged arrives, and once nothing is pending nothing
    // more can be sent: the duplicates counted below are all there will be.
    eventually(
        Duration::from_secs(40),
        "every delivery to settle",
        || async {
            let (_, queued) = p.get("/api/v1/deliveries?limit=1&status=queued").await;
            let (_, sending) = p.get("/api/v1/deliveries?limit=1&status=sending").await;
            let settled = queued["total"] == 0 && sending["total"] == 0;
            (settled && Report::new(&calls, rx, ended).lost.is_empty()).then_some(())
        },
    )
    .await;
    let report = Report::new(&calls, rx, ended);
    println!(
        "{what}: /readyz 503 after {down:?}, 200 after {up:?} of the end; {} calls, {acknowledged} acknowledged, {} refused (503), {} duplicates",
        report.calls, report.refused, report.duplicates
    );
    let logs = p.logs();
    assert!(
        down.is_some(),
        "{what}: /readyz stayed 200 during the fault:\n{logs}"
    );
    assert!(
        up.is_some(),
        "{what}: /readyz not 200 within 5 s of the end:\n{logs}"
    );
    assert!(
        report.bad_answers.is_empty(),
        "{what}: {:?}",
        report.bad_answers
    );
    assert!(
        report.failed_after_recovery.is_empty(),
        "{what}: writes still failing 5 s after the fault: {:?}\n{logs}",
        report.failed_after_recovery
    );
    assert!(
        report.refused_but_sent.is_empty(),
        "{what}: answered 503 but sent: {:?}",
        report.refused_but_sent
    );
    assert!(!logs.contains("panicked"), "{logs}");
    assert_eq!(
        report.duplicates, 0,
        "{what}: outcomes not recorded became duplicates:\n{logs}"
    );
    report
}

/// The SQLite faults run in the SQLite pass only.
fn sqlite_pass(test: &str) -> bool {
    if pg::admin_url().is_some() {
        eprintln!("SKIPPED {test} in the PostgreSQL pass: it is about the SQLite file");
        return false;
    }
    true
}

#[tokio::test(flavor = "multi_thread")]
async fn sqlite_a_full_disk_is_reported_and_recovered_from() {
    if !sqlite_pass("sqlite_a_full_disk_is_reported_and_recovered_from") {
        return;
    }
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let Some(disk) = Tmpfs::mount(&dir.path().join("data"), "48m") else {
        panic!("cannot mount a tmpfs (needs CAP_SYS_ADMIN, which the CI container has)");
    };
    let rx = provider().await;
    let p = Postern::start_in(dir, &fault_config(&rx), &[]).await;
    let filler = std::sync::Mutex::new(None);
    let report = through_a_fault(
        &p,
        &rx,
        "full disk",
        || *filler.lock().unwrap() = Some(disk.fill()),
        || {
            let _ = std::fs::remove_file(filler.lock().unwrap().take().unwrap());
        },
    )
    .await;
    assert!(
        report.refused > 0,
        "the fault did not bite: {report:?}\n{}",
        p.logs()
    );
    let metrics = p.metrics().await;
    assert!(metrics.contains("postern_store_up 1"), "{metrics}");
}

#[tokio::test(flavor = "multi_thread")]
async fn sqlite_a_database_moved_away_and_back_is_never_replaced_by_an_empty_one() {
    if !sqlite_pass("sqlite_a_database_moved_away_and_back") {
        return;
    }
    let rx = provider().await;
    let p = Postern::start_on(&fault_config(&rx), None, &[]).await;
    let data = p.dir.path().join("data");
    let (db, away) = (data.join("postern.db"), data.join("postern.db.away"));
    let report = through_a_fault(
        &p,
        &rx,
        "database moved away",
        || std::fs::rename(&db, &away).unwrap(),
        || std::fs::rename(&away, &db).unwrap(),
    )
    .await;
    assert!(
        report.refused > 0,
        "the fault did not bite: {report:?}\n{}",
        p.logs()
    );
    // Everything written before, during and after is in the one file.
    let (s, v) = p.get("/api/v1/deliveries?limit=1").await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["total"], report.acknowledged as u64, "{v}");
}

#[tokio::test(flavor = "multi_thread")]
async fn sqlite_a_read_only_data_directory_is_reported_and_recovered_from() {
    if !sqlite_pass("sqlite_a_read_only_data_directory") {
        return;
    }
    // Permissions bind only a user other than root: the server runs as
    // `nobody` (65534) when the test is root, else as the test's own user.
    let root = std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0);
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let rx = provider().await;
    let p = if root {
        for d in [dir.path(), data.as_path()] {
            std::os::unix::fs::chown(d, Some(NOBODY), Some(NOBODY)).unwrap();
        }
        Postern::start_as(dir, &fault_config(&rx), NOBODY).await
    } else {
        Postern::start_in(dir, &fault_config(&rx), &[]).await
    };
    let read_only = |on: bool| {
        let (dir_mode, file_mode) = if on { (0o555, 0o444) } else { (0o755, 0o644) };
        for f in ["postern.db", "postern.db-wal", "postern.db-shm"] {
            let _ = std::fs::set_permissions(data.join(f), Permissions::from_mode(file_mode));
        }
        std::fs::set_permissions(&data, Permissions::from_mode(dir_mode)).unwrap();
    };
    let report = through_a_fault(
        &p,
        &rx,
        "read-only data dir",
        || read_only(true),
        || read_only(false),
    )
    .await;
    assert!(
        report.refused > 0,
        "the fault did not bite: {report:?}\n{}",
        p.logs()
    );
}

/// The unprivileged user the read-only test runs the server as.
const NOBODY: u32 = 65534;

#[tokio::test(flavor = "multi_thread")]
async fn postgres_restarted_under_a_running_postern() {
    if !pg::available("postgres_restarted_under_a_running_postern") {
        return;
    }
    let Some(server) = PgServer::start() else {
        panic!("PostgreSQL's server binaries are not under /usr/lib/postgresql");
    };
    let rx = provider().await;
    let url = server.url();
    let env = [
        ("POSTERN_SERVER__DATABASE_URL", url.as_str()),
        ("POSTERN_SERVER__SECRET_KEY", pg::SECRET_KEY),
    ];
    let p = Postern::start_on(&fault_config(&rx), None, &env).await;
    through_a_fault(
        &p,
        &rx,
        "PostgreSQL restart",
        || server.stop(),
        || server.pg_ctl_start(),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restarted_host_resumes_its_leased_deliveries_at_once() {
    const N: usize = 1000;
    // The provider hangs: every delivery is leased, 64 of them mid-send.
    let rx = Receiver::start(vec![Reply {
        status: 200,
        body: "ok".into(),
        delay: Duration::from_secs(120),
    }])
    .await;
    let config = format!(
        "{}tenant_max_concurrent_deliveries = 64\n[delivery]\nworkers = 64\nlease_seconds = 60\n",
        config(&rx)
    );
    let mut p = Postern::start(&config).await;
    let url = p.url("/api/v1/channels/url/test");
    let client = Postern::client();
    for i in 0..N {
        let (client, url) = (client.clone(), url.clone());
        tokio::spawn(async move {
            let _ = client
                .post(url)
                .bearer_auth(crate::support::server::ADMIN)
                .json(&serde_json::json!({ "sendTo": format!("lease{i}@example.com") }))
                .send()
                .await;
        });
    }
    eventually(
        Duration::from_secs(60),
        "all deliveries to be stored",
        || async {
            let (_, v) = p.get("/api/v1/deliveries?limit=1&status=sending").await;
            (v["total"] == N as u64).then_some(())
        },
    )
    .await;
    p.kill9();
    rx.set_script(vec![reply(200, "ok")]);
    let restarted = Instant::now();
    let p = p.restart().await;
    let all_in = eventually(
        Duration::from_secs(60),
        "every delivery to arrive",
        || async {
            let got: std::collections::HashSet<String> = rx
                .requests()
                .iter()
                .filter_map(|r| r.form_get("email"))
                .collect();
            (got.len() == N).then(|| restarted.elapsed())
        },
    )
    .await;
    println!("{N} leased deliveries resumed and delivered {all_in:?} after the restart began");
    assert!(
        all_in < Duration::from_secs(5),
        "took {all_in:?} (the lease is 60 s):\n{}",
        p.logs()
    );
    assert!(
        p.logs()
            .contains("resuming deliveries leased by this host's previous run")
    );
}
