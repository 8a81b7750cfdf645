//! The round planner: a pure function from a job's shape to its task graph. No I/O here, so every
//! shape is tested exhaustively below.
//!
//! ```text
//! witness ─► basic × chunks ─► aggregate level 1 … level `levels` (one node) ─► final ─► compress
//! ```
//! Store keys are `jobs/{job}/{round}/{level}-{index}`; the witness task writes one input per
//! basic task (`jobs/{job}/witness/0-{i}`). `final` also reads the previous batch's final proof
//! when the job continues one.

use std::collections::BTreeMap;

use crate::protocol::{Round, Task};

/// What the planner needs to know about a job.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct JobShape {
    pub job: String,
    pub batch: u64,
    pub tx_count: u64,
    pub chunk_size: u64,
    pub arity: usize,
    /// Aggregation levels above the chunks; the top level has exactly one node.
    pub levels: usize,
    /// Store key of the batch witness the leader stored.
    pub input_key: String,
    /// Store key of the previous batch's final proof, when this job continues one.
    pub previous_final_key: Option<String>,
    pub params: Vec<u8>,
    pub meta: BTreeMap<String, String>,
}

/// One task and the tasks it waits for (indices into [`Plan::tasks`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlannedTask {
    pub task: Task,
    pub deps: Vec<usize>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// Tasks in an order where every task comes after its dependencies.
    pub tasks: Vec<PlannedTask>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error("{chunks} chunks do not fit under {levels} aggregation levels of arity {arity} (at most {max})")]
    TooManyChunks { chunks: u64, levels: usize, arity: usize, max: u64 },
    #[error("chunk size and arity must be positive and arity at least 2")]
    BadShape,
}

pub fn key(job: &str, round: Round, level: u32, index: u32) -> String {
    crate::keys::artifact(job, round, level, index)
}

/// The number of basic tasks: one per started chunk, and one for an empty batch.
pub fn chunk_count(tx_count: u64, chunk_size: u64) -> u64 {
    tx_count.div_ceil(chunk_size).max(1)
}

impl Plan {
    /// The key of the compressed proof, the job's result.
    pub fn output_key(&self) -> &str {
        &self.tasks.last().expect("a plan is never empty").task.outputs[0]
    }

    /// The key of the final proof, what a next batch chains onto.
    pub fn final_key(&self) -> &str {
        let fin = self.tasks.iter().find(|t| t.task.round == Round::Final).expect("a plan has a final task");
        &fin.task.outputs[0]
    }
}

pub fn plan(shape: &JobShape) -> Result<Plan, PlanError> {
    if shape.chunk_size == 0 || shape.arity < 2 {
        return Err(PlanError::BadShape);
    }
    let chunks = chunk_count(shape.tx_count, shape.chunk_size);
    let max = (shape.arity as u64).saturating_pow(shape.levels as u32);
    if chunks > max {
        return Err(PlanError::TooManyChunks { chunks, levels: shape.levels, arity: shape.arity, max });
    }

    let mut tasks: Vec<PlannedTask> = Vec::new();
    let new_task =
        |round: Round, level: u32, index: u32, tx_range: (u64, u64), inputs: Vec<String>, outputs: Vec<String>| Task {
            job: shape.job.clone(),
            batch: shape.batch,
            round,
            level,
            index,
            tx_range,
            inputs,
            input_digests: Vec::new(),
            outputs,
            params: shape.params.clone(),
            meta: shape.meta.clone(),
            attempt: 1,
            trace: Default::default(),
        };

    let whole = (0, shape.tx_count);
    let witness_outputs = (0..chunks as u32).map(|i| key(&shape.job, Round::Witness, 0, i)).collect();
    tasks.push(PlannedTask {
        task: new_task(Round::Witness, 0, 0, whole, vec![shape.input_key.clone()], witness_outputs),
        deps: vec![],
    });

    // Each level as (task index, tx range) per node.
    let mut level_nodes: Vec<(usize, (u64, u64))> = Vec::new();
    for i in 0..chunks as u32 {
        let start = i as u64 * shape.chunk_size;
        let range = (start, (start + shape.chunk_size).min(shape.tx_count).max(start));
        tasks.push(PlannedTask {
            task: new_task(
                Round::Basic,
                0,
                i,
                range,
                vec![key(&shape.job, Round::Witness, 0, i)],
                vec![key(&shape.job, Round::Basic, 0, i)],
            ),
            deps: vec![0],
        });
        level_nodes.push((tasks.len() - 1, range));
    }

    for level in 1..=shape.levels as u32 {
        let mut next = Vec::new();
        for (i, group) in level_nodes.chunks(shape.arity).enumerate() {
            let inputs = group.iter().map(|(t, _)| tasks[*t].task.outputs[0].clone()).collect();
            let range = (group[0].1 .0, group[group.len() - 1].1 .1);
            tasks.push(PlannedTask {
                task: new_task(
                    Round::Aggregate,
                    level,
                    i as u32,
                    range,
                    inputs,
                    vec![key(&shape.job, Round::Aggregate, level, i as u32)],
                ),
                deps: group.iter().map(|(t, _)| *t).collect(),
            });
            next.push((tasks.len() - 1, range));
        }
        level_nodes = next;
    }
    debug_assert_eq!(level_nodes.len(), 1);

    let top = level_nodes[0].0;
    let mut final_inputs = vec![tasks[top].task.outputs[0].clone()];
    final_inputs.extend(shape.previous_final_key.clone());
    tasks.push(PlannedTask {
        task: new_task(Round::Final, 0, 0, whole, final_inputs, vec![key(&shape.job, Round::Final, 0, 0)]),
        deps: vec![top],
    });
    let fin = tasks.len() - 1;
    tasks.push(PlannedTask {
        task: new_task(
            Round::Compress,
            0,
            0,
            whole,
            vec![key(&shape.job, Round::Final, 0, 0)],
            vec![key(&shape.job, Round::Compress, 0, 0)],
        ),
        deps: vec![fin],
    });
    Ok(Plan { tasks })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(tx_count: u64, chunk_size: u64, arity: usize, levels: usize) -> JobShape {
        JobShape {
            job: "j".into(),
            batch: 7,
            tx_count,
            chunk_size,
            arity,
            levels,
            input_key: "jobs/j/input".into(),
            previous_final_key: None,
            params: vec![],
            meta: BTreeMap::new(),
        }
    }

    fn count(p: &Plan, round: Round, level: u32) -> usize {
        p.tasks.iter().filter(|t| t.task.round == round && t.task.level == level).count()
    }

    #[test]
    fn default_shape_for_1024_transactions() {
        let p = plan(&shape(1024, 32, 4, 3)).unwrap();
        assert_eq!(count(&p, Round::Witness, 0), 1);
        assert_eq!(count(&p, Round::Basic, 0), 32);
        assert_eq!(count(&p, Round::Aggregate, 1), 8);
        assert_eq!(count(&p, Round::Aggregate, 2), 2);
        assert_eq!(count(&p, Round::Aggregate, 3), 1);
        assert_eq!(p.tasks.len(), 1 + 32 + 11 + 2);
        assert_eq!(p.output_key(), "jobs/j/compress/0-0");
        assert_eq!(p.final_key(), "jobs/j/final/0-0");
    }

    #[test]
    fn every_shape_is_a_valid_tree() {
        for arity in 2..=5usize {
            for levels in 1..=3usize {
                let max_chunks = arity.pow(levels as u32) as u64;
                for chunk_size in [1u64, 3, 32] {
                    for tx_count in 0..=(max_chunks * chunk_size) {
                        let p = plan(&shape(tx_count, chunk_size, arity, levels)).unwrap();
                        check_tree(&p, tx_count, chunk_size, arity, levels);
                    }
                    let too_many = max_chunks * chunk_size + 1;
                    assert!(matches!(
                        plan(&shape(too_many, chunk_size, arity, levels)),
                        Err(PlanError::TooManyChunks { .. })
                    ));
                }
            }
        }
    }

    fn check_tree(p: &Plan, tx_count: u64, chunk_size: u64, arity: usize, levels: usize) {
        // Dependencies come first, and inputs are exactly the dependencies' outputs.
        for (i, t) in p.tasks.iter().enumerate() {
            assert!(t.deps.iter().all(|&d| d < i));
            let dep_outputs: Vec<_> = t.deps.iter().flat_map(|&d| p.tasks[d].task.outputs.clone()).collect();
            if t.task.round != Round::Witness && t.task.round != Round::Basic {
                assert_eq!(t.task.inputs, dep_outputs, "{}", t.task.id());
            }
            assert!(t.task.inputs.iter().all(|k| !k.is_empty()));
        }
        // Keys are unique, and every task but the last is some task's dependency.
        let mut keys: Vec<_> = p.tasks.iter().flat_map(|t| t.task.outputs.clone()).collect();
        let n = keys.len();
        keys.sort();
        keys.dedup();
        assert_eq!(keys.len(), n);
        for i in 0..p.tasks.len() - 1 {
            assert!(p.tasks.iter().any(|t| t.deps.contains(&i)), "task {i} feeds nothing");
        }
        // Chunks cover the transactions exactly once, in order.
        let basics: Vec<_> = p.tasks.iter().filter(|t| t.task.round == Round::Basic).collect();
        assert_eq!(basics.len() as u64, chunk_count(tx_count, chunk_size));
        let mut next = 0;
        for b in &basics {
            assert_eq!(b.task.tx_range.0, next);
            next = b.task.tx_range.1;
        }
        assert_eq!(next, tx_count);
        // Aggregates take 1..=arity children and the top level has one node.
        for t in p.tasks.iter().filter(|t| t.task.round == Round::Aggregate) {
            assert!((1..=arity).contains(&t.deps.len()));
        }
        assert_eq!(count(p, Round::Aggregate, levels as u32), 1);
        assert_eq!(p.tasks.last().unwrap().task.round, Round::Compress);
    }

    #[test]
    fn continuing_a_batch_feeds_the_previous_final_proof() {
        let mut s = shape(10, 4, 2, 2);
        s.previous_final_key = Some("jobs/prev/final/0-0".into());
        let p = plan(&s).unwrap();
        let fin = p.tasks.iter().find(|t| t.task.round == Round::Final).unwrap();
        assert_eq!(fin.task.inputs, vec!["jobs/j/aggregate/2-0".to_string(), "jobs/prev/final/0-0".to_string()]);
    }

    #[test]
    fn bad_shapes_are_rejected() {
        assert_eq!(plan(&shape(1, 0, 2, 1)), Err(PlanError::BadShape));
        assert_eq!(plan(&shape(1, 1, 1, 1)), Err(PlanError::BadShape));
    }
}
