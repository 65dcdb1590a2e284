//! The house rule "small modules with one concern and no import cycles",
//! checked on this crate's source: every `crate::<module>` path outside
//! tests is an edge, and the graph must be acyclic.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The code of a source file, without its tests (they start at the first
/// `#[cfg(test)]`) and comments (doc links included are not imports).
fn code_of(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    text.split("#[cfg(test)]")
        .next()
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The modules of directory `dir`: each `.rs` file's code by module name,
/// except `skip`; a directory module (with a `mod.rs`) is one module, all
/// its files together.
fn modules_in(dir: &Path, skip: &[&str]) -> BTreeMap<String, String> {
    let mut sources = BTreeMap::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let Some(name) = path.file_stem().and_then(|s| s.to_str()) else {
            continue;
        };
        if skip.contains(&name) {
            continue;
        }
        if path.extension().is_some_and(|e| e == "rs") {
            sources.insert(name.to_owned(), code_of(&path));
        } else if path.join("mod.rs").is_file() {
            let all: Vec<String> = modules_in(&path, &[]).into_values().collect();
            sources.insert(name.to_owned(), all.join("\n"));
        }
    }
    sources
}

/// Module -> the modules its code names through `prefix` (`crate::`, or
/// `super::` inside a directory module).
fn edges(sources: &BTreeMap<String, String>, prefix: &str) -> BTreeMap<String, BTreeSet<String>> {
    let modules: BTreeSet<String> = sources.keys().cloned().collect();
    sources
        .iter()
        .map(|(name, code)| {
            let mut uses = BTreeSet::new();
            for (i, _) in code.match_indices(prefix) {
                // `$crate::` in a macro names the crate where it expands.
                if code[..i].ends_with('$') {
                    continue;
                }
                for target in first_segments(&code[i + prefix.len()..]) {
                    if target != *name && modules.contains(&target) {
                        uses.insert(target);
                    }
                }
            }
            (name.clone(), uses)
        })
        .collect()
}

/// Module -> the modules its code (not its tests) names through `crate::`.
fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    edges(&modules_in(&src, &["lib", "module_graph"]), "crate::")
}

/// The first path segment after `crate::`: one identifier, or each item's
/// first identifier in a `{a::X, b::{Y, Z}}` group.
fn first_segments(rest: &str) -> Vec<String> {
    let ident = |s: &str| -> String {
        s.trim_start()
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    let Some(group) = rest.strip_prefix('{') else {
        return vec![ident(rest)];
    };
    // Split the group at its top-level commas.
    let (mut depth, mut items, mut item) = (0, Vec::new(), String::new());
    for c in group.chars() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => break,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                items.push(ident(&item));
                item.clear();
                continue;
            }
            _ => {}
        }
        item.push(c);
    }
    items.push(ident(&item));
    items
}

/// A cycle through `at`, if one is reachable from it.
fn find_cycle(
    graph: &BTreeMap<String, BTreeSet<String>>,
    at: &str,
    path: &mut Vec<String>,
    done: &mut BTreeSet<String>,
) -> Option<Vec<String>> {
    if let Some(pos) = path.iter().position(|m| m == at) {
        let mut cycle = path[pos..].to_vec();
        cycle.push(at.to_owned());
        return Some(cycle);
    }
    if done.contains(at) {
        return None;
    }
    path.push(at.to_owned());
    for next in graph.get(at).into_iter().flatten() {
        if let Some(cycle) = find_cycle(graph, next, path, done) {
            return Some(cycle);
        }
    }
    path.pop();
    done.insert(at.to_owned());
    None
}

#[test]
fn modules_import_each_other_without_cycles() {
    let graph = graph();
    for (module, uses) in &graph {
        eprintln!("{module} -> {uses:?}");
    }
    // The leaves the rest is built on, and the procedure at the top.
    for leaf in ["adapter", "info", "runtime", "stream"] {
        assert_eq!(graph[leaf], BTreeSet::new(), "{leaf} must stay a leaf");
    }
    // `cluster` is the layer above one connection: it dials through `connect`.
    assert!(
        graph
            .iter()
            .all(|(module, uses)| module == "cluster" || !uses.contains("connect")),
        "only the crate root and `cluster` may use `connect`: {graph:?}"
    );
    assert_acyclic(&graph);
    // Inside the `cluster` directory, through `super::`.
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/cluster");
    let inner = edges(&modules_in(&dir, &["mod"]), "super::");
    for (module, uses) in &inner {
        eprintln!("cluster::{module} -> {uses:?}");
    }
    for leaf in ["config", "latch", "events", "dial"] {
        assert!(inner[leaf].is_empty(), "cluster::{leaf} must stay a leaf");
    }
    assert_acyclic(&inner);
}

fn assert_acyclic(graph: &BTreeMap<String, BTreeSet<String>>) {
    let mut done = BTreeSet::new();
    for module in graph.keys() {
        if let Some(cycle) = find_cycle(graph, module, &mut Vec::new(), &mut done) {
            panic!("import cycle: {}", cycle.join(" -> "));
        }
    }
}
