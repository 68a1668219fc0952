//! `${NAME}` in string values, replaced from the environment before anything is validated (the rules
//! are in the [module docs](super)). Keys are never substituted, and substituted text is not scanned
//! again, so a value cannot pull in another variable.

use toml::{Table, Value};

use super::join_key;
use super::ConfigError;

pub(super) fn substitute_table(
    table: &mut Table,
    path: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(), ConfigError> {
    for (key, value) in table.iter_mut() {
        substitute_value(value, &join_key(path, key), env)?;
    }
    Ok(())
}

pub(super) fn substitute_value(
    value: &mut Value,
    path: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(), ConfigError> {
    match value {
        Value::String(s) => {
            if s.contains('$') {
                *s = substitute_str(s, path, env)?;
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                substitute_value(item, &format!("{path}[{i}]"), env)?;
            }
        }
        Value::Table(table) => substitute_table(table, path, env)?,
        Value::Integer(_) | Value::Float(_) | Value::Boolean(_) | Value::Datetime(_) => {}
    }
    Ok(())
}

/// Replaces each `${NAME}` in `s`; see the module docs for the escape rule.
pub(super) fn substitute_str(
    s: &str,
    key: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<String, ConfigError> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(tail) = after.strip_prefix("${") {
            out.push_str("${");
            rest = tail;
        } else if let Some(body) = after.strip_prefix('{') {
            let malformed = || ConfigError::MalformedEnvVar {
                key: key.to_owned(),
            };
            let end = body.find('}').ok_or_else(malformed)?;
            let name = &body[..end];
            if !is_valid_var_name(name) {
                return Err(malformed());
            }
            let value = env(name).ok_or_else(|| ConfigError::MissingEnvVar {
                var: name.to_owned(),
                key: key.to_owned(),
            })?;
            out.push_str(&value);
            rest = &body[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

fn is_valid_var_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}
