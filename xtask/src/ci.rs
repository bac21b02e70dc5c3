//! `cargo xtask ci`: every check a change must pass, in the order that fails fastest.
//!
//! Each step prints its name and duration; the last line sums up the tests cargo ran, in the form
//! `ci: N passed, M failed`. Any failing step fails the run (later steps still run, so one CI run
//! reports every problem).

use std::time::{Duration, Instant};

use crate::shell::{cargo, run_checked, run_tee_stdout};

/// Tests in debug builds run property and crash suites; keep backtraces short but present.
const TEST_ENV: &[(&str, &str)] = &[("RUST_BACKTRACE", "1"), ("PROPTEST_CASES", "64")];

pub(crate) fn run(args: &[String]) -> Result<(), String> {
    if !args.is_empty() {
        return Err("usage: cargo xtask ci".to_owned());
    }
    let started = Instant::now();
    let mut report = Report::default();

    report.step("fmt", || {
        run_checked(&mut cargo(&["fmt", "--all", "--check"]))
    });
    report.step("tidy", crate::tidy::check);
    report.step("architecture doc holds every FORMAT.md", formats_documented);
    report.step("codegen --check", || {
        crate::codegen::run(&["--check".to_owned()])
    });
    report.step("clippy", || {
        run_checked(&mut cargo(&[
            "clippy",
            "--workspace",
            "--all-targets",
            "--locked",
            "--",
            "-D",
            "warnings",
        ]))
    });
    report.step("test (unit, integration, crash)", || {
        // tokm-redis's tests need a Redis Cluster: the next step starts one and runs them.
        let mut command = cargo(&[
            "test",
            "--workspace",
            "--exclude",
            "tokm-redis",
            "--locked",
            "--lib",
            "--bins",
            "--tests",
            "--examples",
        ]);
        command.envs(TEST_ENV.iter().copied());
        report_tests(run_tee_stdout(&mut command))
    });
    report.step("cluster test (tokm-redis on a 3+3 Redis Cluster)", || {
        report_tests(crate::cluster::test())
    });
    report.step("test (doc)", || {
        let mut command = cargo(&["test", "--workspace", "--locked", "--doc"]);
        report_tests(run_tee_stdout(&mut command))
    });
    report.step("doc", || {
        let mut command = cargo(&["doc", "--workspace", "--no-deps", "--locked"]);
        command.env("RUSTDOCFLAGS", "-D warnings");
        run_checked(&mut command)
    });
    // The criterion benches (all in `tokm-benches`) are type-checked by clippy's
    // `--all-targets` above; building them in release as well cost CI about 100 s for no
    // check clippy does not make. The acceptance program is built and run next.
    report.step("bench --quick (acceptance smoke run)", || {
        crate::bench::run(&["--quick".to_owned()])
    });

    report.finish(started.elapsed())
}

/// Format tables live beside the code that writes them (`crates/*/FORMAT.md`) and are copied
/// into `docs/ARCHITECTURE.md`; this fails when a copy has drifted.
fn formats_documented() -> Result<(), String> {
    let root = crate::shell::workspace_root();
    let architecture_path = root.join("docs/ARCHITECTURE.md");
    let architecture = std::fs::read_to_string(&architecture_path)
        .map_err(|error| format!("reading {}: {error}", architecture_path.display()))?;
    let mut stale = Vec::new();
    for crate_name in ["tokm-wal", "tokm-snapshot"] {
        let path = root.join("crates").join(crate_name).join("FORMAT.md");
        let format = std::fs::read_to_string(&path)
            .map_err(|error| format!("reading {}: {error}", path.display()))?;
        if !architecture.contains(format.trim()) {
            stale.push(path.display().to_string());
        }
    }
    if stale.is_empty() {
        return Ok(());
    }
    Err(format!(
        "docs/ARCHITECTURE.md does not hold the current text of {}: copy it into the \
         \"On-disk formats\" section",
        stale.join(", ")
    ))
}

/// Passes the test output through, counting the `test result:` lines.
fn report_tests(output: Result<String, String>) -> Result<TestCounts, String> {
    output.map(|text| TestCounts::parse(&text))
}

/// Totals of cargo's `test result: ok. 3 passed; 0 failed; 1 ignored; ...` lines.
#[derive(Debug, Default, Clone, Copy)]
struct TestCounts {
    passed: u64,
    failed: u64,
    ignored: u64,
}

impl TestCounts {
    fn parse(output: &str) -> TestCounts {
        let mut counts = TestCounts::default();
        for line in output.lines() {
            let Some(rest) = line.trim().strip_prefix("test result: ") else {
                continue;
            };
            for part in rest.split(';') {
                let mut words = part.split_whitespace().rev();
                let (Some(label), Some(number)) = (words.next(), words.next()) else {
                    continue;
                };
                let Ok(number) = number.parse::<u64>() else {
                    continue;
                };
                match label {
                    "passed" => counts.passed += number,
                    "failed" => counts.failed += number,
                    "ignored" => counts.ignored += number,
                    _ => {}
                }
            }
        }
        counts
    }
}

/// What a step returns: nothing, or test counts to add to the summary.
trait StepOutcome {
    fn tests(&self) -> Option<TestCounts>;
}

impl StepOutcome for () {
    fn tests(&self) -> Option<TestCounts> {
        None
    }
}

impl StepOutcome for TestCounts {
    fn tests(&self) -> Option<TestCounts> {
        Some(*self)
    }
}

#[derive(Debug, Default)]
struct Report {
    steps: Vec<(&'static str, Duration, Result<(), String>)>,
    tests: TestCounts,
}

impl Report {
    fn step<T: StepOutcome>(
        &mut self,
        name: &'static str,
        body: impl FnOnce() -> Result<T, String>,
    ) {
        println!("\n==> ci: {name}");
        let started = Instant::now();
        let outcome = body();
        let elapsed = started.elapsed();
        let result = match outcome {
            Ok(value) => {
                if let Some(counts) = value.tests() {
                    self.tests.passed += counts.passed;
                    self.tests.failed += counts.failed;
                    self.tests.ignored += counts.ignored;
                }
                Ok(())
            }
            Err(message) => Err(message),
        };
        match &result {
            Ok(()) => println!("<== ci: {name}: ok in {:.1} s", elapsed.as_secs_f64()),
            Err(message) => println!(
                "<== ci: {name}: FAILED in {:.1} s: {message}",
                elapsed.as_secs_f64()
            ),
        }
        self.steps.push((name, elapsed, result));
    }

    fn finish(self, total: Duration) -> Result<(), String> {
        println!("\nci steps:");
        for (name, elapsed, result) in &self.steps {
            let verdict = if result.is_ok() { "ok" } else { "FAILED" };
            println!("  {verdict:<6} {:>7.1} s  {name}", elapsed.as_secs_f64());
        }
        let failed_steps = self
            .steps
            .iter()
            .filter(|(_, _, result)| result.is_err())
            .count();
        println!(
            "  total  {:>7.1} s  ({} steps, {failed_steps} failed; {} tests ignored)",
            total.as_secs_f64(),
            self.steps.len(),
            self.tests.ignored
        );
        // The closing line CI reads: the test totals across every cargo test run above.
        println!(
            "ci: {} passed, {} failed",
            self.tests.passed, self.tests.failed
        );
        if failed_steps == 0 {
            Ok(())
        } else {
            Err(format!("{failed_steps} ci step(s) failed"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::TestCounts;

    #[test]
    fn test_counts_sum_every_result_line() {
        let output = "\
running 2 tests
test result: ok. 2 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out; finished in 0.01s
test result: FAILED. 5 passed; 3 failed; 0 ignored; 0 measured; 0 filtered out; finished in 1s
not a result line: 9 passed
";
        let counts = TestCounts::parse(output);
        assert_eq!((counts.passed, counts.failed, counts.ignored), (7, 3, 1));
    }
}
