//! The tensors of a Hugging Face model folder (`model.safetensors`, or shards listed in
//! `model.safetensors.index.json`), read by name as f32.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::prelude::*;
use burn::tensor::TensorData;
use safetensors::{Dtype, SafeTensors};

use crate::{Error, Result};

/// The folder's safetensors files, memory-mapped, and which file holds each tensor.
pub struct TensorFiles {
    files: Vec<(PathBuf, memmap2::Mmap)>,
    /// Tensor name → index into `files`.
    index: BTreeMap<String, usize>,
}

impl TensorFiles {
    pub fn open(dir: &Path) -> Result<Self> {
        let single = dir.join("model.safetensors");
        let index_path = dir.join("model.safetensors.index.json");
        let names: Vec<PathBuf> = if single.exists() {
            vec![single]
        } else if index_path.exists() {
            shard_names(&index_path)?
        } else if dir.join("pytorch_model.bin").exists()
            || dir.join("pytorch_model.bin.index.json").exists()
        {
            return Err(Error::import(
                dir,
                "only PyTorch .bin weights: convert them to safetensors first, e.g. `python -c \"from transformers import AutoModelForCausalLM as M; M.from_pretrained('DIR').save_pretrained('DIR', safe_serialization=True)\"`",
            ));
        } else {
            return Err(Error::import(
                dir,
                "no model.safetensors or model.safetensors.index.json",
            ));
        };
        let mut files = Vec::new();
        let mut index = BTreeMap::new();
        for path in names {
            let file = std::fs::File::open(&path).map_err(|e| {
                Error::import(&path, format!("missing shard ({e}); download it again"))
            })?;
            // SAFETY: read-only map of a file this process does not modify.
            let map = unsafe { memmap2::Mmap::map(&file) }.map_err(Error::io(&path))?;
            let tensors = SafeTensors::deserialize(&map).map_err(|e| {
                Error::import(&path, format!("cannot be read ({e}); is it truncated?"))
            })?;
            for name in tensors.names() {
                index.insert(name.to_string(), files.len());
            }
            files.push((path, map));
        }
        Ok(Self { files, index })
    }

    /// Whether the folder has a tensor of this name.
    pub fn has(&self, name: &str) -> bool {
        self.index.contains_key(name)
    }

    /// Every tensor name.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.index.keys().map(String::as_str)
    }

    /// The tensor `name` as f32 values and its shape; an error names a missing tensor.
    pub fn read(&self, name: &str) -> Result<(Vec<f32>, Vec<usize>)> {
        let &i = self.index.get(name).ok_or_else(|| {
            Error::import(
                &self.files[0].0,
                format!(
                    "no tensor `{name}`; the folder is not a complete model of its config's family"
                ),
            )
        })?;
        let (path, map) = &self.files[i];
        let tensors = SafeTensors::deserialize(map)
            .map_err(|e| Error::import(path, format!("cannot be read ({e})")))?;
        let view = tensors
            .tensor(name)
            .map_err(|e| Error::import(path, format!("tensor `{name}`: {e}")))?;
        let bytes = view.data();
        let values: Vec<f32> = match view.dtype() {
            Dtype::F32 => bytes
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
            Dtype::F16 => bytes
                .chunks_exact(2)
                .map(|b| f16_to_f32(u16::from_le_bytes([b[0], b[1]])))
                .collect(),
            Dtype::BF16 => bytes
                .chunks_exact(2)
                .map(|b| f32::from_bits((u16::from_le_bytes([b[0], b[1]]) as u32) << 16))
                .collect(),
            other => {
                return Err(Error::import(
                    path,
                    format!("tensor `{name}` is {other:?}; only F32, F16 and BF16 are read"),
                ));
            }
        };
        Ok((values, view.shape().to_vec()))
    }

    /// The tensor `name`, checked to have `shape`, on `device`.
    pub fn tensor<const D: usize>(
        &self,
        name: &str,
        shape: [usize; D],
        device: &Device,
    ) -> Result<Tensor<D>> {
        let (values, found) = self.read(name)?;
        if found != shape {
            return Err(Error::import(
                &self.files[self.index[name]].0,
                format!("tensor `{name}` has shape {found:?}; the config implies {shape:?}"),
            ));
        }
        Ok(Tensor::from_data(TensorData::new(values, shape), device))
    }
}

/// IEEE half precision to f32 (exact: every f16 is an f32).
fn f16_to_f32(h: u16) -> f32 {
    let sign = ((h as u32) & 0x8000) << 16;
    let exp = (h >> 10) & 0x1f;
    let frac = (h & 0x3ff) as u32;
    let bits = match exp {
        0 if frac == 0 => sign,
        // Subnormal: frac · 2^-24.
        0 => {
            let magnitude = frac as f32 * 2f32.powi(-24);
            return if sign != 0 { -magnitude } else { magnitude };
        }
        0x1f => sign | 0x7f80_0000 | (frac << 13),
        _ => sign | (((exp as u32) + 127 - 15) << 23) | (frac << 13),
    };
    f32::from_bits(bits)
}

fn shard_names(index: &Path) -> Result<Vec<PathBuf>> {
    let text = std::fs::read_to_string(index).map_err(Error::io(index))?;
    let value: serde_json::Value = serde_json::from_str(&text).map_err(|source| Error::Json {
        path: index.to_owned(),
        source,
    })?;
    let map = value
        .get("weight_map")
        .and_then(|m| m.as_object())
        .ok_or_else(|| Error::import(index, "no `weight_map` object"))?;
    let mut files: Vec<String> = map
        .values()
        .filter_map(|v| v.as_str().map(String::from))
        .collect();
    files.sort();
    files.dedup();
    let dir = index.parent().unwrap_or(Path::new("."));
    Ok(files.into_iter().map(|f| dir.join(f)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_precision_bits_convert_to_their_values() {
        for (bits, value) in [
            (0x3C00u16, 1.0f32),
            (0xC000, -2.0),
            (0x3800, 0.5),
            (0x7BFF, 65504.0),
            (0x0001, 2f32.powi(-24)),
            (0x8001, -(2f32.powi(-24))),
            (0x0000, 0.0),
            (0x7C00, f32::INFINITY),
        ] {
            assert_eq!(f16_to_f32(bits), value, "{bits:#06x}");
        }
        assert!(f16_to_f32(0x7E00).is_nan());
    }
}
