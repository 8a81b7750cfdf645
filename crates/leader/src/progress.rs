//! Progress on stderr: a line per event (`proving batch=7 txs_proved=128 total_txs=1024
//! elapsed=61s`) for logs and pipes, or a progress bar when stderr is a terminal.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::time::Instant;

use common::{Round, Task};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

struct JobProgress {
    batch: u64,
    total_txs: u64,
    txs_proved: u64,
    finished: bool,
}

pub struct Progress {
    started: Instant,
    jobs: BTreeMap<String, JobProgress>,
    bar: Option<ProgressBar>,
    /// Lines on stderr (when there is no bar).
    lines: bool,
}

impl Progress {
    /// `jobs`: (job id, batch number, transaction count) of every job to follow.
    pub fn new(jobs: &[(String, u64, u64)]) -> Self {
        Self::build(jobs, true)
    }

    /// Follows the jobs without printing anything.
    pub fn silent(jobs: &[(String, u64, u64)]) -> Self {
        Self::build(jobs, false)
    }

    fn build(jobs: &[(String, u64, u64)], print: bool) -> Self {
        let total: u64 = jobs.iter().map(|j| j.2).sum();
        let bar = (print && std::io::stderr().is_terminal()).then(|| {
            let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template("{spinner} {msg} [{bar:40}] {pos}/{len} txs {elapsed}")
                    .expect("static template")
                    .progress_chars("=> "),
            );
            bar.set_message("proving");
            bar
        });
        let jobs = jobs
            .iter()
            .map(|(id, batch, txs)| {
                (id.clone(), JobProgress { batch: *batch, total_txs: *txs, txs_proved: 0, finished: false })
            })
            .collect();
        Self { started: Instant::now(), jobs, bar, lines: print }
    }

    fn line(&self, job: &JobProgress) -> String {
        format!(
            "proving batch={} txs_proved={} total_txs={} elapsed={}s",
            job.batch,
            job.txs_proved,
            job.total_txs,
            self.started.elapsed().as_secs()
        )
    }

    pub fn task_done(&mut self, task: &Task) {
        let elapsed = self.started.elapsed().as_secs();
        let Some(job) = self.jobs.get_mut(&task.job) else { return };
        match task.round {
            Round::Basic => {
                let n = task.tx_range.1 - task.tx_range.0;
                job.txs_proved += n;
                if let Some(bar) = &self.bar {
                    bar.inc(n);
                } else if self.lines {
                    let job = &self.jobs[&task.job];
                    eprintln!("{}", self.line(job));
                }
            }
            Round::Compress => {
                job.finished = true;
                let msg = format!("proved batch={} txs={} elapsed={elapsed}s", job.batch, job.total_txs);
                match &self.bar {
                    Some(bar) => bar.println(msg),
                    None if self.lines => eprintln!("{msg}"),
                    None => {}
                }
            }
            _ => {
                if let Some(bar) = &self.bar {
                    bar.set_message(format!("batch {}: {}", task.batch, task.round));
                }
            }
        }
    }

    /// A task counted done runs again (its output was found corrupted): its transactions are no
    /// longer counted proved.
    pub fn task_undone(&mut self, task: &Task) {
        let Some(job) = self.jobs.get_mut(&task.job) else { return };
        if task.round == Round::Basic {
            let n = task.tx_range.1 - task.tx_range.0;
            job.txs_proved = job.txs_proved.saturating_sub(n);
            if let Some(bar) = &self.bar {
                bar.set_position(bar.position().saturating_sub(n));
            }
        }
    }

    /// A periodic line while rounds without transaction counts (aggregation) run.
    pub fn heartbeat(&self) {
        if self.bar.is_some() || !self.lines {
            return;
        }
        for job in self.jobs.values().filter(|j| !j.finished) {
            eprintln!("{}", self.line(job));
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
