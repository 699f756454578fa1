//! The documentation is true to the code. Every check reads files only (and asks the
//! configuration code what it makes of a documented value), so the whole file runs in well
//! under a second. Each failure names the file, the line and what is wrong.
//!
//! - Every repository path the Markdown files name (in backticks, or as a link) exists.
//! - Every variable a configuration table (a Markdown table whose first column is `variable`,
//!   in a `.md` file or a module doc) lists is read by the code, and every variable the code
//!   reads is documented; every variable a process reads is in the one table README.md
//!   promises, `functions/shared/src/config.rs`'s.
//! - Every default and range a configuration table states is the code's: the documented
//!   default, given to the configuration code as the variable's value, changes nothing; the
//!   documented range's ends are accepted and the values just outside refused.
//! - The README's layout table names folders that exist, covers every top-level folder, and a
//!   folder whose row lists its entries lists all of them.
//! - No comment or document refers to an issue by number: they say what holds, not when it
//!   was built.
//! - The top-level modules of each crate name each other without a circle (`crate::x` paths,
//!   and `super::` paths that climb to the crate root, in the code that is not a test), so
//!   they read from the bottom up.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Folders never read: build output, dependencies, local data, version control.
const SKIPPED_DIRS: &[&str] = &[
    "target",
    "node_modules",
    ".git",
    ".venv",
    ".data",
    "__pycache__",
];

/// Every file under `dir` (relative to the repository), sorted.
fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(root().join(dir)) else {
        return;
    };
    let mut entries: Vec<_> = entries.filter_map(Result::ok).collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let name = e.file_name().to_string_lossy().into_owned();
        let rel = dir.join(&name);
        let Ok(kind) = e.file_type() else { continue };
        if kind.is_dir() {
            if !SKIPPED_DIRS.contains(&name.as_str()) && !name.starts_with('.') {
                walk(&rel, out);
            }
        } else if kind.is_file() {
            out.push(rel);
        }
    }
}

fn files() -> Vec<PathBuf> {
    let mut out = Vec::new();
    walk(Path::new(""), &mut out);
    out
}

fn read(rel: &Path) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("{}: {e}", rel.display()))
}

fn has_ext(p: &Path, exts: &[&str]) -> bool {
    p.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| exts.contains(&e))
}

/// The Markdown files: README.md, docs/*.md and every other `.md` of the repository.
fn markdown() -> Vec<PathBuf> {
    files()
        .into_iter()
        .filter(|p| has_ext(p, &["md"]))
        .collect()
}

/// Fails with every problem, one a line.
fn report(what: &str, problems: &[String]) {
    assert!(
        problems.is_empty(),
        "{what}:\n{}",
        problems
            .iter()
            .map(|p| format!("  {p}"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// The inline code spans of a line (the text between pairs of backticks).
fn code_spans(line: &str) -> Vec<&str> {
    line.split('`').skip(1).step_by(2).collect()
}

/// The targets of a line's Markdown links, `[text](target)`.
fn link_targets(line: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = line;
    while let Some(i) = rest.find("](") {
        rest = &rest[i + 2..];
        if let Some(end) = rest.find(')') {
            out.push(&rest[..end]);
            rest = &rest[end..];
        }
    }
    out
}

/// The lines of a Markdown file outside fenced code blocks, numbered from 1.
fn prose_lines(text: &str) -> Vec<(usize, &str)> {
    let mut fenced = false;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if !fenced {
            out.push((i + 1, line));
        }
    }
    out
}

/// The names at the repository's top level (folders and files).
fn top_level() -> BTreeSet<String> {
    std::fs::read_dir(root())
        .unwrap_or_else(|e| panic!("{e}"))
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.') && !SKIPPED_DIRS.contains(&n.as_str()))
        .collect()
}

/// Whether `path` (relative to `base`; `*` matches within one name) exists.
fn exists_under(base: &Path, path: &str) -> bool {
    let path = path.trim_end_matches('/');
    if !path.contains('*') {
        return base.join(path).exists();
    }
    let (dir, pattern) = path.rsplit_once('/').unwrap_or(("", path));
    let Some((prefix, suffix)) = pattern.split_once('*') else {
        return false;
    };
    std::fs::read_dir(base.join(dir)).is_ok_and(|entries| {
        entries.filter_map(Result::ok).any(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            n.len() >= prefix.len() + suffix.len() && n.starts_with(prefix) && n.ends_with(suffix)
        })
    })
}

/// A code span as a repository path, if it reads as one: no spaces or shell syntax, and its
/// first name is one of the repository's top-level folders or files. A `:line` suffix is
/// dropped. Names relative to something else (`config.rs`, `esm/`) are not paths here.
fn as_repo_path(span: &str, top: &BTreeSet<String>) -> Option<String> {
    let s = span.trim().trim_start_matches("./");
    if s.is_empty()
        || s.contains(|c: char| c.is_whitespace() || "<>{}$=(),;'\"|@".contains(c))
        || s.contains("://")
    {
        return None;
    }
    let s = match s.split_once(':') {
        Some((p, line)) if line.chars().all(|c| c.is_ascii_digit() || c == '-') => p,
        Some(_) => return None,
        None => s,
    };
    let first = s.split('/').next().unwrap_or("");
    (top.contains(first) && (s.contains('/') || s.contains('.'))).then(|| s.to_string())
}

/// Paths the docs name that a script creates (not committed), each with the script, which
/// must name the folder it writes.
const GENERATED: &[(&str, &str)] = &[("simulator/sumo/scenarios", "scripts/sumo.sh")];

#[test]
fn every_repository_path_the_docs_name_exists() {
    for (path, script) in GENERATED {
        let name = path.rsplit('/').next().unwrap_or(path);
        assert!(
            read(Path::new(script)).contains(name),
            "{script} does not write {path}, which GENERATED says it does"
        );
    }
    let top = top_level();
    let mut problems = Vec::new();
    for md in markdown() {
        let text = read(&md);
        let dir = root().join(md.parent().unwrap_or(Path::new("")));
        for (n, line) in prose_lines(&text) {
            for span in code_spans(line) {
                if let Some(p) = as_repo_path(span, &top)
                    && !GENERATED.iter().any(|(g, _)| *g == p.trim_end_matches('/'))
                    && !exists_under(root(), &p)
                    && !exists_under(&dir, &p)
                {
                    problems.push(format!("{}:{n}: `{p}` does not exist", md.display()));
                }
            }
            for target in link_targets(line) {
                let t = target.split('#').next().unwrap_or("").trim();
                if t.is_empty() || t.contains("://") || t.starts_with("mailto:") {
                    continue;
                }
                if !exists_under(&dir, t) {
                    problems.push(format!(
                        "{}:{n}: the link to {t} leads nowhere",
                        md.display()
                    ));
                }
            }
        }
    }
    report("paths named in the docs that do not exist", &problems);
}

// --- The environment ---------------------------------------------------------------------

/// Whether `s` reads as an environment variable's name (`TRAFFIC_WINDOWS`), or a family of
/// them (`WEBSTER_*`).
fn is_variable(s: &str) -> bool {
    let name = s.strip_suffix('*').unwrap_or(s);
    let mut parts = name.split('_');
    let first = parts.next().unwrap_or("");
    first.len() > 1
        && first.starts_with(|c: char| c.is_ascii_uppercase())
        && name.contains('_')
        && name
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

/// Variables the AWS SDK or Cargo reads (the code never names them in a read).
fn read_by_the_sdk(name: &str) -> bool {
    ["AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL"]
        .iter()
        .any(|p| name.starts_with(p))
        || name.starts_with("CARGO_")
}

/// The cells of a table row, split on the `|`s outside code spans.
fn cells(row: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cell = String::new();
    let mut in_code = false;
    for c in row.trim().trim_start_matches('|').chars() {
        match c {
            '`' => {
                in_code = !in_code;
                cell.push(c);
            }
            '|' if !in_code => out.push(std::mem::take(&mut cell).trim().to_string()),
            _ => cell.push(c),
        }
    }
    if !cell.trim().is_empty() {
        out.push(cell.trim().to_string());
    }
    out
}

/// A row of a configuration table.
struct Row {
    /// Where: file and line.
    at: String,
    file: PathBuf,
    /// The variables of its first cell.
    vars: Vec<String>,
    /// The default column's cell, when the table has one.
    default: Option<String>,
    /// The whole row.
    text: String,
}

/// A file's text as Markdown: a Rust file's module doc (`//! ` stripped), a `.md` file whole.
fn markdown_of(rel: &Path) -> Vec<(usize, String)> {
    let text = read(rel);
    if has_ext(rel, &["rs"]) {
        text.lines()
            .enumerate()
            .filter_map(|(i, l)| {
                let l = l.trim_start();
                l.strip_prefix("//!")
                    .map(|d| (i + 1, d.strip_prefix(' ').unwrap_or(d).to_string()))
            })
            .collect()
    } else {
        text.lines()
            .enumerate()
            .map(|(i, l)| (i + 1, l.to_string()))
            .collect()
    }
}

/// Every row of every configuration table: tables whose header's first cell is `variable`,
/// in the Markdown files and in the Rust files' module docs.
fn configuration_rows() -> Vec<Row> {
    let mut rows = Vec::new();
    for file in files().into_iter().filter(|p| has_ext(p, &["md", "rs"])) {
        let lines = markdown_of(&file);
        let mut header: Option<Vec<String>> = None;
        for (n, line) in &lines {
            if !line.trim_start().starts_with('|') {
                header = None;
                continue;
            }
            let c = cells(line);
            let Some(h) = &header else {
                header = Some(c);
                continue;
            };
            if h.first().map(String::as_str) != Some("variable") || line.contains("---") {
                continue;
            }
            let vars = code_spans(c.first().map(String::as_str).unwrap_or(""))
                .into_iter()
                .filter(|s| is_variable(s))
                .map(str::to_string)
                .collect();
            let default = h
                .iter()
                .position(|x| x == "default")
                .and_then(|i| c.get(i).cloned());
            rows.push(Row {
                at: format!("{}:{n}", file.display()),
                file: file.clone(),
                vars,
                default,
                text: line.clone(),
            });
        }
    }
    rows
}

/// The variables the code reads (its build scripts aside), each with where, and whether only
/// tests read it. A read is
/// the name as a string literal right after `lookup(`, `get(`, `var(`, `var_os(`, `int(`,
/// `num(` or clap's `env = `, or first in a `("NAME", &mut slot)` pair of a table of reads.
fn reads() -> Vec<(String, String, bool)> {
    const CALLS: &[&str] = &[
        "lookup(", "get(", "var(", "var_os(", "int(", "num(", "env = ",
    ];
    let mut out = Vec::new();
    // Build scripts read cargo's build environment (DUCKDB_LIB_DIR), not a process's.
    let sources = files()
        .into_iter()
        .filter(|p| has_ext(p, &["rs"]) && !p.ends_with("build.rs"));
    for file in sources {
        let in_tests_dir = file.components().any(|c| c.as_os_str() == "tests");
        let text = read(&file);
        let flat: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
        let test_from = text.find("#[cfg(test)]").unwrap_or(text.len());
        let mut push = |name: &str| {
            let line = text
                .find(&format!("\"{name}\""))
                .map(|i| text[..i].lines().count().max(1))
                .unwrap_or(0);
            let only_tests = in_tests_dir
                || text
                    .match_indices(&format!("\"{name}\""))
                    .all(|(i, _)| i > test_from);
            out.push((
                name.to_string(),
                format!("{}:{line}", file.display()),
                only_tests,
            ));
        };
        for (i, _) in flat.match_indices('"') {
            let Some(rest) = flat.get(i + 1..) else {
                continue;
            };
            let Some(end) = rest.find('"') else { continue };
            let name = &rest[..end];
            if !is_variable(name) || name.ends_with('*') {
                continue;
            }
            let before = flat[..i].trim_end();
            let after = &rest[end + 1..];
            // `get(` only as a closure (`.get(` is a map's).
            let call = CALLS.iter().any(|c| {
                before.ends_with(c.trim_end()) && !(*c == "get(" && before.ends_with(".get("))
            });
            let pair = before.ends_with('(') && after.trim_start().starts_with(", &mut ");
            if call || pair {
                push(name);
            }
        }
    }
    out.sort();
    out.dedup_by(|a, b| a.0 == b.0 && a.2 == b.2);
    out
}

fn documented_in(rows: &[Row], name: &str) -> bool {
    rows.iter().any(|r| {
        r.vars.iter().any(|v| match v.strip_suffix('*') {
            Some(prefix) => name.starts_with(prefix),
            None => v == name,
        })
    })
}

#[test]
fn every_variable_a_configuration_table_lists_is_read_by_the_code() {
    let read: BTreeSet<String> = reads().into_iter().map(|r| r.0).collect();
    let mut problems = Vec::new();
    for row in configuration_rows() {
        for v in &row.vars {
            let found = match v.strip_suffix('*') {
                Some(prefix) => read.iter().any(|r| r.starts_with(prefix)),
                None => read.contains(v),
            };
            if !found && !read_by_the_sdk(v) {
                problems.push(format!(
                    "{}: `{v}` is documented, but no code reads it",
                    row.at
                ));
            }
        }
    }
    report("documented variables that nothing reads", &problems);
}

#[test]
fn every_variable_the_code_reads_is_documented_and_every_process_variable_is_in_the_one_table() {
    let rows = configuration_rows();
    let the_table: Vec<Row> = configuration_rows()
        .into_iter()
        .filter(|r| r.file == Path::new("functions/shared/src/config.rs"))
        .collect();
    assert!(
        !the_table.is_empty(),
        "functions/shared/src/config.rs has no configuration table"
    );
    let mut docs = String::new();
    for md in markdown() {
        docs.push_str(&read(&md));
    }
    let mut problems = Vec::new();
    for (name, at, only_tests) in reads() {
        if read_by_the_sdk(&name) {
            continue;
        }
        if !documented_in(&rows, &name) && !docs.contains(&name) {
            problems.push(format!(
                "{at}: `{name}` is read here, but no document or configuration table names it"
            ));
        }
        if !only_tests && !documented_in(&the_table, &name) {
            problems.push(format!(
                "{at}: `{name}` is read here, but the table in functions/shared/src/config.rs, \
                 which README.md says lists every variable, does not have it"
            ));
        }
    }
    report(
        "variables the code reads that are not documented",
        &problems,
    );
}

// --- Defaults ----------------------------------------------------------------------------

/// What the configuration code makes of the environment holding only `vars`: the functions'
/// configuration (engine, store, alarms, ...), as text, or the error.
fn configured(vars: &[(&str, &str)]) -> Result<String, String> {
    traffic_functions::Config::from_lookup(|k| {
        vars.iter()
            .find(|(n, _)| *n == k)
            .map(|(_, v)| v.to_string())
    })
    .map(|c| format!("{c:?}"))
    .map_err(|e| e.to_string())
}

/// Variables whose stated default depends on where the process runs, or which the
/// configuration keeps as given (the logging variables: `functions/shared/src/logging.rs`
/// resolves them, and its own tests check that).
const DEFAULT_NOT_COMPARABLE: &[&str] = &[
    "RUST_LOG",
    "AWS_LAMBDA_LOG_LEVEL",
    "AWS_LAMBDA_LOG_FORMAT",
    "TRAFFIC_LOG_FORMAT",
    "TRAFFIC_METRICS",
];

/// A stated default as one value: the cell's first code span when it starts with one, else
/// the cell when it is one word; `none` and anything in words state no value.
fn one_value(cell: &str) -> Option<String> {
    let cell = cell.trim();
    let v = if let Some(rest) = cell.strip_prefix('`') {
        rest.split('`').next().unwrap_or("")
    } else {
        cell
    };
    let v = v.trim();
    (!v.is_empty() && !v.contains(' ') && v != "none").then(|| v.to_string())
}

/// The defaults a row states, one per variable: the default column's cell (split on ` / ` or
/// `, ` when the row names several variables), or, in a row of one variable, the value after
/// `default ` in its words.
fn stated_defaults(row: &Row) -> Vec<(String, String)> {
    if let Some(cell) = &row.default {
        let parts: Vec<&str> = if row.vars.len() > 1 {
            if cell.contains(" / ") {
                cell.split(" / ").collect()
            } else {
                cell.split(", ").collect()
            }
        } else {
            vec![cell.as_str()]
        };
        if parts.len() != row.vars.len() {
            return Vec::new();
        }
        return row
            .vars
            .iter()
            .zip(parts)
            .filter_map(|(v, p)| one_value(p).map(|d| (v.clone(), d)))
            .collect();
    }
    if row.vars.len() != 1 {
        return Vec::new();
    }
    let Some(i) = row.text.find("default ") else {
        return Vec::new();
    };
    let rest = &row.text[i + "default ".len()..];
    let end = rest.find([';', ')', ',', ' ']).unwrap_or(rest.len());
    one_value(&rest[..end])
        .map(|d| vec![(row.vars[0].clone(), d)])
        .unwrap_or_default()
}

/// The ranges a row of one variable states, `4–400` (an en dash between two integers).
fn stated_range(row: &Row) -> Option<(u64, u64)> {
    if row.vars.len() != 1 {
        return None;
    }
    let cells = cells(&row.text);
    for word in cells.iter().skip(1).flat_map(|c| c.split_whitespace()) {
        let word = word.trim_matches(|c: char| !c.is_ascii_digit());
        if let Some((a, b)) = word.split_once('–')
            && let (Ok(a), Ok(b)) = (a.parse(), b.parse())
        {
            return Some((a, b));
        }
    }
    None
}

/// Defaults the `traffic` command's options state (`default_value = "..."` next to
/// `env = "NAME"` in one `#[arg(...)]`), by variable.
fn command_defaults() -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for file in files()
        .into_iter()
        .filter(|p| p.starts_with("src") && has_ext(p, &["rs"]))
    {
        let text = read(&file);
        let flat: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
        for attr in flat.split("#[arg(").skip(1) {
            let attr = attr.split(")]").next().unwrap_or("");
            let value = |key: &str| {
                attr.split(key)
                    .nth(1)
                    .and_then(|r| r.strip_prefix('"'))
                    .and_then(|r| r.split('"').next())
                    .map(str::to_string)
            };
            if let (Some(env), Some(default)) = (value("env = "), value("default_value = ")) {
                out.push((env, default, file.display().to_string()));
            }
        }
    }
    out
}

#[test]
fn every_default_and_range_a_configuration_table_states_is_the_codes() {
    let unset = configured(&[]).unwrap_or_else(|e| panic!("the configuration of nothing: {e}"));
    let from_command = command_defaults();
    let mut problems = Vec::new();
    let mut compared = 0;
    for row in configuration_rows() {
        for (var, default) in stated_defaults(&row) {
            if DEFAULT_NOT_COMPARABLE.contains(&var.as_str()) {
                continue;
            }
            if let Some((_, code, file)) = from_command.iter().find(|(v, _, _)| *v == var) {
                compared += 1;
                if *code != default {
                    problems.push(format!(
                        "{}: `{var}` is documented with default {default}, {file} has {code}",
                        row.at
                    ));
                }
                continue;
            }
            compared += 1;
            match configured(&[(var.as_str(), default.as_str())]) {
                Ok(c) if c == unset => {}
                Ok(_) => problems.push(format!(
                    "{}: `{var}` is documented with default {default}, but setting it to that \
                     changes the configuration (the code's default differs)",
                    row.at
                )),
                Err(e) => problems.push(format!(
                    "{}: `{var}` is documented with default {default}, which the code refuses: {e}",
                    row.at
                )),
            }
        }
        if let Some((low, high)) = stated_range(&row) {
            let var = row.vars[0].as_str();
            compared += 1;
            let takes = |n: u64| configured(&[(var, &n.to_string())]).is_ok();
            let wrong: Vec<String> = [
                (low, true),
                (high, true),
                (low.saturating_sub(1), low == 0),
                (high + 1, false),
            ]
            .into_iter()
            .filter(|&(n, ok)| takes(n) != ok)
            .map(|(n, ok)| format!("{n} {}", if ok { "refused" } else { "accepted" }))
            .collect();
            if !wrong.is_empty() {
                problems.push(format!(
                    "{}: `{var}` is documented as {low}–{high}, but the code has {}",
                    row.at,
                    wrong.join(", ")
                ));
            }
        }
    }
    for (var, code, file) in &from_command {
        // The command's option defaults of engine variables are the engine's.
        if let Ok(c) = configured(&[(var.as_str(), code.as_str())])
            && c != unset
        {
            problems.push(format!(
                "{file}: the option of `{var}` defaults to {code}, the engine to something else"
            ));
        }
    }
    assert!(compared >= 20, "only {compared} defaults compared");
    report(
        "documented defaults and ranges that are not the code's",
        &problems,
    );
}

// --- The layout table --------------------------------------------------------------------

#[test]
fn the_layout_table_names_what_exists_and_covers_every_folder() {
    let readme = read(Path::new("README.md"));
    let lines: Vec<&str> = readme.lines().collect();
    let start = lines
        .iter()
        .position(|l| l.trim() == "## Layout")
        .unwrap_or_else(|| panic!("README.md has no \"## Layout\" section"));
    let mut problems = Vec::new();
    let mut covered: BTreeSet<PathBuf> = BTreeSet::new();
    for (i, line) in lines.iter().enumerate().skip(start + 1) {
        if line.starts_with("## ") {
            break;
        }
        let c = cells(line);
        if !line.starts_with('|')
            || line.contains("---")
            || c.first().is_some_and(|f| f == "folder")
        {
            continue;
        }
        let at = format!("README.md:{}", i + 1);
        let folders: Vec<&str> = code_spans(c.first().map(String::as_str).unwrap_or("")).to_vec();
        let what = c.get(1).map(String::as_str).unwrap_or("");
        for folder in &folders {
            let dir = PathBuf::from(folder.trim_end_matches('/'));
            if !root().join(&dir).is_dir() {
                problems.push(format!("{at}: `{folder}` is not a folder"));
                continue;
            }
            covered.insert(dir.clone());
            // The entries the row names inside its folder, by name or by path.
            let named: BTreeSet<String> = code_spans(what)
                .into_iter()
                .filter_map(|s| {
                    let s = s.trim_end_matches('/');
                    let s = s.strip_prefix(&format!("{}/", dir.display())).unwrap_or(s);
                    (!s.contains('/')).then(|| s.to_string())
                })
                .filter(|s| root().join(&dir).join(s).exists())
                .collect();
            // A row that lists three or more of its folder's files (or folders) lists all of
            // them: a partial list reads as the whole.
            if folders.len() == 1 {
                let base = root().join(&dir);
                for want_dirs in [false, true] {
                    let kind = |n: &String| base.join(n).is_dir() == want_dirs;
                    if named.iter().filter(|n| kind(n)).count() < 3 {
                        continue;
                    }
                    let entries = std::fs::read_dir(&base).unwrap_or_else(|e| panic!("{e}"));
                    let mut missing: Vec<String> = entries
                        .filter_map(Result::ok)
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .filter(|n| {
                            kind(n)
                                && !n.starts_with('.')
                                && !SKIPPED_DIRS.contains(&n.as_str())
                                && !named.contains(n)
                        })
                        .collect();
                    missing.sort();
                    for m in missing {
                        problems.push(format!(
                            "{at}: the row of `{folder}` lists its entries but not `{m}`"
                        ));
                    }
                }
            }
        }
        for span in code_spans(what) {
            if span.contains('/')
                && as_repo_path(span, &top_level()).is_some()
                && !root().join(span.trim_end_matches('/')).exists()
            {
                problems.push(format!("{at}: `{span}` does not exist"));
            }
        }
    }
    // Every top-level folder is a row, or each of its folders is.
    for name in top_level() {
        let dir = PathBuf::from(&name);
        if !root().join(&dir).is_dir() || covered.contains(&dir) {
            continue;
        }
        let subdirs: Vec<PathBuf> = std::fs::read_dir(root().join(&dir))
            .unwrap_or_else(|e| panic!("{e}"))
            .filter_map(Result::ok)
            .filter(|e| e.path().is_dir())
            .map(|e| dir.join(e.file_name()))
            .collect();
        if subdirs.is_empty() || !subdirs.iter().all(|s| covered.contains(s)) {
            problems.push(format!(
                "README.md:{}: the layout table has no row for `{name}/`",
                start + 1
            ));
        }
    }
    // Every crate's examples and benchmarks, which a newcomer runs, are named.
    let table = lines[start..].join("\n");
    for file in files() {
        let Some(parent) = file.parent() else {
            continue;
        };
        let top = parent.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if (top == "examples" || top == "benches") && has_ext(&file, &["rs"]) {
            let stem = file.file_stem().and_then(|s| s.to_str()).unwrap_or("");
            let dir = format!("{}/", parent.display());
            if !table.contains(&dir) && !table.contains(&format!("`{stem}`")) {
                problems.push(format!(
                    "README.md:{}: the layout table names neither `{dir}` nor `{stem}` ({})",
                    start + 1,
                    file.display()
                ));
            }
        }
    }
    report("the README's layout table", &problems);
}

// --- History -----------------------------------------------------------------------------

/// A line's reference to an issue by number (`issue 13`, `issue #13`, `issues 12 and 14`).
fn issue_reference(line: &str) -> Option<String> {
    let lower = line.to_lowercase();
    let mut from = 0;
    while let Some(i) = lower[from..].find("issue") {
        let at = from + i;
        from = at + "issue".len();
        if at > 0 && lower[..at].ends_with(|c: char| c.is_ascii_alphanumeric() || c == '_') {
            continue;
        }
        let rest = lower[from..].strip_prefix('s').unwrap_or(&lower[from..]);
        let rest = rest.trim_start_matches([' ', '#']);
        if rest.starts_with(|c: char| c.is_ascii_digit()) {
            let end = (from + 12).min(line.len());
            return Some(line.get(at..end).unwrap_or(&line[at..]).to_string());
        }
    }
    None
}

#[test]
fn no_comment_or_document_refers_to_an_issue_by_number() {
    const TEXT: &[&str] = &[
        "rs", "md", "sh", "py", "yaml", "yml", "toml", "js", "html", "json", "txt",
    ];
    let mut problems = Vec::new();
    for file in files() {
        let name = file.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if !has_ext(&file, TEXT)
            || name.eq_ignore_ascii_case("CHANGELOG.md")
            || name.ends_with(".lock")
            || file == Path::new("tests/docs.rs")
        {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(root().join(&file)) else {
            continue;
        };
        for (i, line) in text.lines().enumerate() {
            if let Some(r) = issue_reference(line) {
                problems.push(format!(
                    "{}:{}: \"{r}...\": say what holds now, not which issue built it",
                    file.display(),
                    i + 1
                ));
            }
        }
    }
    report("references to issues by number", &problems);
}

// --- Module dependencies -----------------------------------------------------------------

/// The source folders of the workspace's crates: every `src/` beside a `Cargo.toml`.
fn crate_sources(all: &[PathBuf]) -> Vec<PathBuf> {
    all.iter()
        .filter(|p| p.file_name().is_some_and(|n| n == "Cargo.toml"))
        .filter_map(|p| p.parent().map(|d| d.join("src")))
        .filter(|src| root().join(src).is_dir())
        .collect()
}

/// The module path of a source file, relative to its crate's `src/` (`a/b.rs` and `a/b/mod.rs`:
/// `[a, b]`); empty for the crate root (`lib.rs`, `main.rs`), `None` for a file of another
/// crate (`bin/`).
fn module_path(rel: &Path) -> Option<Vec<String>> {
    let mut path: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if path.first().is_some_and(|p| p == "bin") {
        return None;
    }
    let last = path.pop()?;
    let stem = last.strip_suffix(".rs")?;
    if !(stem == "mod" || (path.is_empty() && (stem == "lib" || stem == "main"))) {
        path.push(stem.to_string());
    }
    Some(path)
}

/// The code of a source file that is not a test: the lines before the first `#[cfg(test)]`,
/// each without its `//` comment.
fn non_test_code(text: &str) -> String {
    text.lines()
        .take_while(|l| *l != "#[cfg(test)]")
        .map(|l| l.find("//").map_or(l, |i| &l[..i]))
        .collect::<Vec<_>>()
        .join("\n")
}

fn is_ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// The first segments a path continues with: `a` of `a::b`, `a` and `c` of `{a::b, c}`.
fn first_segments(rest: &str) -> Vec<String> {
    let ident = |s: &str| -> String { s.chars().take_while(|c| is_ident_char(*c)).collect() };
    let Some(group) = rest.strip_prefix('{') else {
        return vec![ident(rest)];
    };
    let (mut out, mut depth, mut item_start) = (Vec::new(), 1, true);
    for (i, c) in group.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 1 => break,
            '}' => depth -= 1,
            ',' if depth == 1 => item_start = true,
            c if c.is_whitespace() => {}
            _ if item_start && depth == 1 => {
                out.push(ident(&group[i..]));
                item_start = false;
            }
            _ => {}
        }
    }
    out
}

/// The top-level modules of its crate that the code of the module at `path` names: `crate::x`
/// paths (`use crate::{x, y::z}` too), and `super::` paths that climb to the crate root. A
/// `super::` that stays inside the module's own top-level module is no dependency on another.
fn named_modules(path: &[String], code: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (i, _) in code.match_indices("crate::") {
        if code[..i].ends_with(is_ident_char) {
            continue;
        }
        out.extend(first_segments(code[i + "crate::".len()..].trim_start()));
    }
    for (i, _) in code.match_indices("super::") {
        if code[..i].ends_with(|c: char| is_ident_char(c) || c == ':') {
            continue;
        }
        let mut rest = &code[i..];
        let mut up = 0;
        while let Some(r) = rest.strip_prefix("super::") {
            rest = r.trim_start();
            up += 1;
        }
        if up >= path.len() {
            out.extend(first_segments(rest));
        }
    }
    out.retain(|m| !m.is_empty() && path.first() != Some(m));
    out
}

/// A circle in `edges` (module to the modules it names), as the modules along it with the
/// first repeated at the end, if there is one.
fn find_cycle(edges: &BTreeMap<String, BTreeMap<String, PathBuf>>) -> Option<Vec<String>> {
    fn visit(
        m: &str,
        edges: &BTreeMap<String, BTreeMap<String, PathBuf>>,
        done: &mut BTreeSet<String>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = stack.iter().position(|s| s == m) {
            let mut cycle = stack[at..].to_vec();
            cycle.push(m.to_string());
            return Some(cycle);
        }
        if !done.insert(m.to_string()) {
            return None;
        }
        stack.push(m.to_string());
        for next in edges.get(m).into_iter().flat_map(|n| n.keys()) {
            if let Some(cycle) = visit(next, edges, done, stack) {
                return Some(cycle);
            }
        }
        stack.pop();
        None
    }
    let mut done = BTreeSet::new();
    edges
        .keys()
        .find_map(|m| visit(m, edges, &mut done, &mut Vec::new()))
}

#[test]
fn the_modules_of_each_crate_name_each_other_without_a_circle() {
    let all = files();
    let mut problems = Vec::new();
    for src in crate_sources(&all) {
        let sources: Vec<(&PathBuf, Vec<String>)> = all
            .iter()
            .filter(|p| p.starts_with(&src) && has_ext(p, &["rs"]))
            .filter_map(|p| Some((p, module_path(p.strip_prefix(&src).ok()?)?)))
            .collect();
        let modules: BTreeSet<&String> = sources.iter().filter_map(|(_, m)| m.first()).collect();
        let mut edges: BTreeMap<String, BTreeMap<String, PathBuf>> = BTreeMap::new();
        for (file, path) in &sources {
            let Some(from) = path.first() else { continue };
            for to in named_modules(path, &non_test_code(&read(file))) {
                if modules.contains(&to) {
                    edges
                        .entry(from.clone())
                        .or_default()
                        .entry(to)
                        .or_insert_with(|| (*file).clone());
                }
            }
        }
        if let Some(cycle) = find_cycle(&edges) {
            let named_in: Vec<String> = cycle
                .windows(2)
                .map(|w| format!("{} names {}", edges[&w[0]][&w[1]].display(), w[1]))
                .collect();
            problems.push(format!(
                "{}: {} ({})",
                src.display(),
                cycle.join(" -> "),
                named_in.join(", ")
            ));
        }
    }
    report(
        "circles among a crate's top-level modules (move what both sides need into a module \
         below them)",
        &problems,
    );
}

#[test]
fn the_checks_find_what_they_look_for() {
    assert_eq!(
        as_repo_path("core/src/lamps.rs:78-95", &top_level()).as_deref(),
        Some("core/src/lamps.rs")
    );
    assert_eq!(as_repo_path("esm/", &top_level()), None);
    assert_eq!(as_repo_path("cargo run -p core", &top_level()), None);
    assert!(exists_under(root(), "tests/aws/*.rs"));
    assert!(!exists_under(root(), "tests/nothing_*.rs"));
    assert!(issue_reference("// (issue 13, safe timings)").is_some());
    assert!(issue_reference("issue #4 said").is_some());
    assert!(issue_reference("Issue 12's targets").is_some());
    assert!(issue_reference("an issue the test finds").is_none());
    assert!(is_variable("WEBSTER_*") && is_variable("TRAFFIC_WINDOWS") && !is_variable("AWS"));
    assert_eq!(
        cells("| `a|b` | c |"),
        vec!["`a|b`".to_string(), "c".to_string()]
    );
    assert_eq!(
        first_segments("{a::b, c::{d, e}, f}; use g"),
        vec!["a".to_string(), "c".to_string(), "f".to_string()]
    );
    let deps = |path: &[&str], code: &str| -> Vec<String> {
        let path: Vec<String> = path.iter().map(|s| s.to_string()).collect();
        named_modules(&path, code).into_iter().collect()
    };
    assert_eq!(
        deps(&["a"], "use crate::{a::x, b};\nlet y = crate::c::f();"),
        ["b", "c"]
    );
    assert_eq!(
        deps(&["a", "b"], "use super::x; use super::super::c::D;"),
        ["c"]
    );
    assert_eq!(
        deps(&["a"], "use traffic_crate::b; pub(super) fn f() {}"),
        Vec::<String>::new()
    );
    assert_eq!(
        module_path(Path::new("a/b/mod.rs")),
        Some(vec!["a".to_string(), "b".to_string()])
    );
    assert_eq!(module_path(Path::new("lib.rs")), Some(vec![]));
    let edges: BTreeMap<String, BTreeMap<String, PathBuf>> = [("a", "b"), ("b", "c"), ("c", "a")]
        .into_iter()
        .map(|(f, t)| (f.to_string(), [(t.to_string(), PathBuf::new())].into()))
        .collect();
    assert_eq!(
        find_cycle(&edges),
        Some(
            vec!["a", "b", "c", "a"]
                .into_iter()
                .map(String::from)
                .collect()
        )
    );
    let names: BTreeSet<String> = reads().into_iter().map(|r| r.0).collect();
    for v in [
        "TRAFFIC_WINDOWS",
        "TRAFFIC_MAX_CLOCK_SKEW",
        "TRAFFIC_MIN_READING_INTERVAL",
        "WEBSTER_MIN_CHANGE_S",
        "STATE_TABLE",
        "TRAFFIC_DYNAMODB_MAX_ITEM_KB",
        "TRAFFIC_DATA_DIR",
        "RUST_LOG",
    ] {
        assert!(
            names.contains(v),
            "{v} not found among the reads: {names:?}"
        );
    }
}

#[test]
fn the_test_commands_header_names_every_suite_it_runs() {
    let script = read(Path::new("scripts/test.sh"));
    let header: String = script
        .lines()
        .skip(1)
        .take_while(|l| l.starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n");
    let mut problems = Vec::new();
    let mut suites: Vec<PathBuf> = files()
        .into_iter()
        .filter(|p| p.starts_with("scripts/test.d") && has_ext(p, &["sh"]))
        .collect();
    suites.sort();
    for suite in suites {
        let name = suite.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if !header.contains(name) {
            problems.push(format!(
                "scripts/test.sh:2: its header does not name {}, which it runs",
                suite.display()
            ));
        }
    }
    report("the test command's header", &problems);
}
