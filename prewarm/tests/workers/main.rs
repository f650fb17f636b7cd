//! Integration tests of the pool with real Node and Python worker processes (one test binary).

mod fixture;
mod stand_in;

mod admission;
mod dart_build;
mod idle_cpu;
mod isolation;
mod limits;
mod oneshot;
mod real_dart_vm;
mod runtimes;
mod shapes;
mod warm;
