//! `danbao serve` without DATABASE_URL: it runs its own PostgreSQL cluster in the data
//! directory, which must survive a stop and a restart.

use crate::harness::{danbao, processes_using, traversable_tempdir, Server, STOP_TIMEOUT};
use std::path::Path;
use std::time::{Duration, Instant};

/// The second start on an initialised data directory must be quick.
const RESTART_BUDGET: Duration = Duration::from_secs(10);

const PASSWORD_LINE: &str = "danbao: created user \"admin\" with one-time password: ";

fn serve_embedded(data_dir: &Path) -> std::process::Command {
    let mut cmd = danbao();
    cmd.arg("--data-dir").arg(data_dir);
    cmd
}

fn admin_password(stdout: &str) -> Option<String> {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix(PASSWORD_LINE))
        .map(|p| p.trim().to_owned())
}

/// After the server exits, nothing may still run on its data directory. The postmaster is
/// waited for before danbao exits, so a short grace covers only the kernel's bookkeeping.
fn assert_no_postgres_left(data_dir: &Path) {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let left = processes_using(data_dir);
        if left.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "processes still use {} after danbao exited: {left:?}",
            data_dir.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn items(body: &serde_json::Value) -> &Vec<serde_json::Value> {
    body["items"]
        .as_array()
        .unwrap_or_else(|| panic!("no items in {body}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_cluster_survives_a_restart() {
    let tmp = traversable_tempdir("danbao-e2e-embedded-");
    let data_dir = tmp.path().join("data");

    // First start: initdb, migrations, the first admin with a generated password.
    let (mut server, first_start) = Server::start(serve_embedded(&data_dir)).await;
    println!("first start (initdb + migrations) ready in {first_start:.2?}");
    let stdout = server.stdout();
    let password = admin_password(&stdout)
        .unwrap_or_else(|| panic!("no one-time admin password printed\n{}", server.logs()));
    assert!(
        password.len() >= 12,
        "short generated password {password:?}"
    );
    assert!(
        stdout.contains(&format!("danbao: listening on http://{}", server.addr)),
        "no listening line\n{}",
        server.logs()
    );
    assert!(
        data_dir.join("PG_VERSION").exists(),
        "no cluster in {}",
        data_dir.display()
    );
    // The detector used after the stop sees the running cluster.
    assert!(
        !processes_using(&data_dir).is_empty(),
        "no PostgreSQL process found on {} while danbao runs",
        data_dir.display()
    );

    let token = server.token("admin", &password).await;
    let (status, region) = server
        .post_json(
            &token,
            "/v1/regions",
            &serde_json::json!({ "code": "360000", "name": "江西省" }),
        )
        .await;
    assert_eq!(status, 201, "create region: {region}");
    assert_eq!(region["code"], "360000");
    let (status, bank) = server
        .post_json(
            &token,
            "/v1/banks",
            &serde_json::json!({ "code": "JXRCU", "name": "江西省农村信用社联合社" }),
        )
        .await;
    assert_eq!(status, 201, "create bank: {bank}");
    let bank_id = bank["id"].as_str().expect("bank id").to_owned();

    // SIGTERM: a clean exit, and the cluster stops with the server.
    let status = server.stop(STOP_TIMEOUT);
    assert!(
        status.success(),
        "danbao exited with {status} after SIGTERM\n{}",
        server.logs()
    );
    assert_no_postgres_left(&data_dir);
    drop(server);

    // Second start on the same directory: quick, same data, same admin, no new password.
    let (mut server, second_start) = Server::start(serve_embedded(&data_dir)).await;
    println!("second start ready in {second_start:.2?}");
    assert!(
        second_start < RESTART_BUDGET,
        "second start took {second_start:.2?} (budget {RESTART_BUDGET:?})\n{}",
        server.logs()
    );
    assert!(
        !server.stdout().contains("one-time password"),
        "a new admin password was printed on restart\n{}",
        server.logs()
    );

    // The token signing key lives in the data directory, so the old token still works.
    let (status, me) = server.get_json(&token, "/v1/me").await;
    assert_eq!(status, 200, "token from before the restart: {me}");

    let token = server.token("admin", &password).await;
    let (status, regions) = server.get_json(&token, "/v1/regions").await;
    assert_eq!(status, 200, "list regions: {regions}");
    assert!(
        items(&regions)
            .iter()
            .any(|r| r["code"] == "360000" && r["name"] == "江西省"),
        "region 360000 lost over the restart: {regions}"
    );
    let (status, banks) = server.get_json(&token, "/v1/banks").await;
    assert_eq!(status, 200, "list banks: {banks}");
    assert!(
        items(&banks)
            .iter()
            .any(|b| b["id"] == bank_id.as_str() && b["code"] == "JXRCU"),
        "bank JXRCU lost over the restart: {banks}"
    );

    let status = server.stop(STOP_TIMEOUT);
    assert!(
        status.success(),
        "danbao exited with {status} after SIGTERM\n{}",
        server.logs()
    );
    assert_no_postgres_left(&data_dir);
}
