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
mod dtype;
mod durable;
mod error;
pub mod fused;
pub mod generate;
mod gpt;
pub mod hf;
mod intervention;
mod mlp;
mod rng;
mod rotary;
pub mod sae;
pub mod train;

pub use activation::{TopK, TopKBy, TopKSelect, top_entries};
pub use config::{GptConfig, MlpKind, NormKind, Positional, Preset};
pub use error::{Error, Result};
pub use gpt::{ForwardInput, Gpt, GptOutput, KvCache, Substitution, cross_entropy};
pub use intervention::{Intervention, InterventionMode};
pub use rng::SplitMix64;

/// The burn device type every function here takes.
pub use burn::tensor::Device;

/// The compute backend, by its config name: `flex` (pure-Rust CPU, the default; `cpu` is
/// accepted for it), `wgpu` (needs the `wgpu` cargo feature and a GPU adapter) or `ndarray`
/// (the `ndarray` feature; kept only to measure it against flex).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    #[default]
    #[serde(alias = "cpu")]
    Flex,
    Wgpu,
    Ndarray,
}

impl Backend {
    /// The device of this backend, or why this build has none.
    pub fn device(self) -> Result<Device> {
        match self {
            Backend::Flex => Ok(Device::flex()),
            #[cfg(feature = "wgpu")]
            Backend::Wgpu => Ok(Device::wgpu(Default::default())),
            #[cfg(feature = "ndarray")]
            #[allow(deprecated)] // kept only to measure it against flex
            Backend::Ndarray => Ok(Device::ndarray()),
            #[allow(unreachable_patterns)]
            other => Err(Error::Config(format!(
                "backend `{}` is not in this build: rebuild with `--features {}`",
                other.name(),
                other.name()
            ))),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Backend::Flex => "flex",
            Backend::Wgpu => "wgpu",
            Backend::Ndarray => "ndarray",
        }
    }
}

impl std::str::FromStr for Backend {
    type Err = Error;

    fn from_str(name: &str) -> Result<Self> {
        match name {
            "flex" | "cpu" => Ok(Backend::Flex),
            "wgpu" => Ok(Backend::Wgpu),
            "ndarray" => Ok(Backend::Ndarray),
            other => Err(Error::Config(format!(
                "unknown backend `{other}`: use `flex`{}",
                if cfg!(feature = "wgpu") {
                    " or `wgpu`"
                } else {
                    " (or `wgpu`, in a build with `--features wgpu`, for GPUs)"
                }
            ))),
        }
    }
}

/// Picks the compute device by backend name (see [`Backend`]).
pub fn device(name: &str) -> Result<Device> {
    name.parse::<Backend>()?.device()
}
