//! The CUDA commitment engine (feature `cuda`): the [`Plan`]'s steps as kernel launches on one
//! device, through the CUDA driver API (`cust`).
//!
//! The kernels are `crates/prover/cuda/commit.cu`, compiled to PTX by `scripts/build-kernels` and
//! checked in (`commit.ptx`); the driver compiles the PTX for the device it runs on when the
//! engine starts. One commitment runs at a time on a device (a lock around the device's
//! context, module and stream): the commitment of a basic trace fills the device's bandwidth on
//! its own, and the lock bounds device memory to one commitment's ([`Plan::device_bytes`]),
//! which is checked against `--gpu-memory-mib` before anything is allocated.
//!
//! An error from the device after start (a failed launch, an illegal address, a lost device)
//! leaves its context unusable: the engine reports it as [`Unavailable`] and
//! [`CommitmentEngine::lost`] from then on, and the worker exits so that Kubernetes restarts it and the broker hands its task to
//! another worker.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use cust::context::{Context, CurrentContext};
use cust::device::{Device, DeviceAttribute};
use cust::error::CudaError;
use cust::function::{BlockSize, GridSize};
use cust::launch;
use cust::memory::{CopyDestination, DeviceBuffer, DevicePointer};
use cust::module::Module;
use cust::stream::{Stream, StreamFlags};
use plonky2::field::polynomial::PolynomialValues;
use plonky2::fri::oracle::PolynomialBatch;
use plonky2::util::timing::TimingTree;

use super::{Buffer, Plan, Step};
use crate::stark::{CommitmentEngine, Unavailable};
use crate::{C, D, F};

/// The kernels, as `scripts/build-kernels` compiles them.
pub const PTX: &str = include_str!("../../../cuda/commit.ptx");

/// Threads per block of every launch.
const BLOCK: u32 = 256;

/// No usable device at start: no driver, no device, or the kernels do not load.
#[derive(Debug, Clone, thiserror::Error)]
#[error("no CUDA device: {0}")]
pub struct NoDevice(pub String);

/// The device an engine runs on, for `/readyz`, logs and metrics.
#[derive(Clone, Debug)]
pub struct DeviceInfo {
    pub ordinal: u32,
    pub name: String,
    pub total_memory: u64,
    pub compute_capability: (i32, i32),
}

impl std::fmt::Display for DeviceInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} (device {}, sm_{}{}, {} MiB)",
            self.name,
            self.ordinal,
            self.compute_capability.0,
            self.compute_capability.1,
            self.total_memory >> 20
        )
    }
}

/// What one commitment spent, per stage: `upload`, `lde`, `merkle`, `transpose`, `download`.
pub type StageTimes = Vec<(&'static str, Duration)>;

struct DeviceState {
    // Field order is drop order: the stream and module go before the context they live in.
    stream: Stream,
    module: Module,
    context: Context,
    /// Set by the first device error; the context is not used again.
    lost: Option<String>,
}

// SAFETY: the state is only used under the engine's mutex, and every use first makes its
// context current on the calling thread; CUDA driver handles are valid from any thread.
unsafe impl Send for DeviceState {}

pub struct CudaEngine {
    state: Mutex<DeviceState>,
    info: DeviceInfo,
    memory_limit: u64,
}

fn no_device(what: &str) -> impl Fn(CudaError) -> NoDevice + '_ {
    move |e| NoDevice(format!("{what}: {e}"))
}

impl CudaEngine {
    /// Starts the engine on device `ordinal`, its commitments bounded to `memory_limit` bytes
    /// of device memory (the device's total when `None`).
    pub fn new(ordinal: u32, memory_limit: Option<u64>) -> Result<Self, NoDevice> {
        cust::init(cust::CudaFlags::empty()).map_err(no_device("initialising the CUDA driver"))?;
        let count = Device::num_devices().map_err(no_device("counting devices"))?;
        if ordinal >= count {
            return Err(NoDevice(format!("device {ordinal} asked for, {count} present")));
        }
        let device = Device::get_device(ordinal).map_err(no_device("opening the device"))?;
        let info = DeviceInfo {
            ordinal,
            name: device.name().map_err(no_device("reading the device name"))?,
            total_memory: device.total_memory().map_err(no_device("reading the device memory"))? as u64,
            compute_capability: (
                device
                    .get_attribute(DeviceAttribute::ComputeCapabilityMajor)
                    .map_err(no_device("compute capability"))?,
                device
                    .get_attribute(DeviceAttribute::ComputeCapabilityMinor)
                    .map_err(no_device("compute capability"))?,
            ),
        };
        let context = Context::new(device).map_err(no_device("creating a context"))?;
        let module = Module::from_ptx(PTX, &[]).map_err(no_device("loading the kernels (commit.ptx)"))?;
        let stream = Stream::new(StreamFlags::NON_BLOCKING, None).map_err(no_device("creating a stream"))?;
        let memory_limit = memory_limit.unwrap_or(info.total_memory).min(info.total_memory);
        Ok(Self { state: Mutex::new(DeviceState { stream, module, context, lost: None }), info, memory_limit })
    }

    pub fn info(&self) -> &DeviceInfo {
        &self.info
    }

    /// [`CommitmentEngine::commit`], with the time each stage took.
    pub fn commit_timed(
        &self,
        columns: &[PolynomialValues<F>],
        rate_bits: usize,
        cap_height: usize,
    ) -> anyhow::Result<(PolynomialBatch<F, C, D>, StageTimes)> {
        let plan = Plan::new(columns, rate_bits, cap_height)?;
        let bytes = plan.device_bytes();
        anyhow::ensure!(
            bytes <= self.memory_limit,
            "the commitment of {} columns of 2^{} rows needs {} MiB of device memory, more than the {} MiB allowed",
            plan.ncols,
            plan.log_n,
            bytes >> 20,
            self.memory_limit >> 20
        );
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(why) = &state.lost {
            return Err(Unavailable(format!("CUDA device lost earlier: {why}")).into());
        }
        match run(&state, &plan, columns, rate_bits) {
            Ok(out) => Ok(out),
            // Out of memory (another process on the device): this commitment fails, the device
            // stays usable.
            Err(CudaError::OutOfMemory) => {
                Err(Unavailable(format!("{} is out of memory for a commitment of {} MiB", self.info, bytes >> 20))
                    .into())
            }
            Err(e) => {
                let why = format!("{e} on {}", self.info);
                state.lost = Some(why.clone());
                Err(Unavailable(format!("CUDA device lost: {why}")).into())
            }
        }
    }
}

impl CommitmentEngine for CudaEngine {
    fn name(&self) -> &'static str {
        "cuda"
    }

    fn commit(
        &self,
        columns: &[PolynomialValues<F>],
        rate_bits: usize,
        cap_height: usize,
        _timing: &mut TimingTree,
    ) -> anyhow::Result<PolynomialBatch<F, C, D>> {
        let (batch, stages) = self.commit_timed(columns, rate_bits, cap_height)?;
        for (stage, took) in stages {
            metrics::histogram!("zkfleet_gpu_stage_seconds", "stage" => stage).record(took.as_secs_f64());
        }
        Ok(batch)
    }

    fn lost(&self) -> Option<String> {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).lost.clone()
    }
}

/// Device memory in use and in all on the current context's device: `zkfleet_gpu_memory_used_bytes`
/// (at a commitment's peak, all processes on the device together) and `zkfleet_gpu_memory_total_bytes`.
fn record_memory_in_use() {
    if let Ok((free, total)) = cust::memory::mem_get_info() {
        metrics::gauge!("zkfleet_gpu_memory_used_bytes").set(total.saturating_sub(free) as f64);
        metrics::gauge!("zkfleet_gpu_memory_total_bytes").set(total as f64);
    }
}

/// One commitment on the device: upload, the plan's steps, download.
fn run(
    state: &DeviceState,
    plan: &Plan,
    columns: &[PolynomialValues<F>],
    rate_bits: usize,
) -> Result<(PolynomialBatch<F, C, D>, StageTimes), CudaError> {
    CurrentContext::set_current(&state.context)?;
    let stream = &state.stream;
    let mut stages: StageTimes = Vec::new();
    let mut clock = Instant::now();
    let mut lap = |stage: &'static str, stages: &mut StageTimes| {
        stages.push((stage, clock.elapsed()));
        clock = Instant::now();
    };

    let tables = plan.tables();
    let values = DeviceBuffer::from_slice(&plan.values(columns))?;
    let inverse_twiddles = DeviceBuffer::from_slice(&tables.inverse_twiddles)?;
    let twiddles = DeviceBuffer::from_slice(&tables.twiddles)?;
    let shift_powers = DeviceBuffer::from_slice(&tables.shift_powers)?;
    let coeffs = DeviceBuffer::<u64>::zeroed(plan.len(Buffer::Coeffs))?;
    let lde = DeviceBuffer::<u64>::zeroed(plan.len(Buffer::Lde))?;
    let rows = DeviceBuffer::<u64>::zeroed(plan.len(Buffer::Rows))?;
    // A cap as wide as the leaves leaves no digests: keep one word so the buffer exists.
    let digests = DeviceBuffer::<u64>::zeroed(plan.len(Buffer::Digests).max(1))?;
    let cap = DeviceBuffer::<u64>::zeroed(plan.len(Buffer::Cap))?;
    record_memory_in_use();
    lap("upload", &mut stages);

    let module = &state.module;
    let ptr = |b: &DeviceBuffer<u64>| -> DevicePointer<u64> { b.as_device_ptr() };
    let mut stage = "lde";
    for step in plan.steps() {
        if step.stage() != stage {
            stream.synchronize()?;
            lap(stage, &mut stages);
            stage = step.stage();
        }
        let count = plan.count(&step);
        let grid = GridSize::x(count.div_ceil(BLOCK as u64) as u32);
        let block = BlockSize::x(BLOCK);
        // SAFETY: each kernel's arguments are the buffers and scalars its step in commit.cuh
        // takes, in order, and the plan sized every buffer for the indices below `count`.
        unsafe {
            match step {
                Step::BitReverse { log_n } => {
                    let f = module.get_function("zk_bit_reverse")?;
                    launch!(f<<<grid, block, 0, stream>>>(ptr(&values), ptr(&coeffs), log_n, count))?
                }
                Step::Dit { log_n, log_m } => {
                    let f = module.get_function("zk_dit")?;
                    launch!(f<<<grid, block, 0, stream>>>(ptr(&coeffs), log_n, log_m, ptr(&inverse_twiddles), count))?
                }
                Step::Scale { factor } => {
                    let f = module.get_function("zk_scale")?;
                    launch!(f<<<grid, block, 0, stream>>>(ptr(&coeffs), factor, count))?
                }
                Step::Expand { log_n, log_lde } => {
                    let f = module.get_function("zk_expand")?;
                    launch!(f<<<grid, block, 0, stream>>>(
                        ptr(&coeffs), ptr(&lde), log_n, log_lde, ptr(&shift_powers), count
                    ))?
                }
                Step::Dif { log_n, log_m } => {
                    let f = module.get_function("zk_dif")?;
                    launch!(f<<<grid, block, 0, stream>>>(ptr(&lde), log_n, log_m, ptr(&twiddles), count))?
                }
                Step::Leaf { ncols, log_lde, layers } => {
                    let f = module.get_function("zk_leaf")?;
                    launch!(f<<<grid, block, 0, stream>>>(
                        ptr(&lde), ncols, log_lde, layers, ptr(&digests), ptr(&cap), count
                    ))?
                }
                Step::Node { layers, level } => {
                    let f = module.get_function("zk_node")?;
                    launch!(f<<<grid, block, 0, stream>>>(ptr(&digests), ptr(&cap), layers, level, count))?
                }
                Step::Transpose { ncols, log_lde } => {
                    let f = module.get_function("zk_transpose")?;
                    launch!(f<<<grid, block, 0, stream>>>(ptr(&lde), ptr(&rows), ncols, log_lde, count))?
                }
            }
        }
    }
    stream.synchronize()?;
    lap(stage, &mut stages);

    let download = |b: &DeviceBuffer<u64>, len: usize| -> Result<Vec<u64>, CudaError> {
        let mut out = vec![0u64; len];
        b.index(..len).copy_to(&mut out[..])?;
        Ok(out)
    };
    let coeffs = download(&coeffs, plan.len(Buffer::Coeffs))?;
    let rows = download(&rows, plan.len(Buffer::Rows))?;
    let digests = download(&digests, plan.len(Buffer::Digests))?;
    let cap = download(&cap, plan.len(Buffer::Cap))?;
    lap("download", &mut stages);
    Ok((plan.assemble(&coeffs, &rows, &digests, &cap, rate_bits), stages))
}
