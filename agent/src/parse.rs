//! `unity-agent parse`: one saved tool output → the normalized record with its verdict, as
//! JSON. The same parsers and verdict rules the agent uses, so what an operator attaches to a
//! bug report is exactly what the agent would have reported.

use serde_json::{Value, json};
use unity_collect::{mdraid, smart, zfs};

/// Which tool's output the text is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Smartctl,
    SmartctlJson,
    ZpoolStatus,
    ZpoolList,
    Mdstat,
    MdadmDetail,
}

#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    #[error(transparent)]
    Smart(#[from] smart::SmartParseError),
    #[error(transparent)]
    Zfs(#[from] zfs::ParseError),
    #[error(transparent)]
    Md(#[from] mdraid::ParseError),
    #[error("could not encode the record as JSON")]
    Encode(#[from] serde_json::Error),
}

/// Parses `text` as `format`. JSON input to `zpool-status`/`zpool-list` is recognized by its
/// first non-blank character.
pub fn parse(format: Format, text: &str) -> Result<Value, ParseError> {
    let is_json = text.trim_start().starts_with('{');
    Ok(match format {
        Format::Smartctl => {
            let report = smart::parse_text(text)?;
            let verdict = smart::assess(&report, None, &smart::VerdictPolicy::default());
            json!({ "report": report, "verdict": verdict, "reasons": verdict.messages() })
        }
        Format::SmartctlJson => {
            let (report, exit) = smart::parse_json(text)?;
            let verdict = smart::assess(&report, exit, &smart::VerdictPolicy::default());
            json!({ "report": report, "exit_status": exit, "verdict": verdict,
                    "reasons": verdict.messages() })
        }
        Format::ZpoolStatus => {
            let pools = if is_json {
                zfs::parse_status_json(text)?
            } else {
                zfs::parse_status(text)?
            };
            let assessed: Vec<Value> = pools
                .iter()
                .map(|pool| json!({ "pool": pool, "assessment": zfs::assess_pool(pool, None) }))
                .collect();
            Value::Array(assessed)
        }
        Format::ZpoolList => {
            let list = if is_json {
                zfs::parse_list_json(text)?
            } else {
                zfs::parse_list(text)?
            };
            serde_json::to_value(list)?
        }
        Format::Mdstat => {
            let mdstat = mdraid::parse_mdstat(text)?;
            let arrays: Vec<Value> = mdstat
                .arrays
                .iter()
                .map(|a| json!({ "array": a, "assessment": mdraid::assess_array(a, None) }))
                .collect();
            json!({ "mdstat": mdstat, "arrays": arrays })
        }
        Format::MdadmDetail => {
            let detail = mdraid::parse_detail(text)?;
            json!({ "detail": detail, "assessment": mdraid::assess_detail(&detail) })
        }
    })
}
