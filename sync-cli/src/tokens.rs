//! Rotated refresh tokens, kept beside the dataset (never in it).
//!
//! Shopify's expiring offline tokens and Klaviyo's OAuth rotate the refresh token on every refresh and
//! invalidate the old one, so the token in `growthflow.toml` works exactly once. The newest token is
//! written to `<dataset folder>/.growthflow-tokens/<source>.refresh_token` (file 0600, folder 0700,
//! replaced atomically) and preferred over the config's on the next run — but only while it descends
//! from the token the config holds now. Beside it the file keeps the SHA-256 fingerprint of the
//! configured token its chain started from (never that token itself): after a user re-authorises and
//! puts a new refresh token in the config, the fingerprints differ and the configured token wins,
//! instead of the stale saved one failing with `invalid_grant` forever.
//!
//! A rotated token that cannot be saved locks the source out (the platform has already invalidated the
//! old one), so [`TokenStore::ensure_writable`] is checked before any refresh is attempted.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use growthflow_core::auth::RotationHook;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

/// The first line of a token file: this prefix, then the hex SHA-256 of the configured token.
const ORIGIN_PREFIX: &str = "configured-sha256:";

/// Where rotated refresh tokens live.
#[derive(Debug, Clone)]
pub struct TokenStore {
    dir: PathBuf,
}

/// The hex SHA-256 of a configured refresh token: enough to tell whether it changed, useless to use.
fn fingerprint(token: &SecretString) -> String {
    Sha256::digest(token.expose_secret().as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A saved token and the fingerprint of the configured token its chain started from (`None` in files
/// written before fingerprints were kept).
struct Saved {
    origin: Option<String>,
    token: SecretString,
}

impl TokenStore {
    /// Tokens for the dataset at `dataset` (a file path).
    pub fn beside(dataset: &Path) -> Self {
        let parent = dataset
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        TokenStore {
            dir: parent.join(".growthflow-tokens"),
        }
    }

    fn path(&self, source: &str) -> PathBuf {
        self.dir.join(format!("{source}.refresh_token"))
    }

    fn read(&self, source: &str) -> Option<Saved> {
        let text = std::fs::read_to_string(self.path(source)).ok()?;
        let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
        let first = lines.next()?;
        let saved = match first.strip_prefix(ORIGIN_PREFIX) {
            Some(origin) => Saved {
                origin: Some(origin.to_string()),
                token: SecretString::from(lines.next()?.to_string()),
            },
            None => Saved {
                origin: None,
                token: SecretString::from(first.to_string()),
            },
        };
        Some(saved)
    }

    /// The newest refresh token saved for `source`, if any, whatever it descends from.
    pub fn load(&self, source: &str) -> Option<SecretString> {
        self.read(source).map(|s| s.token)
    }

    /// The refresh token to start from: the saved one when it descends from `configured` (or was saved
    /// before fingerprints were kept), else `configured` — the user put a new one in the config.
    pub fn refresh_token(&self, source: &str, configured: &SecretString) -> SecretString {
        match self.read(source) {
            Some(saved) if saved.origin.is_none() => saved.token,
            Some(saved) if saved.origin.as_deref() == Some(fingerprint(configured).as_str()) => {
                saved.token
            }
            Some(_) => {
                tracing::info!(
                    source,
                    "the configured refresh token changed since the saved one was rotated from it; using the configured one"
                );
                configured.clone()
            }
            None => configured.clone(),
        }
    }

    /// Check, before any refresh, that a rotated token for `source` can be saved: the folder exists
    /// (created 0700) and a file can be written in it. Refreshing first and failing to save afterwards
    /// would lose the only valid token.
    pub fn ensure_writable(&self, source: &str) -> Result<(), String> {
        let probe = self.dir.join(format!("{source}.probe"));
        let result = self.create_dir().and_then(|()| {
            let f = private_file(&probe)?;
            drop(f);
            std::fs::remove_file(&probe)
        });
        result.map_err(|e| {
            format!(
                "rotated refresh tokens cannot be saved in {} ({e}); the platform invalidates the old token \
                 at every refresh, so growthflow will not refresh without a place to keep the new one: make \
                 that folder writable, or point [destination] url at a dataset in a writable folder",
                self.dir.display()
            )
        })
    }

    /// A hook that saves each rotated token for `source`, recording that it descends from `configured`;
    /// a failure to save fails the refresh, because a lost rotated token locks the source out.
    pub fn hook(&self, source: &str, configured: &SecretString) -> RotationHook {
        let store = self.clone();
        let source = source.to_string();
        let origin = fingerprint(configured);
        Arc::new(move |token: &SecretString| {
            store.save(&source, &origin, token).map_err(|e| {
                growthflow_core::Error::Other(format!(
                    "could not save the rotated refresh token of source {source:?} in {}: {e}",
                    store.dir.display()
                ))
            })
        })
    }

    fn create_dir(&self) -> std::io::Result<()> {
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
            builder.mode(0o700);
            builder.create(&self.dir)?;
            // A folder made earlier (or by hand) with wider permissions is narrowed too.
            let mode = std::fs::metadata(&self.dir)?.permissions().mode();
            if mode & 0o077 != 0 {
                std::fs::set_permissions(&self.dir, std::fs::Permissions::from_mode(0o700))?;
            }
            Ok(())
        }
        #[cfg(not(unix))]
        builder.create(&self.dir)
    }

    fn save(&self, source: &str, origin: &str, token: &SecretString) -> std::io::Result<()> {
        self.create_dir()?;
        let target = self.path(source);
        let tmp = target.with_extension("tmp");
        let mut f = private_file(&tmp)?;
        f.write_all(format!("{ORIGIN_PREFIX}{origin}\n").as_bytes())?;
        f.write_all(token.expose_secret().as_bytes())?;
        f.write_all(b"\n")?;
        f.sync_all()?;
        std::fs::rename(&tmp, &target)?;
        tracing::info!(source, "rotated refresh token saved");
        Ok(())
    }
}

/// A new file only its owner can read (0600). A leftover file of the same name is removed first: opening
/// it in place would keep its old, possibly wider, permissions.
fn private_file(path: &Path) -> std::io::Result<std::fs::File> {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(s: &str) -> SecretString {
        SecretString::from(s.to_string())
    }

    #[cfg(unix)]
    fn mode(path: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn rotated_tokens_are_saved_privately_and_loaded_back() {
        let dir = tempfile::tempdir().unwrap();
        let store = TokenStore::beside(&dir.path().join("gf.db"));
        let configured = secret("shprt_1");
        assert!(store.load("shop").is_none());
        (store.hook("shop", &configured))(&secret("shprt_2")).unwrap();
        (store.hook("shop", &configured))(&secret("shprt_3")).unwrap();
        assert_eq!(store.load("shop").unwrap().expose_secret(), "shprt_3");
        assert_eq!(
            store.refresh_token("shop", &configured).expose_secret(),
            "shprt_3"
        );
        assert!(store.load("other").is_none());
        let file = dir.path().join(".growthflow-tokens/shop.refresh_token");
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(
            !text.contains("shprt_1"),
            "the configured token is never saved"
        );
        #[cfg(unix)]
        {
            assert_eq!(mode(&file), 0o600);
            assert_eq!(mode(&dir.path().join(".growthflow-tokens")), 0o700);
        }
    }

    /// A user re-authorised and put a new refresh token in the config: the saved token descends from the
    /// old one and is dead, so the configured one is used.
    #[test]
    fn a_new_configured_token_wins_over_one_saved_from_the_old() {
        let dir = tempfile::tempdir().unwrap();
        let store = TokenStore::beside(&dir.path().join("gf.db"));
        (store.hook("shop", &secret("old_configured")))(&secret("rotated_from_old")).unwrap();
        assert_eq!(
            store
                .refresh_token("shop", &secret("old_configured"))
                .expose_secret(),
            "rotated_from_old"
        );
        assert_eq!(
            store
                .refresh_token("shop", &secret("new_configured"))
                .expose_secret(),
            "new_configured"
        );
        // Once the new chain rotates, its saved token is preferred again.
        (store.hook("shop", &secret("new_configured")))(&secret("rotated_from_new")).unwrap();
        assert_eq!(
            store
                .refresh_token("shop", &secret("new_configured"))
                .expose_secret(),
            "rotated_from_new"
        );
    }

    /// Files written before fingerprints were kept hold the token alone; it is still used.
    #[test]
    fn a_token_saved_without_a_fingerprint_is_still_used() {
        let dir = tempfile::tempdir().unwrap();
        let store = TokenStore::beside(&dir.path().join("gf.db"));
        std::fs::create_dir_all(dir.path().join(".growthflow-tokens")).unwrap();
        std::fs::write(
            dir.path().join(".growthflow-tokens/shop.refresh_token"),
            "legacy_token\n",
        )
        .unwrap();
        assert_eq!(
            store
                .refresh_token("shop", &secret("configured"))
                .expose_secret(),
            "legacy_token"
        );
    }

    #[cfg(unix)]
    #[test]
    fn wider_leftovers_are_narrowed_to_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let tokens = dir.path().join(".growthflow-tokens");
        std::fs::create_dir(&tokens).unwrap();
        std::fs::set_permissions(&tokens, std::fs::Permissions::from_mode(0o755)).unwrap();
        // A temporary file left behind by a killed run, readable by everyone.
        let tmp = tokens.join("shop.tmp");
        std::fs::write(&tmp, "").unwrap();
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o644)).unwrap();
        let store = TokenStore::beside(&dir.path().join("gf.db"));
        (store.hook("shop", &secret("c")))(&secret("rotated")).unwrap();
        assert_eq!(mode(&tokens.join("shop.refresh_token")), 0o600);
        assert_eq!(mode(&tokens), 0o700);
    }

    #[test]
    fn an_unwritable_folder_is_reported_before_any_refresh() {
        let dir = tempfile::tempdir().unwrap();
        let store = TokenStore::beside(&dir.path().join("gf.db"));
        assert_eq!(store.ensure_writable("shop"), Ok(()));
        assert!(
            std::fs::read_dir(dir.path().join(".growthflow-tokens"))
                .unwrap()
                .next()
                .is_none(),
            "the probe is removed"
        );
        // The dataset's folder is a file: nothing can be created below it (whoever runs the test).
        let not_a_folder = dir.path().join("not-a-folder");
        std::fs::write(&not_a_folder, "").unwrap();
        let store = TokenStore::beside(&not_a_folder.join("gf.db"));
        let result = store.ensure_writable("shop");
        let message = result.unwrap_err();
        assert!(message.contains(".growthflow-tokens"), "{message}");
        assert!(message.contains("writable"), "{message}");
    }
}
