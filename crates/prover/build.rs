//! Compiles the CUDA kernels' host build (`cuda/host.cpp`): their arithmetic and steps as plain
//! C++, which the tests compare bit for bit with plonky2 on machines without a GPU. The kernels
//! themselves are compiled to PTX by `scripts/build-kernels` (nvcc) and checked in.

fn main() {
    for file in ["host.cpp", "zk.cuh", "goldilocks.cuh", "poseidon.cuh", "poseidon_constants.cuh", "commit.cuh"] {
        println!("cargo:rerun-if-changed=cuda/{file}");
    }
    cc::Build::new()
        .cpp(true)
        .file("cuda/host.cpp")
        .std("c++17")
        .opt_level(3)
        .warnings(true)
        .extra_warnings(true)
        .warnings_into_errors(true)
        .compile("zkfleet_kernels_host");
}
