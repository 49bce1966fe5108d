//! TopK language models (Takahashi, Inaba, Inui, Heinzerling 2025, arXiv 2506.21468) in burn.
//!
//! A GPT-style decoder whose first `n_layers - n_nontopk` blocks end in a TopK activation:
//! the residual stream leaving such a block keeps only its `k` largest entries per token, so
//! those hidden states are sparse, interpretable features in a fixed basis.

pub mod activation;
mod attention;
mod block;
pub mod checkpoint;
mod config;
mod durable;
mod error;
pub mod fused;
pub mod generate;
mod gpt;
mod intervention;
mod mlp;
pub mod sae;
pub mod train;

pub use activation::{TopK, TopKBy, TopKSelect, top_entries};
pub use config::{GptConfig, Positional, Preset};
pub use error::{Error, Result};
pub use gpt::{ForwardInput, Gpt, GptOutput, KvCache, Substitution, cross_entropy};
pub use intervention::{Intervention, InterventionMode};

/// The burn device type every function here takes.
pub use burn::tensor::Device;

/// Picks the compute device by name: `flex` (pure-Rust CPU, the default) or `wgpu`
/// (needs the `wgpu` cargo feature and a GPU adapter).
pub fn device(name: &str) -> Result<Device> {
    match name {
        "flex" | "cpu" => Ok(Device::flex()),
        #[cfg(feature = "wgpu")]
        "wgpu" => Ok(Device::wgpu(Default::default())),
        #[cfg(feature = "ndarray")]
        #[allow(deprecated)] // kept only to measure it against flex
        "ndarray" => Ok(Device::ndarray()),
        other => Err(Error::Config(format!(
            "unknown backend `{other}`: use `flex`{}",
            if cfg!(feature = "wgpu") {
                " or `wgpu`"
            } else {
                " (build with `--features wgpu` for GPUs)"
            }
        ))),
    }
}
