//! The crate's layout rules, checked on its sources: every file opens with a doc comment saying what it holds,
//! no file is longer than 800 lines, and the top-level modules (the pipeline stages) depend on one another
//! without cycles, so each stage can be read knowing only the ones below it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const MAX_LINES: usize = 800;

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn src_files() -> (PathBuf, Vec<PathBuf>) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&root, &mut files);
    files.sort();
    (root, files)
}

/// The top-level module a file belongs to (`lib` for the crate root).
fn top_module(root: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(root).expect("under src");
    let first = rel.components().next().expect("a component");
    let name = first.as_os_str().to_string_lossy();
    name.trim_end_matches(".rs").to_string()
}

#[test]
fn every_file_opens_with_a_doc_comment_and_stays_short() {
    let (root, files) = src_files();
    let mut problems = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).expect("read");
        let rel = f.strip_prefix(&root).expect("under src").display();
        if !text.starts_with("//!") {
            problems.push(format!("{rel}: does not open with a `//!` doc comment"));
        }
        let lines = text.lines().count();
        if lines > MAX_LINES {
            problems.push(format!("{rel}: {lines} lines (at most {MAX_LINES})"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn top_level_modules_have_no_cycles() {
    let (root, files) = src_files();
    let mut deps: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in &files {
        let from = top_module(&root, f);
        let text = std::fs::read_to_string(f).expect("read");
        let set = deps.entry(from.clone()).or_default();
        for line in text.lines() {
            let code = line.split("//").next().unwrap_or("");
            let mut rest = code;
            while let Some(i) = rest.find("crate::") {
                let after = &rest[i + "crate::".len()..];
                let name: String = after
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                // `crate::Name` (a type re-exported at the root) is the crate's public face, not a module.
                if name.chars().next().is_some_and(|c| c.is_ascii_lowercase()) && name != from {
                    set.insert(name);
                }
                rest = after;
            }
        }
    }
    // Depth-first search for a cycle, reporting it.
    fn visit(
        m: &str,
        deps: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = path.iter().position(|p| p == m) {
            let mut cycle = path[i..].to_vec();
            cycle.push(m.to_string());
            return Some(cycle);
        }
        if done.contains(m) {
            return None;
        }
        path.push(m.to_string());
        for d in deps.get(m).into_iter().flatten() {
            if let Some(c) = visit(d, deps, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(m.to_string());
        None
    }
    let mut done = BTreeSet::new();
    for m in deps.keys().filter(|m| *m != "lib") {
        let mut path = Vec::new();
        if let Some(cycle) = visit(m, &deps, &mut path, &mut done) {
            let graph: Vec<String> = deps
                .iter()
                .map(|(m, d)| {
                    format!(
                        "{m} -> {}",
                        d.iter().cloned().collect::<Vec<_>>().join(", ")
                    )
                })
                .collect();
            panic!(
                "module cycle: {}\n\nall dependencies:\n{}",
                cycle.join(" -> "),
                graph.join("\n")
            );
        }
    }
}
