//! Start-up work shared by the commands: where the database is, migrations, the first admin,
//! the JWT keys.
use crate::auth::{JwtKeys, Role};
use crate::routes::users::{create_user, NewUserBody};
use danbao_persistence::cluster::{ClusterOptions, LocalCluster};
use danbao_persistence::diesel_async::{AsyncConnection, AsyncPgConnection};
use danbao_persistence::models::audit_event::NewAuditEvent;
use danbao_persistence::repo;
use std::path::{Path, PathBuf};

/// The database to use: a server given by URL, or a cluster we started and own.
pub struct Database {
    pub url: String,
    /// Kept alive while the database is used; dropping it stops the cluster.
    pub cluster: Option<LocalCluster>,
}

pub const EMBEDDED_DB_NAME: &str = "danbao";

pub async fn open_database(
    database_url: Option<&str>,
    data_dir: &Path,
) -> anyhow::Result<Database> {
    if let Some(url) = database_url.filter(|u| !u.trim().is_empty()) {
        return Ok(Database {
            url: url.to_owned(),
            cluster: None,
        });
    }
    tracing::info!(data_dir = %data_dir.display(), "no DATABASE_URL: using the local PostgreSQL cluster");
    let cluster = LocalCluster::start(ClusterOptions {
        data_dir: data_dir.to_path_buf(),
        ephemeral: false,
    })?;
    cluster.ensure_database(EMBEDDED_DB_NAME).await?;
    Ok(Database {
        url: cluster.url(EMBEDDED_DB_NAME),
        cluster: Some(cluster),
    })
}

/// An audit event for work done by the command line or at start-up.
pub fn system_event(
    command: &str,
    action: &str,
    entity_type: &str,
    entity_id: impl ToString,
    detail: serde_json::Value,
) -> NewAuditEvent {
    NewAuditEvent {
        actor_kind: "system".into(),
        actor_id: None,
        actor_name: format!("danbao {command}"),
        actor_role: "system".into(),
        action: action.into(),
        entity_type: entity_type.into(),
        entity_id: entity_id.to_string(),
        region_code: None,
        request_id: None,
        detail,
    }
}

/// On a database with no users, creates `admin`. Returns the generated password, if one was.
pub async fn ensure_admin(url: &str, password: Option<String>) -> anyhow::Result<Option<String>> {
    let mut conn = AsyncPgConnection::establish(url).await?;
    if repo::user::count(&mut conn).await? > 0 {
        return Ok(None);
    }
    let given = password.is_some();
    let body = NewUserBody {
        username: "admin".into(),
        display_name: "Administrator".into(),
        password,
        role: Role::Admin,
        centre_id: None,
        bank_id: None,
        region_code: None,
    };
    let view = create_user(&mut conn, body, |id| {
        system_event(
            "serve",
            "user.created",
            "user",
            id,
            serde_json::json!({ "username": "admin", "role": "admin", "first_start": true }),
        )
    })
    .await
    .map_err(|e| anyhow::anyhow!("could not create the first admin: {e}"))?;
    Ok(if given { None } else { view.initial_password })
}

/// JWT keys from the configuration. Without any, an HS256 secret is generated: kept in the
/// data directory for the embedded cluster (tokens survive restarts), per process otherwise.
pub fn jwt_keys(
    secret: Option<&str>,
    algorithm: &str,
    private_key: Option<&Path>,
    public_key: Option<&Path>,
    data_dir: Option<&Path>,
) -> anyhow::Result<JwtKeys> {
    if algorithm != "HS256" {
        let (Some(private), Some(public)) = (private_key, public_key) else {
            anyhow::bail!("DANBAO_JWT_ALGORITHM={algorithm} needs DANBAO_JWT_PRIVATE_KEY and DANBAO_JWT_PUBLIC_KEY (PEM files)");
        };
        return JwtKeys::from_pem(algorithm, &std::fs::read(private)?, &std::fs::read(public)?);
    }
    if let Some(s) = secret.filter(|s| !s.is_empty()) {
        return JwtKeys::hs256(s.as_bytes());
    }
    match data_dir {
        Some(dir) => {
            let path = secret_file(dir);
            let s = match std::fs::read_to_string(&path) {
                Ok(s) => s.trim().to_owned(),
                Err(_) => {
                    let s = crate::auth::random_secret(32);
                    write_private(&path, &s)?;
                    s
                }
            };
            JwtKeys::hs256(s.as_bytes())
        }
        None => {
            tracing::warn!("DANBAO_JWT_SECRET is not set: tokens are signed with a random key and die with this process");
            JwtKeys::hs256(crate::auth::random_secret(32).as_bytes())
        }
    }
}

/// Adds the retired keys of a rotation: `secrets`, comma-separated HS256 secrets; `public_keys`,
/// comma-separated PEM files, each `ALG:path` or a path (then of the current `algorithm`).
/// They verify the tokens they signed until those expire; new tokens use the current key.
pub fn with_previous_keys(
    mut keys: JwtKeys,
    secrets: Option<&str>,
    public_keys: Option<&str>,
    algorithm: &str,
) -> anyhow::Result<JwtKeys> {
    let items = |list: Option<&str>| -> Vec<String> {
        list.unwrap_or("")
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    };
    for secret in items(secrets) {
        keys = keys.with_previous_secret(secret.as_bytes())?;
    }
    for item in items(public_keys) {
        let (alg, path) = match item.split_once(':') {
            Some((alg @ ("EdDSA" | "ES256" | "RS256"), path)) => (alg, path),
            _ => (algorithm, item.as_str()),
        };
        let pem = std::fs::read(path).map_err(|e| {
            anyhow::anyhow!("DANBAO_JWT_PREVIOUS_PUBLIC_KEYS: cannot read {path}: {e}")
        })?;
        keys = keys.with_previous_public_key(alg, &pem)?;
    }
    Ok(keys)
}

fn secret_file(data_dir: &Path) -> PathBuf {
    // Written after initdb (which wants an empty directory); PostgreSQL ignores it.
    data_dir.join("danbao-jwt.secret")
}

fn write_private(path: &Path, content: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(content.as_bytes())?;
    Ok(())
}

/// The personal-data key: DANBAO_DATA_KEY (hex), else a key kept in the data directory of
/// the embedded cluster (outside the database, so a dump alone reveals no id). With an
/// external database there is no safe place to invent one, so it must be given.
pub fn pii_keys(
    data_key: Option<&str>,
    data_dir: Option<&Path>,
) -> anyhow::Result<crate::crypto::PiiKeys> {
    if let Some(k) = data_key.filter(|k| !k.trim().is_empty()) {
        return crate::crypto::PiiKeys::from_hex(k);
    }
    let Some(dir) = data_dir else {
        anyhow::bail!(
            "DANBAO_DATA_KEY is not set: with DATABASE_URL, give the personal-data key as 64 hex digits \
             (for example `openssl rand -hex 32`) and keep it outside the database"
        );
    };
    let path = dir.join("danbao-data.key");
    let hex_key = match std::fs::read_to_string(&path) {
        Ok(s) => s.trim().to_owned(),
        Err(_) => {
            let s = crate::auth::random_secret(32);
            write_private(&path, &s)?;
            s
        }
    };
    crate::crypto::PiiKeys::from_hex(&hex_key)
}

/// Loads the policy presets (idempotent), audited as the command line.
pub async fn load_presets(url: &str) -> anyhow::Result<crate::routes::policies::PresetsLoaded> {
    let mut conn = AsyncPgConnection::establish(url).await?;
    crate::routes::policies::load_all_presets(&mut conn, |id, code| {
        system_event(
            "load-policy-presets",
            "policy.preset_loaded",
            "policy",
            id,
            serde_json::json!({ "code": code }),
        )
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}"))
}
