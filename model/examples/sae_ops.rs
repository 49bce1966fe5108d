//! Times the pieces of one SAE training step on this machine (encode, decode, backward), to
//! choose between implementations: `cargo run --release -p model --example sae_ops`.
use std::time::Instant;

use burn::prelude::*;

fn main() {
    let device = Device::flex();
    let (n, d, d_sae, k) = (512, 128, 512, 32);
    let x = Tensor::<2>::random(
        [n, d],
        burn::tensor::Distribution::Normal(0.0, 1.0),
        &device,
    );
    let time = |name: &str, f: &dyn Fn()| {
        f();
        let t = Instant::now();
        for _ in 0..20 {
            f();
        }
        println!("{name:>28}: {:.2} ms", t.elapsed().as_secs_f64() * 50.0);
    };
    let ad = device.clone().autodiff();
    let sae = model::sae::SaeConfig { d_in: d, d_sae, k }.init(1, &ad);
    let xa = Tensor::<2>::from_data(x.into_data(), &ad);
    time("encode fwd+bwd", &|| {
        let z = sae.encode(xa.clone());
        let _ = z.values.sum().backward();
    });
    time("encode+decode fwd+bwd", &|| {
        let z = sae.encode(xa.clone());
        let r = sae.reconstruct_scaled(&z);
        let _ = (xa.clone() - r).powi_scalar(2).sum().backward();
    });
    time("gather-rows decode fwd+bwd", &|| {
        let z = sae.encode(xa.clone());
        let rows = sae
            .w_dec
            .val()
            .select(0, z.indices.reshape([n * k]))
            .reshape([n, k, d]);
        let r = (rows * z.values.unsqueeze_dim::<3>(2))
            .sum_dim(1)
            .reshape([n, d]);
        let _ = (xa.clone() - r).powi_scalar(2).sum().backward();
    });
}
