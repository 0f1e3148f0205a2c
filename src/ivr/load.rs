//! Loading flows: the files of a directory (the one IO boundary of `ivr`), each parsed and checked,
//! then checked together (duplicate ids, `goto` targets). Problems are [`Diagnostic`]s printed as
//! `file:line:column: message`; a file with errors gives no flow, so the caller keeps the one it
//! had (see [`FlowSet::reload`](super::flow::FlowSet::reload)).

use super::fields::{Env, suggest};
use super::flow::{Flow, FlowId};
use super::schema::{self, Parsed};
use super::yaml::{self, Pos};
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

/// Flow files larger than this are refused unread (a flow is a few kilobytes).
pub const MAX_FILE_BYTES: u64 = 1 << 20;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: String,
    pub line: u32,
    pub column: u32,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file, self.line, self.column, self.message
        )
    }
}

impl Diagnostic {
    fn at(file: &str, pos: Pos, message: String) -> Diagnostic {
        Diagnostic {
            file: file.to_owned(),
            line: pos.line,
            column: pos.column,
            message,
        }
    }
}

/// The outcome of loading a set of files: the flows that loaded clean, every error and warning,
/// and every file looked at (with or without a flow).
#[derive(Debug, Clone, Default)]
pub struct LoadReport {
    pub flows: Vec<Flow>,
    pub errors: Vec<Diagnostic>,
    pub warnings: Vec<Diagnostic>,
    pub files: Vec<PathBuf>,
}

/// Loads every `*.yaml` / `*.yml` file of `dir` (not recursive), in name order.
pub fn load_dir(
    dir: &Path,
    sound_exists: &dyn Fn(&str) -> bool,
    tts_available: bool,
) -> LoadReport {
    load_paths(&[dir.to_path_buf()], sound_exists, tts_available)
}

/// Loads files and directories (as `openline check-flows PATH...` names them).
pub fn load_paths(
    paths: &[PathBuf],
    sound_exists: &dyn Fn(&str) -> bool,
    tts_available: bool,
) -> LoadReport {
    let mut unreadable = Vec::new();
    let mut files: Vec<(String, String)> = Vec::new();
    let mut read = |path: &Path, unreadable: &mut Vec<Diagnostic>| {
        let name = path.display().to_string();
        match read_flow_file(path) {
            Ok(text) => files.push((name, text)),
            Err(message) => {
                unreadable.push(Diagnostic::at(&name, Pos::START, message));
                files.push((name, String::new()));
            }
        }
    };
    for path in paths {
        if !path.is_dir() {
            read(path, &mut unreadable);
            continue;
        }
        match std::fs::read_dir(path) {
            Ok(entries) => {
                let mut found: Vec<PathBuf> = entries
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.is_file() && is_flow_file(p))
                    .collect();
                found.sort();
                for p in found {
                    read(&p, &mut unreadable);
                }
            }
            Err(e) => unreadable.push(Diagnostic::at(
                &path.display().to_string(),
                Pos::START,
                format!("cannot read the directory: {e}"),
            )),
        }
    }
    let failed: Vec<String> = unreadable.iter().map(|d| d.file.clone()).collect();
    let readable: Vec<(String, String)> = files
        .iter()
        .filter(|(name, _)| !failed.contains(name))
        .cloned()
        .collect();
    let mut report = load_set(&readable, sound_exists, tts_available);
    report.errors.extend(unreadable);
    report.files = files
        .into_iter()
        .map(|(name, _)| PathBuf::from(name))
        .collect();
    report
}

fn read_flow_file(path: &Path) -> Result<String, String> {
    let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    if size > MAX_FILE_BYTES {
        return Err(format!("the file is larger than {MAX_FILE_BYTES} bytes"));
    }
    std::fs::read_to_string(path).map_err(|e| format!("cannot read the file: {e}"))
}

/// `*.yaml` or `*.yml`, not hidden (editors' swap and backup files are skipped).
fn is_flow_file(p: &Path) -> bool {
    let hidden = p
        .file_name()
        .and_then(|n| n.to_str())
        .is_none_or(|n| n.starts_with('.'));
    let ext = p
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    !hidden && matches!(ext.as_deref(), Some("yaml" | "yml"))
}

/// Loads flows from `(file name, text)` pairs: each file alone, then together (a flow id used
/// twice is an error in the later file; a `goto` must name a flow of the set, and a node of it).
pub fn load_set(
    files: &[(String, String)],
    sound_exists: &dyn Fn(&str) -> bool,
    tts_available: bool,
) -> LoadReport {
    let env = Env {
        sound_exists,
        tts_available,
    };
    let mut parsed: Vec<(&str, Parsed)> = files
        .iter()
        .map(|(name, text)| (name.as_str(), parse_text(text, &env)))
        .collect();

    // Ids: the first file (in the order given) keeps an id.
    let mut owners: BTreeMap<FlowId, &str> = BTreeMap::new();
    let mut clashes: Vec<(usize, Pos, String)> = Vec::new();
    for (i, (name, p)) in parsed.iter().enumerate() {
        if let Some((id, pos)) = &p.id {
            match owners.get(id) {
                Some(first) => clashes.push((
                    i,
                    *pos,
                    format!("duplicate flow id `{id}` (also in {first})"),
                )),
                None => {
                    owners.insert(id.clone(), name);
                }
            }
        }
    }
    for (i, pos, msg) in clashes {
        if let Some((_, p)) = parsed.get_mut(i) {
            p.errors.push((pos, msg));
            p.flow = None;
        }
    }

    // Gotos: the flow must be known (a broken file still names its id, so a flow that points at
    // it is not broken too); the node is checked when the target flow loaded.
    let mut targets: BTreeMap<FlowId, Option<Vec<String>>> = BTreeMap::new();
    for (_, p) in &parsed {
        if let Some((id, _)) = &p.id {
            let nodes = p
                .flow
                .as_ref()
                .map(|f| f.nodes.keys().map(|n| n.as_str().to_owned()).collect());
            targets.entry(id.clone()).or_insert(nodes); // the first file owns the id
        }
    }
    for (_, p) in parsed.iter_mut() {
        let mut found = Vec::new();
        for g in &p.gotos {
            if Some(&g.flow) == p.id.as_ref().map(|(i, _)| i) {
                continue; // checked with the file
            }
            match targets.get(&g.flow) {
                None => {
                    let hint = suggest(g.flow.as_str(), targets.keys().map(FlowId::as_str))
                        .map(|s| format!(" (did you mean `{s}`?)"))
                        .unwrap_or_default();
                    found.push((
                        g.flow_pos,
                        format!("`goto` names flow `{}`, which is not loaded{hint}", g.flow),
                    ));
                }
                Some(Some(nodes)) => {
                    if let Some((node, pos)) = &g.node
                        && !nodes.iter().any(|n| n == node.as_str())
                    {
                        found.push((
                            *pos,
                            format!(
                                "`goto` names node `{node}`, which is not a node of flow `{}`",
                                g.flow
                            ),
                        ));
                    }
                }
                Some(None) => {}
            }
        }
        if !found.is_empty() {
            p.errors.extend(found);
            p.flow = None;
        }
    }

    let mut report = LoadReport::default();
    for (name, mut p) in parsed {
        p.errors.sort_by_key(|(pos, _)| *pos);
        report.errors.extend(
            p.errors
                .into_iter()
                .map(|(pos, m)| Diagnostic::at(name, pos, m)),
        );
        report.warnings.extend(
            p.warnings
                .into_iter()
                .map(|(pos, m)| Diagnostic::at(name, pos, m)),
        );
        if let Some(mut flow) = p.flow {
            flow.file = PathBuf::from(name);
            report.flows.push(flow);
        }
        report.files.push(PathBuf::from(name));
    }
    report
}

fn parse_text(text: &str, env: &Env) -> Parsed {
    match yaml::parse(text) {
        Ok(doc) if matches!(doc.value, yaml::Value::Null) => Parsed {
            flow: None,
            id: None,
            gotos: Vec::new(),
            errors: vec![(
                Pos::START,
                "the file is empty: a flow needs `id`, `entry` and `nodes`".to_owned(),
            )],
            warnings: Vec::new(),
        },
        Ok(doc) => schema::parse_flow(&doc, env),
        Err(e) => Parsed {
            flow: None,
            id: None,
            gotos: Vec::new(),
            errors: vec![(e.pos, e.message)],
            warnings: Vec::new(),
        },
    }
}

#[cfg(test)]
mod tests;
