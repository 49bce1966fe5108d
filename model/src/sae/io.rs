//! SAEs on disk: one safetensors file each (`w_enc`, `b_enc`, `w_dec`, `b_pre`, f32), with `k`,
//! `input_scale` and the caller's provenance (checkpoint hash, layer, seed) in the metadata.
//! Readable from Python; equal weights give equal bytes.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use burn::module::Param;
use burn::prelude::*;
use burn::tensor::TensorData;
use safetensors::{Dtype, SafeTensors};

use super::Sae;
use crate::{Error, Result};

/// The safetensors metadata key under which the SAE's own metadata (a JSON object) is stored.
pub const METADATA_KEY: &str = "sae";

const TENSORS: [&str; 4] = ["b_enc", "b_pre", "w_dec", "w_enc"];

fn floats(t: Tensor<2>) -> (Vec<usize>, Vec<u8>) {
    let data = t.into_data().convert::<f32>();
    (data.shape().to_vec(), data.as_bytes().to_vec())
}

/// The SAE as safetensors bytes, with `metadata` added to its own (`k`, `input_scale`).
pub fn sae_safetensors_bytes(
    sae: &Sae,
    metadata: &[(&str, String)],
) -> std::result::Result<Vec<u8>, String> {
    let tensors = [
        floats(sae.b_enc.val().unsqueeze()),
        floats(sae.b_pre.val().unsqueeze()),
        floats(sae.w_dec.val()),
        floats(sae.w_enc.val()),
    ];
    let views = TENSORS
        .iter()
        .zip(&tensors)
        .map(|(name, (shape, bytes))| {
            // Biases are stored 1-D, as their module holds them.
            let shape = if name.starts_with('b') {
                vec![shape[1]]
            } else {
                shape.clone()
            };
            safetensors::tensor::TensorView::new(Dtype::F32, shape, bytes)
                .map(|v| (name.to_string(), v))
                .map_err(|e| format!("{name}: {e}"))
        })
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let mut meta: BTreeMap<String, String> = metadata
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    meta.insert("k".into(), sae.k.to_string());
    // `{:?}` prints the shortest string that parses back to the same f32.
    meta.insert("input_scale".into(), format!("{:?}", sae.input_scale));
    // One metadata entry holding sorted JSON: safetensors keeps metadata in a HashMap, whose
    // order would otherwise change the bytes from run to run.
    let header = HashMap::from([(
        METADATA_KEY.to_owned(),
        serde_json::to_string(&meta).expect("string map serialises"),
    )]);
    safetensors::tensor::serialize(views, Some(header)).map_err(|e| e.to_string())
}

/// Writes the SAE atomically (temporary name, then rename).
pub fn save_sae(sae: &Sae, path: &Path, metadata: &[(&str, String)]) -> Result<()> {
    let bytes = sae_safetensors_bytes(sae, metadata).map_err(|e| Error::checkpoint(path, e))?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(Error::io(dir))?;
    }
    let tmp = path.with_extension("safetensors.tmp");
    crate::durable::write_synced(&tmp, &bytes)?;
    crate::durable::rename_synced(&tmp, path)
}

/// Reads an SAE and the metadata it was saved with, naming the file and tensor on failure.
pub fn load_sae(path: &Path, device: &Device) -> Result<(Sae, BTreeMap<String, String>)> {
    let bytes = std::fs::read(path).map_err(Error::io(path))?;
    let (_, header) = SafeTensors::read_metadata(&bytes).map_err(|e| {
        Error::checkpoint(
            path,
            format!("not a safetensors file ({e}); is it truncated?"),
        )
    })?;
    let meta: BTreeMap<String, String> = header
        .metadata()
        .as_ref()
        .and_then(|m| m.get(METADATA_KEY))
        .and_then(|json| serde_json::from_str(json).ok())
        .ok_or_else(|| {
            Error::checkpoint(
                path,
                format!("has no `{METADATA_KEY}` metadata; not an SAE file?"),
            )
        })?;
    let st = SafeTensors::deserialize(&bytes)
        .map_err(|e| Error::checkpoint(path, format!("cannot be read ({e}); is it truncated?")))?;
    let tensor = |name: &str| -> Result<(Vec<f32>, Vec<usize>)> {
        let view = st
            .tensor(name)
            .map_err(|_| Error::checkpoint(path, format!("missing tensor `{name}`")))?;
        if view.dtype() != Dtype::F32 {
            return Err(Error::checkpoint(
                path,
                format!("tensor `{name}` is {:?}; expected F32", view.dtype()),
            ));
        }
        let values = bytemuck::pod_collect_to_vec::<u8, f32>(view.data());
        Ok((values, view.shape().to_vec()))
    };
    let field = |key: &str| -> Result<&String> {
        meta.get(key)
            .ok_or_else(|| Error::checkpoint(path, format!("metadata has no `{key}`")))
    };
    let k: usize = field("k")?
        .parse()
        .map_err(|_| Error::checkpoint(path, "metadata `k` is not a number"))?;
    let input_scale: f32 = field("input_scale")?
        .parse()
        .map_err(|_| Error::checkpoint(path, "metadata `input_scale` is not a number"))?;
    let (w_dec, dec_shape) = tensor("w_dec")?;
    let [d_sae, d_in] = dec_shape[..] else {
        return Err(Error::checkpoint(path, "tensor `w_dec` is not 2-D"));
    };
    let expect = |name: &str, shape: &[usize], want: &[usize]| {
        if shape == want {
            Ok(())
        } else {
            Err(Error::checkpoint(
                path,
                format!(
                    "tensor `{name}` has shape {shape:?}; expected {want:?} for w_dec {dec_shape:?}"
                ),
            ))
        }
    };
    let (w_enc, s) = tensor("w_enc")?;
    expect("w_enc", &s, &[d_in, d_sae])?;
    let (b_enc, s) = tensor("b_enc")?;
    expect("b_enc", &s, &[d_sae])?;
    let (b_pre, s) = tensor("b_pre")?;
    expect("b_pre", &s, &[d_in])?;
    if k == 0 || k > d_sae {
        return Err(Error::checkpoint(
            path,
            format!("metadata k = {k} does not fit {d_sae} latents"),
        ));
    }
    let sae = Sae {
        w_enc: Param::from_tensor(Tensor::from_data(
            TensorData::new(w_enc, [d_in, d_sae]),
            device,
        )),
        b_enc: Param::from_tensor(Tensor::from_data(TensorData::new(b_enc, [d_sae]), device)),
        w_dec: Param::from_tensor(Tensor::from_data(
            TensorData::new(w_dec, [d_sae, d_in]),
            device,
        )),
        b_pre: Param::from_tensor(Tensor::from_data(TensorData::new(b_pre, [d_in]), device)),
        k,
        input_scale,
    };
    Ok((sae, meta))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sae::SaeConfig;

    #[test]
    fn round_trip_is_bit_exact_and_keeps_latents() {
        let device = Device::flex();
        let mut sae = SaeConfig {
            d_in: 8,
            d_sae: 32,
            k: 4,
        }
        .init(5, &device);
        sae.input_scale = 0.123_456_79;
        sae.b_enc = sae.b_enc.map(|b| b.add_scalar(0.25));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("layer-0.safetensors");
        save_sae(&sae, &path, &[("step", "100".into())]).unwrap();
        let (back, meta) = load_sae(&path, &device).unwrap();
        assert_eq!(meta["step"], "100");
        assert_eq!(back.input_scale, sae.input_scale);
        assert_eq!(back.k, 4);
        let again = sae_safetensors_bytes(&back, &[("step", "100".into())]).unwrap();
        assert_eq!(
            again,
            std::fs::read(&path).unwrap(),
            "same bytes after a round trip"
        );
        let x = Tensor::<2>::random(
            [5, 8],
            burn::tensor::Distribution::Normal(0.0, 1.0),
            &device,
        );
        let (a, b) = (sae.encode(x.clone()), back.encode(x));
        assert_eq!(a.indices.into_data(), b.indices.into_data());
        assert_eq!(a.values.into_data(), b.values.into_data());
    }

    #[test]
    fn truncated_or_incomplete_files_name_the_problem() {
        let device = Device::flex();
        let sae = SaeConfig {
            d_in: 4,
            d_sae: 8,
            k: 2,
        }
        .init(1, &device);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sae.safetensors");
        let bytes = sae_safetensors_bytes(&sae, &[]).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
        let err = load_sae(&path, &device).unwrap_err().to_string();
        assert!(
            err.contains("sae.safetensors") && err.contains("truncated"),
            "{err}"
        );
        std::fs::write(&path, b"not at all").unwrap();
        assert!(load_sae(&path, &device).is_err());
    }
}
