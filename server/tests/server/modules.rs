//! The crate's module graph, read from the source: no module imports another that
//! (directly or through others) imports it back, and the domain modules know nothing
//! of HTTP. Each `crate::name` path in a module is an edge to the top-level module
//! `name`; the crate root (`lib.rs`), which only declares and re-exports, is left out.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Modules below the HTTP layer: they must not use axum.
const DOMAIN: &[&str] = &[
    "calendar",
    "clock",
    "codes",
    "db",
    "inspect",
    "keyring",
    "pacing",
    "schema",
    "sealed",
    "sessions",
    "sqlite",
    "statistics",
    "storage",
    "upload",
    "venues",
    "window",
    "writer",
];

/// Top-level module name → source text (a directory module's files joined).
fn modules() -> BTreeMap<String, String> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut modules = BTreeMap::new();
    let mut stack = vec![src.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let relative = path.strip_prefix(&src).unwrap();
            let top = relative.components().next().unwrap().as_os_str();
            let name = top.to_str().unwrap().trim_end_matches(".rs").to_owned();
            if name == "lib" || name == "main" {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            modules
                .entry(name)
                .or_insert_with(String::new)
                .push_str(&text);
        }
    }
    modules
}

/// The top-level modules named by `crate::` paths in `text`, comments left out.
fn imports(text: &str) -> BTreeSet<String> {
    let code: String = text
        .lines()
        .filter(|line| !line.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n");
    let ident = |s: &str| -> String {
        s.trim_start()
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect()
    };
    let mut names = BTreeSet::new();
    for piece in code.split("crate::").skip(1) {
        if let Some(group) = piece.strip_prefix('{') {
            // `crate::{a, b::c, d::{e, f}}`: the first identifier of each top-level item.
            let mut depth = 0;
            let mut item_start = true;
            for (i, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => item_start = true,
                    c if item_start && !c.is_whitespace() => {
                        names.insert(ident(&group[i..]));
                        item_start = false;
                    }
                    _ => {}
                }
            }
        } else {
            names.insert(ident(piece));
        }
    }
    names
}

#[test]
fn no_module_imports_itself_through_others() {
    let modules = modules();
    assert!(modules.len() >= 20, "{:?}", modules.keys());
    let graph: BTreeMap<&str, BTreeSet<String>> = modules
        .iter()
        .map(|(name, text)| {
            let mut edges = imports(text);
            edges.remove(name);
            // Root items (`crate::app`) are not modules of their own.
            edges.retain(|e| modules.contains_key(e));
            (name.as_str(), edges)
        })
        .collect();
    assert!(graph["upload"].contains("codes"), "the parser finds edges");

    // Depth-first search; a module met again while on the path closes a cycle.
    fn visit<'a>(
        node: &'a str,
        graph: &'a BTreeMap<&'a str, BTreeSet<String>>,
        path: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
    ) {
        if done.contains(node) {
            return;
        }
        if let Some(at) = path.iter().position(|n| *n == node) {
            panic!("module cycle: {} -> {node}", path[at..].join(" -> "));
        }
        path.push(node);
        for next in &graph[node] {
            visit(next, graph, path, done);
        }
        path.pop();
        done.insert(node);
    }
    let mut done = BTreeSet::new();
    for node in graph.keys() {
        visit(node, &graph, &mut Vec::new(), &mut done);
    }
}

#[test]
fn the_domain_knows_nothing_of_http() {
    let modules = modules();
    for name in DOMAIN {
        let text = &modules[*name];
        assert!(!text.contains("axum"), "{name} uses axum");
        for http in ["state", "publish", "admin", "portal", "json", "html"] {
            assert!(
                !imports(text).contains(http),
                "{name} imports the HTTP module {http}"
            );
        }
    }
}

#[test]
fn imports_are_read_from_grouped_and_plain_paths() {
    let found = imports(
        "use crate::{a, b::C, d::{e, f}};\nuse crate::g::H;\n// use crate::comment;\nlet x = crate::i::j();",
    );
    let expected: BTreeSet<String> = ["a", "b", "d", "g", "i"].map(String::from).into();
    assert_eq!(found, expected);
}
