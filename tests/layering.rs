//! The module map in docs/ARCHITECTURE.md, checked against the imports: every module of
//! `src/` may name (`crate::…`) exactly the modules its row lists under "depends on", and
//! the map itself has no cycle, so a module that reaches up into one that depends on it
//! fails here instead of leaving a stale sentence. Comment lines do not count (a doc link
//! is not a dependency); test code inside a module does (it builds with the module).
//!
//! Hand-written rather than a crate: the check is over our own map's format, a table row
//! per module, which no dependency-graph tool reads.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

type Graph = BTreeMap<String, BTreeSet<String>>;

/// The map: module → the internal modules its row's last column names.
fn documented(architecture: &str) -> Graph {
    let section = architecture
        .split("\n## ")
        .find(|s| s.starts_with("Modules"))
        .expect("a \"## Modules\" section in docs/ARCHITECTURE.md");
    let rows: Vec<(String, String)> = section
        .lines()
        .filter_map(|l| {
            let cells: Vec<&str> = l.split(" | ").collect();
            let name = cells.first()?.strip_prefix("| `")?.strip_suffix('`')?;
            let deps = cells.last()?.trim_end_matches('|').trim();
            Some((name.to_string(), deps.to_string()))
        })
        .collect();
    let names: BTreeSet<String> = rows.iter().map(|(n, _)| n.clone()).collect();
    rows.into_iter()
        .map(|(name, deps)| {
            let named = deps
                .split(|c: char| !(c.is_ascii_lowercase() || c == '_'))
                .filter(|w| names.contains(*w) && *w != name)
                .map(str::to_string)
                .collect();
            (name, named)
        })
        .collect()
}

/// The internal modules a piece of Rust names as `crate::x` or `crate::{x, y::…}`.
fn named_modules(source: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for line in source.lines() {
        let code = line.trim_start();
        if code.starts_with("//") {
            continue;
        }
        let mut rest = code;
        while let Some(i) = rest.find("crate::") {
            rest = &rest[i + "crate::".len()..];
            if let Some(group) = rest.strip_prefix('{') {
                // top-level items of the group: up to the matching brace
                let mut depth = 0;
                let mut item = true;
                for (j, c) in group.char_indices() {
                    match c {
                        '{' => depth += 1,
                        '}' if depth == 0 => {
                            rest = &group[j..];
                            break;
                        }
                        '}' => depth -= 1,
                        ',' if depth == 0 => item = true,
                        c if item && (c.is_ascii_lowercase() || c == '_') => {
                            let word: String = group[j..]
                                .chars()
                                .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                                .collect();
                            found.insert(word);
                            item = false;
                        }
                        c if !c.is_whitespace() => item = false,
                        _ => {}
                    }
                }
            } else {
                let word: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                    .collect();
                if !word.is_empty() {
                    found.insert(word);
                }
            }
        }
    }
    found
}

fn rust_files(path: &Path) -> Vec<PathBuf> {
    if path.is_file() {
        return vec![path.to_path_buf()];
    }
    let mut out = vec![];
    let Ok(entries) = std::fs::read_dir(path) else {
        return out;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(rust_files(&p));
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
    out
}

/// What each module's files name, among the modules the map knows.
fn imported(src: &Path, modules: &BTreeSet<String>) -> Graph {
    modules
        .iter()
        .map(|m| {
            let dir = src.join(m);
            let path = if dir.is_dir() {
                dir
            } else {
                src.join(format!("{m}.rs"))
            };
            let mut deps = BTreeSet::new();
            for f in rust_files(&path) {
                let text = std::fs::read_to_string(&f).unwrap_or_default();
                deps.extend(named_modules(&text));
            }
            deps.retain(|d| d != m && modules.contains(d));
            (m.clone(), deps)
        })
        .collect()
}

/// Where the map and the imports disagree, and any cycle in the map.
fn check(map: &Graph, imports: &Graph) -> Vec<String> {
    let mut problems = vec![];
    for (m, deps) in imports {
        let allowed = &map[m];
        for d in deps.difference(allowed) {
            problems.push(format!(
                "{m} imports {d}, which its row in docs/ARCHITECTURE.md does not list"
            ));
        }
        for d in allowed.difference(deps) {
            problems.push(format!(
                "{m}'s row lists {d}, which {m} does not import (the map must be true)"
            ));
        }
    }
    // a cycle means some module reaches up into one that depends on it
    let mut done = BTreeSet::new();
    for start in map.keys() {
        let mut stack = vec![(start.clone(), vec![start.clone()])];
        while let Some((m, path)) = stack.pop() {
            for d in &map[&m] {
                if d == start {
                    problems.push(format!("cycle in the map: {} → {d}", path.join(" → ")));
                } else if !path.contains(d) && !done.contains(d) {
                    let mut p = path.clone();
                    p.push(d.clone());
                    stack.push((d.clone(), p));
                }
            }
        }
        done.insert(start.clone());
    }
    problems
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn the_module_map_is_true_to_the_imports_and_nothing_imports_upwards() {
    let architecture = std::fs::read_to_string(root().join("docs/ARCHITECTURE.md")).unwrap();
    let map = documented(&architecture);
    // every module of lib.rs has its row
    let lib = std::fs::read_to_string(root().join("src/lib.rs")).unwrap();
    let declared: BTreeSet<String> = lib
        .lines()
        .filter_map(|l| l.strip_prefix("pub mod ")?.strip_suffix(';'))
        .map(str::to_string)
        .collect();
    let mapped: BTreeSet<String> = map.keys().cloned().collect();
    assert_eq!(declared, mapped, "lib.rs's modules and the map's rows");
    let imports = imported(&root().join("src"), &mapped);
    let problems = check(&map, &imports);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn an_upward_import_fails_the_check() {
    let architecture = std::fs::read_to_string(root().join("docs/ARCHITECTURE.md")).unwrap();
    let map = documented(&architecture);
    let mut imports = imported(&root().join("src"), &map.keys().cloned().collect());
    // the session state machine reaching up into the UI, as a careless `use` would
    let injected = named_modules("use crate::{domain::Timestamp, ui::Api};\n");
    assert_eq!(
        injected,
        ["domain", "ui"].map(String::from).into_iter().collect()
    );
    imports.get_mut("session").unwrap().extend(injected);
    let problems = check(&map, &imports);
    assert_eq!(
        problems,
        vec!["session imports ui, which its row in docs/ARCHITECTURE.md does not list".to_string()]
    );
    // and the row cannot simply be widened: the map then has a cycle
    let mut widened = map.clone();
    widened.get_mut("session").unwrap().insert("ui".into());
    let problems = check(&widened, &imports);
    assert!(
        problems
            .iter()
            .any(|p| p.starts_with("cycle in the map: ") && p.contains("session → ui")),
        "{problems:?}"
    );
    // comment lines are not imports
    assert!(named_modules("//! see [`crate::ui::Api`]\n").is_empty());
}

/// `unsafe_code` is "deny" in Cargo.toml rather than "forbid" only because Slint's generated
/// code allows it for its vtables; this keeps our own files to "forbid": no `unsafe` block,
/// function, impl or extern block, and no `allow` of the lint, anywhere we write Rust.
#[test]
fn no_file_of_ours_uses_or_allows_unsafe() {
    let mut files = rust_files(&root().join("src"));
    for dir in ["tests", "benches"] {
        files.extend(rust_files(&root().join(dir)));
    }
    files.push(root().join("build.rs"));
    assert!(files.len() > 50, "found {} files", files.len());
    let mut found = vec![];
    // this file names the patterns it looks for
    for f in files.iter().filter(|f| !f.ends_with("tests/layering.rs")) {
        let text = std::fs::read_to_string(f).unwrap();
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            let words: Vec<&str> = code
                .split(|c: char| !(c.is_alphanumeric() || c == '_'))
                .filter(|w| !w.is_empty())
                .collect();
            let uses = words
                .windows(2)
                .any(|w| w[0] == "unsafe" && matches!(w[1], "fn" | "impl" | "extern" | "trait"))
                || code.contains("unsafe {")
                || code.contains("allow(unsafe_code")
                || code.contains("unsafe_code)]");
            if uses {
                found.push(format!("{}:{}: {}", f.display(), n + 1, line.trim()));
            }
        }
    }
    assert!(found.is_empty(), "{}", found.join("\n"));
}
