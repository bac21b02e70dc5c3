//! `cargo xtask tidy`: the repository's own rules, the ones rustc, clippy and rustfmt do not
//! check. A step of `cargo xtask ci`; runs alone in a second, with no build.
//!
//! | check | rule |
//! |---|---|
//! | `no-sleep-in-tests` | tests wait on a clock or a channel, never on `sleep` |
//! | `byte-order-in-format-modules` | `{from,to}_{le,be,ne}_bytes` only in a `format.rs` |
//! | `dependencies-used` | every workspace dependency has a user, every crate uses what it declares |
//! | `error-code-tables` | each crate's error-code table lists exactly the codes its `code()` returns |
//! | `doc-paths-exist` | every repository path and document a doc names exists |
//!
//! A line may opt out of one check with a comment naming it and saying why, on the line itself
//! or the one above: `// tidy: allow(no-sleep-in-tests) <why>`. Test code is every file under a
//! `tests/` directory and, in a source file, everything from a top-level `#[cfg(test)]` on.

use std::collections::BTreeSet;
use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};

use crate::shell::workspace_root;

pub(crate) fn run(args: &[String]) -> Result<(), String> {
    if !args.is_empty() {
        return Err("usage: cargo xtask tidy".to_owned());
    }
    check()
}

/// Runs every check; prints each finding and fails if there was one.
pub(crate) fn check() -> Result<(), String> {
    let repo = Repo::load(&workspace_root())?;
    let mut findings = Vec::new();
    findings.extend(no_sleep_in_tests(&repo));
    findings.extend(byte_order_in_format_modules(&repo));
    findings.extend(dependencies_used(&repo)?);
    findings.extend(error_code_tables(&repo));
    findings.extend(doc_paths_exist(&repo));
    for finding in &findings {
        println!("{finding}");
    }
    if findings.is_empty() {
        println!("tidy: every check passed");
        Ok(())
    } else {
        Err(format!("tidy: {} finding(s)", findings.len()))
    }
}

/// One broken rule, at a place in the repository.
#[derive(Debug, PartialEq, Eq)]
struct Finding {
    check: &'static str,
    path: String,
    line: usize,
    message: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}: [{}] {}",
            self.path, self.line, self.check, self.message
        )
    }
}

/// A text file of the repository, by its path relative to the root.
struct TextFile {
    path: String,
    text: String,
}

impl TextFile {
    fn lines(&self) -> impl Iterator<Item = (usize, &str)> {
        self.text.lines().enumerate().map(|(i, line)| (i + 1, line))
    }

    /// Whether `line` (1-based), or the line above it, opts out of `check`.
    fn allows(&self, line: usize, check: &str) -> bool {
        let marker = format!("tidy: allow({check})");
        let mut lines = self.text.lines().skip(line.saturating_sub(2));
        let above = if line >= 2 { lines.next() } else { None };
        let this = lines.next();
        [above, this]
            .into_iter()
            .flatten()
            .any(|text| text.contains(&marker))
    }

    /// The 1-based line from which this file is test code (past the end if none is).
    fn test_code_from(&self) -> usize {
        if self.path.split('/').any(|part| part == "tests") {
            return 1;
        }
        self.lines()
            .find(|(_, line)| *line == "#[cfg(test)]")
            .map_or(usize::MAX, |(number, _)| number)
    }
}

/// Every file the checks read, loaded once.
struct Repo {
    root: PathBuf,
    /// `*.rs` files outside `target/`.
    rust: Vec<TextFile>,
    /// `*.md` files outside `target/`.
    markdown: Vec<TextFile>,
    /// Every path in the repository (files and directories), relative, `/`-separated.
    paths: BTreeSet<String>,
}

impl Repo {
    fn load(root: &Path) -> Result<Repo, String> {
        let mut repo = Repo {
            root: root.to_path_buf(),
            rust: Vec::new(),
            markdown: Vec::new(),
            paths: BTreeSet::new(),
        };
        repo.walk(root)?;
        Ok(repo)
    }

    fn walk(&mut self, dir: &Path) -> Result<(), String> {
        let entries = fs::read_dir(dir).map_err(|error| format!("{}: {error}", dir.display()))?;
        for entry in entries {
            let entry = entry.map_err(|error| format!("{}: {error}", dir.display()))?;
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if name == "target" || name == ".git" {
                continue;
            }
            let relative = path
                .strip_prefix(&self.root)
                .map_err(|error| error.to_string())?
                .to_string_lossy()
                .replace('\\', "/");
            self.paths.insert(relative.clone());
            if path.is_dir() {
                self.walk(&path)?;
                continue;
            }
            let bucket = match path.extension().and_then(|extension| extension.to_str()) {
                Some("rs") => &mut self.rust,
                Some("md") => &mut self.markdown,
                _ => continue,
            };
            let text = fs::read_to_string(&path)
                .map_err(|error| format!("{}: {error}", path.display()))?;
            bucket.push(TextFile {
                path: relative,
                text,
            });
        }
        Ok(())
    }

    /// Whether `path`, named in the file at `from`, exists: from the repository root, or from
    /// the package `from` belongs to (a crate README names `examples/<name>.rs` of its own crate).
    fn resolves(&self, from: &str, path: &str) -> bool {
        let mut dir = from;
        loop {
            let package = self.paths.contains(&format!("{dir}/Cargo.toml"));
            if package && self.paths.contains(&format!("{dir}/{path}")) {
                return true;
            }
            match dir.rsplit_once('/') {
                Some((parent, _)) => dir = parent,
                None => return self.paths.contains(path),
            }
        }
    }

    /// The library crates: `crates/<name>`.
    fn crate_dirs(&self) -> impl Iterator<Item = &str> {
        self.paths
            .iter()
            .filter(|path| path.starts_with("crates/") && path.matches('/').count() == 1)
            .map(String::as_str)
    }

    /// The Rust files under `dir/`.
    fn rust_under<'a>(&'a self, dir: &'a str) -> impl Iterator<Item = &'a TextFile> {
        self.rust.iter().filter(move |file| {
            file.path.starts_with(dir) && file.path[dir.len()..].starts_with('/')
        })
    }
}

/// Whether `line` is only a comment.
fn is_comment(line: &str) -> bool {
    line.trim_start().starts_with("//")
}

fn no_sleep_in_tests(repo: &Repo) -> Vec<Finding> {
    const CHECK: &str = "no-sleep-in-tests";
    let mut findings = Vec::new();
    for file in &repo.rust {
        let tests_from = file.test_code_from();
        for (number, line) in file.lines().filter(|(number, _)| *number >= tests_from) {
            if line.contains("sleep(") && !is_comment(line) && !file.allows(number, CHECK) {
                findings.push(Finding {
                    check: CHECK,
                    path: file.path.clone(),
                    line: number,
                    message: "a test sleeps: wait on a manual clock, a channel or a barrier"
                        .to_owned(),
                });
            }
        }
    }
    findings
}

fn byte_order_in_format_modules(repo: &Repo) -> Vec<Finding> {
    const CHECK: &str = "byte-order-in-format-modules";
    const CONVERSIONS: [&str; 6] = [
        "from_le_bytes",
        "to_le_bytes",
        "from_be_bytes",
        "to_be_bytes",
        "from_ne_bytes",
        "to_ne_bytes",
    ];
    let mut findings = Vec::new();
    let library_sources = repo
        .rust
        .iter()
        .filter(|file| file.path.starts_with("crates/") && file.path.contains("/src/"));
    for file in library_sources {
        if file.path.ends_with("/format.rs") {
            continue;
        }
        let tests_from = file.test_code_from();
        for (number, line) in file.lines().take_while(|(number, _)| *number < tests_from) {
            let converts = CONVERSIONS.iter().any(|name| line.contains(name));
            if converts && !is_comment(line) && !file.allows(number, CHECK) {
                findings.push(Finding {
                    check: CHECK,
                    path: file.path.clone(),
                    line: number,
                    message: "a byte-order conversion outside a `format.rs`: move the layout there"
                        .to_owned(),
                });
            }
        }
    }
    findings
}

/// A dependency line of a manifest: the table it is in, its name and 1-based line.
struct Dependency {
    table: String,
    name: String,
    line: usize,
}

/// The dependencies a manifest declares, in every table whose name ends in `dependencies`
/// (`[dependencies]`, `[dev-dependencies]`, `[workspace.dependencies]`, `[target.*.dependencies]`).
fn declared_dependencies(manifest: &str) -> Vec<Dependency> {
    let mut table: Option<&str> = None;
    let mut found = Vec::new();
    for (index, line) in manifest.lines().enumerate() {
        let line = line.trim();
        if let Some(name) = line.strip_prefix('[') {
            let name = name.trim_end_matches(']');
            table = name.ends_with("dependencies").then_some(name);
            continue;
        }
        let (Some(table), Some((key, _))) = (table, line.split_once('=')) else {
            continue;
        };
        if line.starts_with('#') {
            continue;
        }
        let name = key.trim().split('.').next().unwrap_or_default();
        found.push(Dependency {
            table: table.to_owned(),
            name: name.trim_matches('"').to_owned(),
            line: index + 1,
        });
    }
    found
}

/// Whether `text` holds `word` with no identifier character (nor `-`) on either side.
fn contains_word(text: &str, word: &str) -> bool {
    let is_ident = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
    text.match_indices(word).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let after = text[at + word.len()..].chars().next();
        !before.is_some_and(is_ident) && !after.is_some_and(is_ident)
    })
}

fn dependencies_used(repo: &Repo) -> Result<Vec<Finding>, String> {
    const CHECK: &str = "dependencies-used";
    let read = |path: String| -> Result<TextFile, String> {
        let text = fs::read_to_string(repo.root.join(&path))
            .map_err(|error| format!("{path}: {error}"))?;
        Ok(TextFile { path, text })
    };
    let mut findings = Vec::new();
    let mut member_manifests = String::new();
    let members = repo
        .paths
        .iter()
        .filter_map(|path| path.strip_suffix("/Cargo.toml"));
    for member in members {
        let manifest = read(format!("{member}/Cargo.toml"))?;
        let sources: String = repo
            .rust_under(member)
            .map(|file| file.text.as_str())
            .collect();
        for dependency in declared_dependencies(&manifest.text) {
            let identifier = dependency.name.replace('-', "_");
            if !contains_word(&sources, &identifier) && !manifest.allows(dependency.line, CHECK) {
                findings.push(Finding {
                    check: CHECK,
                    path: manifest.path.clone(),
                    line: dependency.line,
                    message: format!(
                        "`{}` is declared but no Rust file of {member} names it",
                        dependency.name
                    ),
                });
            }
        }
        member_manifests.push_str(&manifest.text);
    }
    let root = read("Cargo.toml".to_owned())?;
    let workspace_dependencies = declared_dependencies(&root.text)
        .into_iter()
        .filter(|dependency| dependency.table == "workspace.dependencies");
    for dependency in workspace_dependencies {
        if !contains_word(&member_manifests, &dependency.name) {
            findings.push(Finding {
                check: CHECK,
                path: root.path.clone(),
                line: dependency.line,
                message: format!(
                    "workspace dependency `{}` has no member using it",
                    dependency.name
                ),
            });
        }
    }
    Ok(findings)
}

/// The error codes (`TM-<AREA>-<NNNN>`) in `text`, in order.
fn error_codes(text: &str) -> impl Iterator<Item = &str> {
    text.match_indices("TM-").filter_map(|(at, _)| {
        let rest = &text[at..];
        let area_end = 3 + rest[3..].find(|c: char| !c.is_ascii_uppercase())?;
        let digits = rest[area_end..].strip_prefix('-')?;
        let digits_len = digits
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(digits.len());
        (area_end > 3 && digits_len == 4).then(|| &rest[..area_end + 5])
    })
}

fn error_code_tables(repo: &Repo) -> Vec<Finding> {
    const CHECK: &str = "error-code-tables";
    let mut findings = Vec::new();
    for crate_dir in repo.crate_dirs() {
        let sources = format!("{crate_dir}/src");
        let mut returned = BTreeSet::new();
        let mut tabled = BTreeSet::new();
        let mut lib = None;
        for file in repo.rust_under(&sources) {
            if file.path.ends_with("/src/lib.rs") {
                lib = Some(file);
            }
            let tests_from = file.test_code_from();
            for (_, line) in file.lines().take_while(|(number, _)| *number < tests_from) {
                let doc = line.trim_start();
                if let Some(row) = doc.strip_prefix("//! | `") {
                    tabled.extend(error_codes(row).take(1));
                } else if !doc.starts_with("//") {
                    // A code the crate returns is a string literal of its own.
                    returned.extend(
                        error_codes(line).filter(|code| line.contains(&format!("\"{code}\""))),
                    );
                }
            }
        }
        let Some(lib) = lib else { continue };
        for code in returned.difference(&tabled) {
            findings.push(Finding {
                check: CHECK,
                path: lib.path.clone(),
                line: 1,
                message: format!(
                    "`{code}` is returned but missing from the crate docs' error-code table"
                ),
            });
        }
        for code in tabled.difference(&returned) {
            findings.push(Finding {
                check: CHECK,
                path: lib.path.clone(),
                line: lib
                    .lines()
                    .find(|(_, line)| line.contains(code))
                    .map_or(1, |(n, _)| n),
                message: format!("`{code}` is in the error-code table but no `code()` returns it"),
            });
        }
    }
    findings
}

/// The top-level directories a repository path in a doc starts with.
const REPOSITORY_ROOTS: [&str; 8] = [
    "crates/",
    "docs/",
    "xtask/",
    "benches/",
    "examples/",
    "proto/",
    ".ci/",
    ".cargo/",
];

/// Repository paths `text` names: backticked or linked, starting at a top-level directory.
fn mentioned_paths(text: &str) -> impl Iterator<Item = &str> {
    text.split(['`', '(', ')', ' ', '"', '\'', '[', ']', ','])
        .map(|token| token.trim_end_matches(['.', ':', ';']))
        .filter(|token| REPOSITORY_ROOTS.iter().any(|root| token.starts_with(root)))
        .filter(|token| !token.contains(['*', '<', '{', '…', '$']) && !token.contains("..."))
}

/// Documents cited by a section sign (an upper-case name, a space, `§` and a number): the
/// name must be a Markdown file of the repository.
fn cited_documents(text: &str) -> impl Iterator<Item = &str> {
    text.match_indices(" §").filter_map(|(at, _)| {
        let before = &text[..at];
        let start = before
            .rfind(|c: char| !(c.is_ascii_uppercase() || c == '-' || c == '_' || c == '.'))
            .map_or(0, |i| i + 1);
        let name = &before[start..];
        (name.len() >= 3 && name.chars().any(|c| c.is_ascii_uppercase())).then_some(name)
    })
}

fn doc_paths_exist(repo: &Repo) -> Vec<Finding> {
    const CHECK: &str = "doc-paths-exist";
    let markdown_names: BTreeSet<String> = repo
        .paths
        .iter()
        .filter_map(|path| path.rsplit('/').next())
        .filter_map(|name| name.strip_suffix(".md"))
        .map(str::to_owned)
        .collect();
    let docs = repo.markdown.iter().map(|file| (file, false));
    let rust_docs = repo.rust.iter().map(|file| (file, true));
    let mut findings = Vec::new();
    for (file, only_doc_comments) in docs.chain(rust_docs) {
        for (number, line) in file.lines() {
            let trimmed = line.trim_start();
            if only_doc_comments && !(trimmed.starts_with("//!") || trimmed.starts_with("///")) {
                continue;
            }
            if file.allows(number, CHECK) {
                continue;
            }
            for path in mentioned_paths(line) {
                let path = path.split('#').next().unwrap_or(path).trim_end_matches('/');
                if !repo.resolves(&file.path, path) {
                    findings.push(Finding {
                        check: CHECK,
                        path: file.path.clone(),
                        line: number,
                        message: format!("`{path}` does not exist in the repository"),
                    });
                }
            }
            for document in cited_documents(line) {
                let name = document.trim_end_matches(".md");
                if !markdown_names.contains(name) {
                    findings.push(Finding {
                        check: CHECK,
                        path: file.path.clone(),
                        line: number,
                        message: format!(
                            "cites {document}, which is not in the repository: bring what it says here"
                        ),
                    });
                }
            }
        }
    }
    findings
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_are_found_whole_and_only_whole() {
        let text = r#"E::A => "TM-WAL-4001", E::B => "TM-SNAP-52031", TM-X-1 TM-MEMS-5001)"#;
        assert_eq!(
            error_codes(text).collect::<Vec<_>>(),
            ["TM-WAL-4001", "TM-MEMS-5001"]
        );
    }

    #[test]
    fn dependencies_are_read_from_every_dependency_table() {
        let manifest = "[package]\nname = \"x\"\n[dependencies]\nfoo.workspace = true\n\
                        # a comment\nbar-baz = { workspace = true }\n[dev-dependencies]\nqux = \"1\"\n\
                        [features]\nnot-a-dep = []\n";
        let names: Vec<_> = declared_dependencies(manifest)
            .into_iter()
            .map(|dependency| (dependency.table, dependency.name, dependency.line))
            .collect();
        assert_eq!(
            names,
            [
                ("dependencies".to_owned(), "foo".to_owned(), 4),
                ("dependencies".to_owned(), "bar-baz".to_owned(), 6),
                ("dev-dependencies".to_owned(), "qux".to_owned(), 8),
            ]
        );
    }

    #[test]
    fn words_do_not_match_inside_longer_identifiers() {
        assert!(contains_word("use tokm_wal::Wal;", "tokm_wal"));
        assert!(!contains_word("use tokm_wal_ext::Wal;", "tokm_wal"));
        assert!(!contains_word("metrics-exporter = 1", "metrics"));
    }

    #[test]
    fn paths_and_citations_are_picked_out_of_prose() {
        let line = "see `crates/tokm-wal/FORMAT.md` and [it](docs/ARCHITECTURE.md#x), \
                    not `crates/*/FORMAT.md` (DESIGN-NOTES §1)";
        assert_eq!(
            mentioned_paths(line).collect::<Vec<_>>(),
            ["crates/tokm-wal/FORMAT.md", "docs/ARCHITECTURE.md#x"]
        );
        assert_eq!(cited_documents(line).collect::<Vec<_>>(), ["DESIGN-NOTES"]);
    }

    #[test]
    fn an_allow_comment_covers_its_line_and_the_next() {
        let file = TextFile {
            path: "crates/x/tests/t.rs".to_owned(),
            text:
                "a\n// tidy: allow(no-sleep-in-tests) polls another process\nsleep(x);\nsleep(y);\n"
                    .to_owned(),
        };
        assert!(file.allows(3, "no-sleep-in-tests"));
        assert!(!file.allows(4, "no-sleep-in-tests"));
        assert_eq!(file.test_code_from(), 1);
    }
}
