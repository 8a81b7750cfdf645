//! The GPU pool's commitment engine, started once when the worker starts: a `--pool gpu` worker
//! without a usable device does not start (exit 69), and a CPU worker never touches CUDA. The
//! engine lives in the prover (`prover::stark::gpu::cuda`, feature `cuda`); a worker built
//! without the feature refuses the GPU pool.

use std::sync::Arc;

use prover::CommitmentEngine;

/// A started engine and the device it runs on, as logs and `/readyz` show it.
pub struct Gpu {
    pub engine: Arc<dyn CommitmentEngine>,
    pub device: String,
}

/// Starts the engine on device `ordinal`, bounded to `memory_limit` bytes per commitment.
#[cfg(feature = "cuda")]
pub fn start(ordinal: u32, memory_limit: Option<u64>) -> Result<Gpu, String> {
    use prover::stark::gpu::cuda::CudaEngine;
    let engine = CudaEngine::new(ordinal, memory_limit).map_err(|e| e.to_string())?;
    let device = engine.info().to_string();
    tracing::info!(device = %device, "CUDA engine started");
    Ok(Gpu { engine: Arc::new(engine), device })
}

#[cfg(not(feature = "cuda"))]
pub fn start(_ordinal: u32, _memory_limit: Option<u64>) -> Result<Gpu, String> {
    Err("this worker was built without the `cuda` feature; the GPU pool runs the GPU image (Dockerfile.gpu)".into())
}
