//! Rotated refresh tokens, kept beside the dataset (never in it).
//!
//! Shopify's expiring offline tokens and Klaviyo's OAuth rotate the refresh token on every refresh and
//! invalidate the old one, so the token in `growthflow.toml` works exactly once. The newest token is
//! written to `<dataset folder>/.growthflow-tokens/<source>.refresh_token` (owner-only permissions,
//! replaced atomically) and preferred over the config's on the next run.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use growthflow_core::auth::RotationHook;
use secrecy::{ExposeSecret, SecretString};

/// Where rotated refresh tokens live.
#[derive(Debug, Clone)]
pub struct TokenStore {
    dir: PathBuf,
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

    /// The newest refresh token saved for `source`, if any.
    pub fn load(&self, source: &str) -> Option<SecretString> {
        let text = std::fs::read_to_string(self.path(source)).ok()?;
        let text = text.trim();
        (!text.is_empty()).then(|| SecretString::from(text.to_string()))
    }

    /// A hook that saves each rotated token for `source`; a failure to save fails the refresh, because
    /// a lost rotated token locks the source out.
    pub fn hook(&self, source: &str) -> RotationHook {
        let store = self.clone();
        let source = source.to_string();
        Arc::new(move |token: &SecretString| {
            store.save(&source, token).map_err(|e| {
                growthflow_core::Error::Other(format!(
                    "could not save the rotated refresh token of source {source:?} in {}: {e}",
                    store.dir.display()
                ))
            })
        })
    }

    fn save(&self, source: &str, token: &SecretString) -> std::io::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        let target = self.path(source);
        let tmp = target.with_extension("tmp");
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut f = options.open(&tmp)?;
        f.write_all(token.expose_secret().as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, &target)?;
        tracing::info!(source, "rotated refresh token saved");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotated_tokens_are_saved_privately_and_loaded_back() {
        let dir = tempfile::tempdir().unwrap();
        let store = TokenStore::beside(&dir.path().join("gf.db"));
        assert!(store.load("shop").is_none());
        (store.hook("shop"))(&SecretString::from("shprt_2".to_string())).unwrap();
        (store.hook("shop"))(&SecretString::from("shprt_3".to_string())).unwrap();
        assert_eq!(store.load("shop").unwrap().expose_secret(), "shprt_3");
        assert!(store.load("other").is_none());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(".growthflow-tokens/shop.refresh_token"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o077, 0, "readable by others: {mode:o}");
        }
    }
}
