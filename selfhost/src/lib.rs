//! Self-hosting the edge Worker on the open-source `workerd` runtime, without wrangler or
//! Miniflare: one process, one machine, every room on it.
//!
//! [`EdgeManifest`] reads what `edge-worker/wrangler.toml` declares (compatibility date and
//! flags, Durable Object bindings and which classes are SQLite-backed), so the self-hosted
//! Worker is configured exactly as the deployed one. [`SelfHost::write`] copies the built
//! bundle into a data directory and writes a workerd Cap'n Proto config beside it;
//! [`workerd_command`] is the command that serves it. `cargo xtask serve` and the
//! integration tests (`tests/tests/selfhost.rs`) both use this code.
//!
//! Layout of a data directory:
//! ```text
//! DIR/config.capnp   the workerd config (no secret in it: secrets are read by workerd at
//!                    start, from a file it embeds or from its environment)
//! DIR/bundle/        the Worker bundle as started (index.js + index_bg.wasm)
//! DIR/storage/       Durable Object storage: one directory per class (its unique key),
//!                    one SQLite file per object
//! ```

#![forbid(unsafe_code)]

use std::fmt;
use std::path::{Component, Path, PathBuf};
use std::process::Command;

/// Prefix of every Durable Object namespace's `uniqueKey`. workerd derives object ids and
/// the storage directory's name from it: changing it orphans every stored room.
pub const UNIQUE_KEY_PREFIX: &str = "ovation-edge-";

/// Name of the config file inside the data directory.
pub const CONFIG_FILE: &str = "config.capnp";

/// Environment variable workerd reads the tenant keys from when no keys file is given.
pub const TENANT_KEYS_ENV: &str = "OVATION_TENANT_KEYS";

/// Environment variable workerd reads the settlement secret from when no file is given.
pub const SETTLEMENT_SECRET_ENV: &str = "OVATION_SETTLEMENT_SECRET";

/// Why a config could not be written.
#[derive(Debug)]
pub enum Error {
    /// A file or directory could not be read or written.
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    /// wrangler.toml does not say what the Worker needs.
    Manifest(String),
    /// A value cannot be put in the config (a control character, an empty name...).
    BadValue { what: String, value: String },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io { path, error } => write!(f, "{}: {error}", path.display()),
            Error::Manifest(why) => write!(f, "wrangler.toml: {why}"),
            Error::BadValue { what, value } => write!(f, "{what} cannot be `{value}`"),
        }
    }
}

impl std::error::Error for Error {}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |error| Error::Io {
        path: path.to_path_buf(),
        error,
    }
}

/// A Durable Object binding of the Worker (`[[durable_objects.bindings]]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DurableObjectBinding {
    /// The name the Worker reads (`env.durable_object("ROOMS")`).
    pub binding: String,
    /// The exported class.
    pub class: String,
    /// Whether a migration declares the class SQLite-backed (`new_sqlite_classes`).
    pub sqlite: bool,
}

/// What wrangler.toml declares about the Worker that workerd must be told too.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EdgeManifest {
    pub compatibility_date: String,
    pub compatibility_flags: Vec<String>,
    pub durable_objects: Vec<DurableObjectBinding>,
}

impl EdgeManifest {
    /// Reads `wrangler.toml` at `path`.
    pub fn read(path: &Path) -> Result<EdgeManifest, Error> {
        let text = std::fs::read_to_string(path).map_err(io(path))?;
        EdgeManifest::from_wrangler_toml(&text)
    }

    /// Parses the text of a wrangler.toml.
    pub fn from_wrangler_toml(text: &str) -> Result<EdgeManifest, Error> {
        let doc: toml_edit::DocumentMut = text
            .parse()
            .map_err(|e: toml_edit::TomlError| Error::Manifest(e.to_string()))?;
        let compatibility_date = doc
            .get("compatibility_date")
            .and_then(|v| v.as_str())
            .ok_or_else(|| Error::Manifest("no compatibility_date".into()))?
            .to_owned();
        let compatibility_flags = match doc.get("compatibility_flags") {
            None => Vec::new(),
            Some(item) => item
                .as_array()
                .ok_or_else(|| Error::Manifest("compatibility_flags is not a list".into()))?
                .iter()
                .map(|v| {
                    v.as_str().map(str::to_owned).ok_or_else(|| {
                        Error::Manifest("compatibility_flags holds a non-string".into())
                    })
                })
                .collect::<Result<_, _>>()?,
        };
        let mut sqlite_classes = Vec::new();
        if let Some(migrations) = doc.get("migrations").and_then(|m| m.as_array_of_tables()) {
            for migration in migrations.iter() {
                if let Some(classes) = migration
                    .get("new_sqlite_classes")
                    .and_then(|c| c.as_array())
                {
                    sqlite_classes.extend(classes.iter().filter_map(|c| c.as_str()));
                }
            }
        }
        let bindings = doc
            .get("durable_objects")
            .and_then(|d| d.get("bindings"))
            .and_then(|b| b.as_array_of_tables())
            .ok_or_else(|| Error::Manifest("no [[durable_objects.bindings]]".into()))?;
        let mut durable_objects = Vec::new();
        for table in bindings.iter() {
            let field = |name: &str| {
                table
                    .get(name)
                    .and_then(|v| v.as_str())
                    .map(str::to_owned)
                    .ok_or_else(|| {
                        Error::Manifest(format!("a Durable Object binding has no {name}"))
                    })
            };
            let class = field("class_name")?;
            durable_objects.push(DurableObjectBinding {
                binding: field("name")?,
                sqlite: sqlite_classes.contains(&class.as_str()),
                class,
            });
        }
        Ok(EdgeManifest {
            compatibility_date,
            compatibility_flags,
            durable_objects,
        })
    }
}

/// Where workerd takes a secret from when it starts. The config never holds the secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Secret {
    /// A file's content (workerd embeds it as it reads the config, at every start).
    File(PathBuf),
    /// An environment variable of the workerd process (unset: the binding is null, and the
    /// Worker refuses what needs it, e.g. every token with 503 `auth_not_configured`).
    Environment(String),
}

/// The settlement service gifts are charged to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settlement {
    pub url: String,
    pub secret: Secret,
}

/// A self-hosted edge: what `cargo xtask serve` takes on its command line.
#[derive(Clone, Debug)]
pub struct SelfHost {
    /// Address workerd listens on for HTTP and WebSockets, e.g. `127.0.0.1:8790` or `*:8790`.
    pub listen: String,
    /// Holds the config, the bundle as started, and the Durable Object storage.
    pub data_dir: PathBuf,
    /// The built Worker (`edge-worker/build`: `index.js` and its wasm module).
    pub bundle_dir: PathBuf,
    pub tenant_keys: Secret,
    pub settlement: Option<Settlement>,
    /// Plain variables the Worker reads (`OVATION_GIFT_CATALOG`,
    /// `OVATION_CONNECTION_LIFETIME_MS`), as `wrangler dev --var` sets them.
    pub vars: Vec<(String, String)>,
}

impl SelfHost {
    /// Copies the bundle into `data_dir/bundle`, creates `data_dir/storage`, and writes
    /// `data_dir/config.capnp`; returns the config's path. Stored data is never touched.
    pub fn write(&self, manifest: &EdgeManifest) -> Result<PathBuf, Error> {
        std::fs::create_dir_all(self.data_dir.join("storage"))
            .map_err(io(&self.data_dir.join("storage")))?;
        let data_dir = self.data_dir.canonicalize().map_err(io(&self.data_dir))?;
        let modules = copy_bundle(&self.bundle_dir, &data_dir.join("bundle"))?;
        let config = self.render(manifest, &data_dir, &modules)?;
        let path = data_dir.join(CONFIG_FILE);
        std::fs::write(&path, config).map_err(io(&path))?;
        Ok(path)
    }

    /// The config's text; `data_dir` is absolute, `modules` are the bundle's files.
    fn render(
        &self,
        manifest: &EdgeManifest,
        data_dir: &Path,
        modules: &[Module],
    ) -> Result<String, Error> {
        let mut bindings = Vec::new();
        for object in &manifest.durable_objects {
            bindings.push(format!(
                "(name = {}, durableObjectNamespace = {})",
                text(&object.binding, "a binding name")?,
                text(&object.class, "a class name")?
            ));
        }
        bindings.push(secret_binding(
            TENANT_KEYS_ENV,
            &self.tenant_keys,
            data_dir,
        )?);
        if let Some(settlement) = &self.settlement {
            bindings.push(format!(
                "(name = \"OVATION_SETTLEMENT_URL\", text = {})",
                text(&settlement.url, "the settlement URL")?
            ));
            bindings.push(secret_binding(
                SETTLEMENT_SECRET_ENV,
                &settlement.secret,
                data_dir,
            )?);
        }
        for (name, value) in &self.vars {
            bindings.push(format!(
                "(name = {}, text = {})",
                text(name, "a variable name")?,
                text(value, "a variable value")?
            ));
        }
        let namespaces = manifest
            .durable_objects
            .iter()
            .map(|o| {
                Ok(format!(
                    "(className = {}, uniqueKey = {}, enableSql = {})",
                    text(&o.class, "a class name")?,
                    text(&format!("{UNIQUE_KEY_PREFIX}{}", o.class), "a unique key")?,
                    o.sqlite
                ))
            })
            .collect::<Result<Vec<_>, Error>>()?;
        let modules = modules
            .iter()
            .map(|m| {
                let kind = match m.kind {
                    ModuleKind::EsModule => "esModule",
                    ModuleKind::Wasm => "wasm",
                };
                Ok(format!(
                    "(name = {}, {kind} = embed {})",
                    text(&m.name, "a module name")?,
                    text(&format!("bundle/{}", m.name), "a module path")?
                ))
            })
            .collect::<Result<Vec<_>, Error>>()?;
        let flags = manifest
            .compatibility_flags
            .iter()
            .map(|f| text(f, "a compatibility flag"))
            .collect::<Result<Vec<_>, Error>>()?;
        let storage = data_dir.join("storage");
        let storage = storage.to_str().ok_or_else(|| Error::BadValue {
            what: "the data directory".into(),
            value: storage.display().to_string(),
        })?;
        let join = |items: &[String]| {
            items
                .iter()
                .map(|i| format!("    {i},\n"))
                .collect::<String>()
        };
        Ok(format!(
            "# Written by `cargo xtask serve` (crate ovation-selfhost) from edge-worker/wrangler.toml.\n\
             # Serve with: workerd serve {CONFIG_FILE} (from this directory or by path).\n\
             # Holds no secret: tenant keys and the settlement secret come from a file embedded\n\
             # at start or from workerd's environment.\n\
             using Workerd = import \"/workerd/workerd.capnp\";\n\
             \n\
             const config :Workerd.Config = (\n\
             \x20 services = [\n\
             \x20   (name = \"ovation-edge\", worker = .edge),\n\
             \x20   (name = \"storage\", disk = (path = {storage}, writable = true)),\n\
             \x20   # The Worker's own fetch() reaches only the settlement service; it may live on a\n\
             \x20   # private network or this machine, which workerd's default \"internet\" refuses.\n\
             \x20   (name = \"internet\", network = (allow = [\"public\", \"private\"], tlsOptions = (trustBrowserCas = true))),\n\
             \x20 ],\n\
             \x20 sockets = [ (name = \"http\", address = {listen}, http = (), service = \"ovation-edge\") ],\n\
             );\n\
             \n\
             const edge :Workerd.Worker = (\n\
             \x20 compatibilityDate = {date},\n\
             \x20 compatibilityFlags = [{flags}],\n\
             \x20 modules = [\n{modules}  ],\n\
             \x20 # uniqueKey names each class's storage directory and derives object ids: never change it.\n\
             \x20 durableObjectNamespaces = [\n{namespaces}  ],\n\
             \x20 durableObjectStorage = (localDisk = \"storage\"),\n\
             \x20 bindings = [\n{bindings}  ],\n\
             );\n",
            storage = text(storage, "the storage directory")?,
            listen = text(&self.listen, "the listen address")?,
            date = text(&manifest.compatibility_date, "the compatibility date")?,
            flags = flags.join(", "),
            modules = join(&modules),
            namespaces = join(&namespaces),
            bindings = join(&bindings),
        ))
    }
}

/// How workerd loads a file of the bundle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ModuleKind {
    EsModule,
    Wasm,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Module {
    name: String,
    kind: ModuleKind,
}

/// The main module worker-build emits (it imports the wasm module as `./index_bg.wasm`).
const MAIN_MODULE: &str = "index.js";

/// Copies what worker-build emitted at the top of `from` (the bundled ES module and every
/// wasm module it imports; `worker/shim.mjs` is already inside `index.js`) into `to`.
fn copy_bundle(from: &Path, to: &Path) -> Result<Vec<Module>, Error> {
    if !from.join(MAIN_MODULE).is_file() {
        return Err(Error::Io {
            path: from.join(MAIN_MODULE),
            error: std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "the Worker is not built: run `cargo xtask build-worker`",
            ),
        });
    }
    let _ = std::fs::remove_dir_all(to);
    std::fs::create_dir_all(to).map_err(io(to))?;
    let mut modules = vec![Module {
        name: MAIN_MODULE.into(),
        kind: ModuleKind::EsModule,
    }];
    let mut wasm: Vec<String> = std::fs::read_dir(from)
        .map_err(io(from))?
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|name| name.ends_with(".wasm"))
        .collect();
    wasm.sort();
    modules.extend(wasm.into_iter().map(|name| Module {
        name,
        kind: ModuleKind::Wasm,
    }));
    for module in &modules {
        let source = from.join(&module.name);
        std::fs::copy(&source, to.join(&module.name)).map_err(io(&source))?;
    }
    Ok(modules)
}

/// A binding of a secret: an embedded file (by a path relative to the config, the only kind
/// of path Cap'n Proto's `embed` reads) or workerd's environment.
fn secret_binding(name: &str, secret: &Secret, data_dir: &Path) -> Result<String, Error> {
    match secret {
        Secret::File(path) => {
            let absolute = path.canonicalize().map_err(io(path))?;
            let relative = relative_path(data_dir, &absolute);
            let relative = relative.to_str().ok_or_else(|| Error::BadValue {
                what: format!("the file of {name}"),
                value: path.display().to_string(),
            })?;
            Ok(format!(
                "(name = {}, text = embed {})",
                text(name, "a binding name")?,
                text(relative, "a secret's file")?
            ))
        }
        Secret::Environment(variable) => Ok(format!(
            "(name = {}, fromEnvironment = {})",
            text(name, "a binding name")?,
            text(variable, "an environment variable")?
        )),
    }
}

/// `to` relative to the directory `from` (both absolute and canonical).
fn relative_path(from: &Path, to: &Path) -> PathBuf {
    let from: Vec<Component> = from.components().collect();
    let to: Vec<Component> = to.components().collect();
    let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
    let mut relative = PathBuf::new();
    for _ in common..from.len() {
        relative.push("..");
    }
    for component in &to[common..] {
        relative.push(component);
    }
    relative
}

/// A Cap'n Proto text literal. Control characters are refused rather than escaped: no
/// name, address, URL or variable of ours needs one.
fn text(value: &str, what: &str) -> Result<String, Error> {
    if value.chars().any(char::is_control) {
        return Err(Error::BadValue {
            what: what.into(),
            value: value.escape_debug().to_string(),
        });
    }
    let escaped = value.replace('\\', "\\\\").replace('"', "\\\"");
    Ok(format!("\"{escaped}\""))
}

/// `workerd serve CONFIG`, run from the config's directory. No `--experimental`: on-disk
/// Durable Object storage (`localDisk`, marked experimental in the schema) is not gated
/// behind it, and nothing else the Worker uses is.
pub fn workerd_command(workerd: &Path, config: &Path) -> Command {
    let mut command = Command::new(workerd);
    command.arg("serve").arg(config);
    if let Some(dir) = config.parent() {
        command.current_dir(dir);
    }
    command
}

#[cfg(test)]
mod tests {
    use super::*;

    const WRANGLER_TOML: &str = include_str!("../../edge-worker/wrangler.toml");

    #[test]
    fn the_manifest_is_what_wrangler_toml_declares() {
        let manifest = EdgeManifest::from_wrangler_toml(WRANGLER_TOML).unwrap();
        assert!(!manifest.compatibility_date.is_empty());
        let classes: Vec<(&str, &str, bool)> = manifest
            .durable_objects
            .iter()
            .map(|o| (o.binding.as_str(), o.class.as_str(), o.sqlite))
            .collect();
        assert_eq!(
            classes,
            [
                ("ROOMS", "RoomObject", true),
                ("DIRECTORY", "DirectoryObject", true),
                ("SHARDS", "ShardObject", true)
            ]
        );
    }

    #[test]
    fn a_manifest_without_durable_objects_is_refused() {
        let err =
            EdgeManifest::from_wrangler_toml("compatibility_date = \"2025-01-01\"\n").unwrap_err();
        assert!(err.to_string().contains("durable_objects"), "{err}");
    }

    fn host(keys: Secret) -> SelfHost {
        SelfHost {
            listen: "127.0.0.1:8790".into(),
            data_dir: PathBuf::from("/srv/ovation"),
            bundle_dir: PathBuf::from("/unused"),
            tenant_keys: keys,
            settlement: None,
            vars: vec![("OVATION_GIFT_CATALOG".into(), r#"{"rose":1}"#.into())],
        }
    }

    fn modules() -> Vec<Module> {
        vec![
            Module {
                name: "index.js".into(),
                kind: ModuleKind::EsModule,
            },
            Module {
                name: "index_bg.wasm".into(),
                kind: ModuleKind::Wasm,
            },
        ]
    }

    #[test]
    fn the_config_declares_every_class_binding_and_module() {
        let manifest = EdgeManifest::from_wrangler_toml(WRANGLER_TOML).unwrap();
        let config = host(Secret::Environment(TENANT_KEYS_ENV.into()))
            .render(&manifest, Path::new("/srv/ovation"), &modules())
            .unwrap();
        for line in [
            r#"(className = "RoomObject", uniqueKey = "ovation-edge-RoomObject", enableSql = true)"#,
            r#"(name = "SHARDS", durableObjectNamespace = "ShardObject")"#,
            r#"(name = "index.js", esModule = embed "bundle/index.js")"#,
            r#"(name = "index_bg.wasm", wasm = embed "bundle/index_bg.wasm")"#,
            r#"(name = "OVATION_TENANT_KEYS", fromEnvironment = "OVATION_TENANT_KEYS")"#,
            r#"(name = "OVATION_GIFT_CATALOG", text = "{\"rose\":1}")"#,
            r#"address = "127.0.0.1:8790""#,
            r#"disk = (path = "/srv/ovation/storage", writable = true)"#,
            &format!("compatibilityDate = \"{}\"", manifest.compatibility_date),
        ] {
            assert!(config.contains(line), "{line} missing from:\n{config}");
        }
        assert!(!config.contains("OVATION_SETTLEMENT_URL"));
    }

    #[test]
    fn a_value_with_a_control_character_is_refused() {
        let manifest = EdgeManifest::from_wrangler_toml(WRANGLER_TOML).unwrap();
        let mut bad = host(Secret::Environment(TENANT_KEYS_ENV.into()));
        bad.vars = vec![("X".into(), "a\n) , evil = (".into())];
        let err = bad
            .render(&manifest, Path::new("/srv/ovation"), &modules())
            .unwrap_err();
        assert!(matches!(err, Error::BadValue { .. }), "{err}");
    }

    #[test]
    fn a_secret_file_is_embedded_by_a_path_relative_to_the_config() {
        assert_eq!(
            relative_path(
                Path::new("/srv/ovation"),
                Path::new("/etc/ovation/keys.json")
            ),
            PathBuf::from("../../etc/ovation/keys.json")
        );
        assert_eq!(
            relative_path(
                Path::new("/srv/ovation"),
                Path::new("/srv/ovation/keys.json")
            ),
            PathBuf::from("keys.json")
        );
    }
}
