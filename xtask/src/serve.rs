//! `cargo xtask serve`: the edge self-hosted on the open-source workerd runtime (no
//! wrangler, no Miniflare). The config is written by `ovation-selfhost`, the same code the
//! integration tests start workerd with (tests/tests/selfhost.rs).

use crate::{build_worker, npm_install, root, step, Result};
use ovation_selfhost::{
    workerd_command, EdgeManifest, Secret, SelfHost, Settlement, SETTLEMENT_SECRET_ENV,
    TENANT_KEYS_ENV,
};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;

/// Address `cargo xtask serve` listens on unless told otherwise.
const LISTEN_DEFAULT: &str = "127.0.0.1:8790";

/// Name of the development keys file `--dev-keys` writes into the data directory.
const DEV_KEYS_FILE: &str = "dev-tenant-keys.json";

/// The workerd binary `cargo xtask serve` runs unless `--workerd` says otherwise: the npm
/// package pinned in package.json.
pub(crate) fn workerd_default() -> PathBuf {
    root().join("node_modules/.bin/workerd")
}

struct ServeArgs {
    host: SelfHost,
    workerd: PathBuf,
    dev_keys: bool,
    config_only: bool,
}

fn parse(args: &[String]) -> Result<ServeArgs> {
    let root = root();
    let mut listen = LISTEN_DEFAULT.to_owned();
    let mut data_dir = root.join(".data/workerd");
    let mut keys_file = None;
    let mut dev_keys = false;
    let mut settlement_url = None;
    let mut settlement_secret_file = None;
    let mut vars = Vec::new();
    let mut workerd = workerd_default();
    let mut config_only = false;
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let mut value = |name: &str| {
            args.next()
                .cloned()
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match arg.as_str() {
            "--listen" => listen = value("--listen")?,
            "--data" => data_dir = PathBuf::from(value("--data")?),
            "--keys-file" => keys_file = Some(PathBuf::from(value("--keys-file")?)),
            "--dev-keys" => dev_keys = true,
            "--settlement-url" => settlement_url = Some(value("--settlement-url")?),
            "--settlement-secret-file" => {
                settlement_secret_file = Some(PathBuf::from(value("--settlement-secret-file")?))
            }
            "--var" => {
                let pair = value("--var")?;
                let (name, val) = pair
                    .split_once('=')
                    .ok_or_else(|| format!("--var takes NAME=VALUE, not `{pair}`"))?;
                vars.push((name.to_owned(), val.to_owned()));
            }
            "--workerd" => workerd = PathBuf::from(value("--workerd")?),
            "--config-only" => config_only = true,
            other => return Err(format!("serve: unknown option `{other}`")),
        }
    }
    if dev_keys && keys_file.is_some() {
        return Err("serve: --dev-keys and --keys-file exclude each other".into());
    }
    let tenant_keys = match keys_file {
        Some(file) => Secret::File(file),
        None if dev_keys => Secret::File(data_dir.join(DEV_KEYS_FILE)),
        None => Secret::Environment(TENANT_KEYS_ENV.into()),
    };
    let settlement = settlement_url.map(|url| Settlement {
        url,
        secret: match settlement_secret_file {
            Some(file) => Secret::File(file),
            None => Secret::Environment(SETTLEMENT_SECRET_ENV.into()),
        },
    });
    Ok(ServeArgs {
        host: SelfHost {
            listen,
            data_dir,
            bundle_dir: root.join("edge-worker/build"),
            tenant_keys,
            settlement,
            vars,
        },
        workerd,
        dev_keys,
        config_only,
    })
}

pub fn serve(args: &[String]) -> Result {
    let ServeArgs {
        host,
        workerd,
        dev_keys,
        config_only,
    } = parse(args)?;
    npm_install()?;
    build_worker(true)?;
    if dev_keys {
        std::fs::create_dir_all(&host.data_dir)
            .map_err(|e| format!("creating {}: {e}", host.data_dir.display()))?;
        let file = host.data_dir.join(DEV_KEYS_FILE);
        std::fs::write(&file, ovation_auth::dev::tenant_keys_json())
            .map_err(|e| format!("writing {}: {e}", file.display()))?;
        eprintln!(
            "development tenant keys in {} (never use them in production)",
            file.display()
        );
    }
    let warn_env = |secret: &Secret| match secret {
        Secret::Environment(name) if std::env::var_os(name).is_none() => {
            eprintln!("warning: {name} is not set in this environment; workerd reads it at start")
        }
        _ => {}
    };
    warn_env(&host.tenant_keys);
    if let Some(settlement) = &host.settlement {
        warn_env(&settlement.secret);
    }
    let manifest =
        EdgeManifest::read(&root().join("edge-worker/wrangler.toml")).map_err(|e| e.to_string())?;
    step("writing the workerd config");
    let config = host.write(&manifest).map_err(|e| e.to_string())?;
    println!("  config   {}", config.display());
    println!("  storage  {}", host.data_dir.join("storage").display());
    println!("  listen   http://{}", host.listen);
    let mut command = workerd_command(&workerd, &config);
    if config_only {
        println!("  serve it with: {command:?}");
        return Ok(());
    }
    step("workerd serve (one process, one machine, every room on it; Ctrl-C stops it)");
    let error = command.exec();
    Err(format!("cannot run {}: {error}", workerd.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|a| a.to_string()).collect()
    }

    #[test]
    fn without_a_keys_file_workerd_reads_the_keys_from_its_environment() {
        let parsed = parse(&args(&["--listen", "*:9000", "--var", "A=b=c"])).unwrap();
        assert_eq!(parsed.host.listen, "*:9000");
        assert_eq!(
            parsed.host.tenant_keys,
            Secret::Environment(TENANT_KEYS_ENV.into())
        );
        assert_eq!(parsed.host.vars, [("A".to_owned(), "b=c".to_owned())]);
        assert!(parsed.host.settlement.is_none());
    }

    #[test]
    fn the_settlement_secret_comes_from_its_file_or_the_environment() {
        let parsed = parse(&args(&["--settlement-url", "http://127.0.0.1:8788"])).unwrap();
        let settlement = parsed.host.settlement.unwrap();
        assert_eq!(
            settlement.secret,
            Secret::Environment(SETTLEMENT_SECRET_ENV.into())
        );
        let parsed = parse(&args(&[
            "--settlement-url",
            "http://s",
            "--settlement-secret-file",
            "/etc/s",
        ]))
        .unwrap();
        assert_eq!(
            parsed.host.settlement.unwrap().secret,
            Secret::File("/etc/s".into())
        );
    }

    #[test]
    fn contradictory_or_unknown_options_are_refused() {
        assert!(parse(&args(&["--dev-keys", "--keys-file", "k.json"])).is_err());
        assert!(parse(&args(&["--var", "NOEQUALS"])).is_err());
        assert!(parse(&args(&["--listen"])).is_err());
        assert!(parse(&args(&["--port", "1"])).is_err());
    }
}
