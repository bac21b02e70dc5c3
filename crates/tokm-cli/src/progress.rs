//! Progress of a long command on stderr: a bar when stderr is a terminal, plain lines otherwise.
//!
//! indicatif hides a bar whose target is not a terminal, and a hidden bar draws nothing; then
//! each step prints one `<command>: <text>` line instead, so logs, pipes and the tests see what
//! they always saw. Progress never touches stdout, so `--json` stays one JSON document.

use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How often a spinner (a step with no known total) redraws; the bar ticks from a thread.
const SPINNER_TICK_INTERVAL: Duration = Duration::from_millis(100);

const SPINNER_TEMPLATE: &str = "{prefix}: {spinner} {msg} [{elapsed}]";
const BYTES_TEMPLATE: &str =
    "{prefix}: {msg}\n  [{elapsed}] {wide_bar} {binary_bytes}/{binary_total_bytes} (eta {eta})";

/// What a bar counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Unit {
    /// Bytes of files read.
    Bytes,
}

impl Unit {
    fn template(self) -> &'static str {
        match self {
            Unit::Bytes => BYTES_TEMPLATE,
        }
    }
}

/// One step of a command, shown on stderr as a spinner or a bar, or as plain lines.
#[derive(Debug)]
pub(crate) struct Step {
    command: &'static str,
    bar: ProgressBar,
}

impl Step {
    /// A step whose total is unknown (e.g. a scan that reports only when done): a spinner.
    pub(crate) fn spinner(command: &'static str) -> Step {
        Step::spinner_to(command, ProgressDrawTarget::stderr())
    }

    /// A step of `total` units: a bar.
    pub(crate) fn bar(command: &'static str, total: u64, unit: Unit) -> Step {
        Step::bar_to(command, total, unit, ProgressDrawTarget::stderr())
    }

    fn spinner_to(command: &'static str, target: ProgressDrawTarget) -> Step {
        let step = Step::styled(command, None, SPINNER_TEMPLATE, target);
        if !step.bar.is_hidden() {
            step.bar.enable_steady_tick(SPINNER_TICK_INTERVAL);
        }
        step
    }

    fn bar_to(command: &'static str, total: u64, unit: Unit, target: ProgressDrawTarget) -> Step {
        Step::styled(command, Some(total), unit.template(), target)
    }

    fn styled(
        command: &'static str,
        total: Option<u64>,
        template: &str,
        target: ProgressDrawTarget,
    ) -> Step {
        // The templates are constants checked by a unit test; the fallback keeps a bar usable
        // rather than failing the command over how progress looks.
        let style = ProgressStyle::with_template(template).unwrap_or_else(|_| match total {
            Some(_) => ProgressStyle::default_bar(),
            None => ProgressStyle::default_spinner(),
        });
        let bar = ProgressBar::with_draw_target(total, target)
            .with_style(style)
            .with_prefix(command);
        Step { command, bar }
    }

    /// What the step is doing now: the bar's message, or a `<command>: <text>` line on stderr
    /// when no bar is drawn.
    pub(crate) fn show(&self, text: String) {
        if self.bar.is_hidden() {
            eprintln!("{}: {text}", self.command);
        } else {
            self.bar.set_message(text);
        }
    }

    /// Moves the bar `delta` units forward.
    pub(crate) fn advance(&self, delta: u64) {
        self.bar.inc(delta);
    }
}

impl Drop for Step {
    /// Clears the bar, also when the step ends early with an error: a bar left on the terminal
    /// would only repeat the summary, or sit above the error line.
    fn drop(&mut self) {
        self.bar.finish_and_clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_parses() {
        for template in [SPINNER_TEMPLATE, BYTES_TEMPLATE] {
            assert!(ProgressStyle::with_template(template).is_ok(), "{template}");
        }
    }

    #[test]
    fn a_bar_without_a_terminal_draws_nothing_but_still_counts() {
        let step = Step::bar_to("test", 10, Unit::Bytes, ProgressDrawTarget::hidden());
        assert!(step.bar.is_hidden());
        step.advance(4);
        step.advance(3);
        assert_eq!(step.bar.position(), 7);
        assert_eq!(step.bar.length(), Some(10));
    }

    #[test]
    fn a_spinner_has_no_total() {
        let step = Step::spinner_to("test", ProgressDrawTarget::hidden());
        assert!(step.bar.is_hidden());
        assert_eq!(step.bar.length(), None);
    }
}
