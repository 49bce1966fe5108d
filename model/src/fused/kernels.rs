//! f32 kernels for the element-wise and row-wise work of a training step that burn's CPU
//! backend does one scalar libm call or one full-size temporary at a time: GELU (erf), the
//! cross-entropy of the logits (exp) and layer norm. Written
//! branch-free over slices so the compiler vectorises them; [`simd`] compiles each loop for
//! the widest instruction set the CPU has (AVX2 + FMA on x86-64), picked at run time.
//!
//! Plain functions on slices, no tensors: the tests compare them with f64 references.

use rayon::prelude::*;

/// Elements (or logits) one rayon task takes: big enough to amortise the task, small enough
/// that both cores share a GELU of the tiny preset.
const TASK: usize = 1 << 14;

/// Runs `f` compiled for the best SIMD level of this CPU (pulp's runtime dispatch). Mark the
/// closure `#[inline(always)]`: only code inlined into it gets the wider instructions.
#[inline(always)]
pub(crate) fn simd<R>(f: impl FnOnce() -> R) -> R {
    pulp::Arch::new().dispatch(f)
}

const LOG2_E: f32 = std::f32::consts::LOG2_E;
// ln 2 split in two so that `n * LN2_HI` is exact for |n| ≤ 2^15 (Cody and Waite).
const LN2_HI: f32 = 0.693_359_4;
const LN2_LO: f32 = -2.121_944_4e-4;
// 1.5 × 2^23: `y + ROUND` rounds y to an integer kept in the low mantissa bits.
const ROUND: f32 = 12_582_912.0;
/// Below this, e^x is under f32's smallest normal number and [`exp`] returns 0.
const EXP_MIN: f32 = -87.336_55;
/// e^x is computed for x up to here (2^127 · e^0.35); larger x give this value, not infinity.
const EXP_MAX: f32 = 88.376_26;

/// e^x within 2 ulp for x in [EXP_MIN, EXP_MAX] (Cephes' `expf` polynomial), 0 below, NaN
/// for NaN. Branch-free, so it vectorises.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    let xc = x.clamp(EXP_MIN, EXP_MAX);
    let t = xc * LOG2_E + ROUND;
    let n = t - ROUND;
    let r = xc - n * LN2_HI - n * LN2_LO;
    let mut p = 1.987_569_1e-4;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 0.5; // Cephes' 5.0000001201e-1, which is 0.5 in f32
    let y = p * r * r + r + 1.0;
    // 2^n from n's bits: t's mantissa holds n + 2^22, so this subtraction leaves n.
    // Wrapping ops: an overflow check (debug builds) would stop the loop from vectorising.
    let n_int = (t.to_bits() as i32).wrapping_sub(ROUND.to_bits() as i32);
    let scale = f32::from_bits((n_int.wrapping_add(127) << 23) as u32);
    if x < EXP_MIN { 0.0 } else { y * scale }
}

const FRAC_1_SQRT_2: f32 = std::f32::consts::FRAC_1_SQRT_2;
// 1 / √(2π), the standard normal density at 0.
const INV_SQRT_2PI: f32 = 0.398_942_3;

/// Φ(x), the standard normal CDF, and φ(x), its density, sharing one exponential.
/// Φ comes from erf by Abramowitz and Stegun 7.1.26 (absolute error below 1.5e-7; PyTorch's
/// vectorised erf is the same formula).
#[inline(always)]
fn normal_cdf_pdf(x: f32) -> (f32, f32) {
    let e = exp(-0.5 * x * x); // e^{-z²} for z = x/√2
    let z = x.abs() * FRAC_1_SQRT_2;
    let t = 1.0 / (1.0 + 0.327_591_1 * z);
    let mut p = 1.061_405_4;
    p = p * t - 1.453_152;
    p = p * t + 1.421_413_7;
    p = p * t - 0.284_496_72;
    p = p * t + 0.254_829_6;
    let erf_abs = 1.0 - p * t * e;
    let erf = if x < 0.0 { -erf_abs } else { erf_abs };
    (0.5 * (1.0 + erf), INV_SQRT_2PI * e)
}

/// GELU(x) = x Φ(x), the exact (erf) form, into `out`.
pub fn gelu(x: &[f32], out: &mut [f32]) {
    assert_eq!(x.len(), out.len());
    out.par_chunks_mut(TASK)
        .zip(x.par_chunks(TASK))
        .for_each(|(out, x)| {
            simd(
                #[inline(always)]
                || {
                    for (o, &x) in out.iter_mut().zip(x) {
                        *o = x * normal_cdf_pdf(x).0;
                    }
                },
            )
        });
}

/// The gradient through GELU: `grad · (Φ(x) + x φ(x))`, into `out`.
pub fn gelu_backward(x: &[f32], grad: &[f32], out: &mut [f32]) {
    assert_eq!(x.len(), out.len());
    assert_eq!(grad.len(), out.len());
    out.par_chunks_mut(TASK)
        .zip(x.par_chunks(TASK).zip(grad.par_chunks(TASK)))
        .for_each(|(out, (x, grad))| {
            simd(
                #[inline(always)]
                || {
                    for ((o, &x), &g) in out.iter_mut().zip(x).zip(grad) {
                        let (cdf, pdf) = normal_cdf_pdf(x);
                        *o = g * (cdf + x * pdf);
                    }
                },
            )
        });
}

/// Lanes of the reductions below: eight independent partial results, so the loop vectorises
/// (a single f32 accumulator would fix the order of the additions). The order is the same
/// whatever the CPU's vector width, so results are too.
const LANES: usize = 8;

/// The largest entry of `row` (NaNs skipped; -inf for an empty row).
#[inline(always)]
pub(crate) fn row_max(row: &[f32]) -> f32 {
    let mut max = [f32::NEG_INFINITY; LANES];
    let chunks = row.chunks_exact(LANES);
    let tail = chunks.remainder();
    for chunk in chunks {
        for (m, &x) in max.iter_mut().zip(chunk) {
            *m = if x > *m { x } else { *m };
        }
    }
    tail.iter()
        .chain(&max)
        .fold(f32::NEG_INFINITY, |m, &x| if x > m { x } else { m })
}

/// Σ row.
#[inline(always)]
pub(crate) fn row_sum(row: &[f32]) -> f32 {
    let mut sum = [0.0f32; LANES];
    let chunks = row.chunks_exact(LANES);
    let tail = chunks.remainder();
    for chunk in chunks {
        for (s, &x) in sum.iter_mut().zip(chunk) {
            *s += x;
        }
    }
    sum.iter().sum::<f32>() + tail.iter().sum::<f32>()
}

/// `out = e^(row - shift)`, element by element.
#[inline(always)]
fn exp_shifted(row: &[f32], shift: f32, out: &mut [f32]) {
    for (o, &x) in out.iter_mut().zip(row) {
        *o = exp(x - shift);
    }
}

/// Cross-entropy of each row of `logits` (`[rows, vocab]`, row-major) against its target
/// index: `log Σ_j e^{x_j} - x_target`, computed as `max + log Σ_j e^{x_j - max} - x_target`,
/// into `losses` (`[rows]`). A NaN logit gives a NaN loss. Panics on a target outside the
/// vocabulary.
pub fn cross_entropy(logits: &[f32], vocab: usize, targets: &[usize], losses: &mut [f32]) {
    assert_eq!(logits.len(), targets.len() * vocab);
    assert_eq!(losses.len(), targets.len());
    let rows_per_task = (TASK / vocab).max(1);
    losses
        .par_chunks_mut(rows_per_task)
        .zip(logits.par_chunks(rows_per_task * vocab))
        .zip(targets.par_chunks(rows_per_task))
        .for_each(|((losses, logits), targets)| {
            let mut exps = vec![0.0; vocab];
            simd(
                #[inline(always)]
                || {
                    let rows = losses.iter_mut().zip(logits.chunks(vocab)).zip(targets);
                    for ((loss, row), &target) in rows {
                        let max = row_max(row);
                        exp_shifted(row, max, &mut exps);
                        *loss = max + row_sum(&exps).ln() - row[target];
                    }
                },
            )
        });
}

/// The gradient of [`cross_entropy`] with respect to the logits, given the gradient of each
/// row's loss: `grad_row · (softmax(row) - onehot(target))`, into `out` (`[rows, vocab]`).
pub fn cross_entropy_backward(
    logits: &[f32],
    vocab: usize,
    targets: &[usize],
    grad: &[f32],
    out: &mut [f32],
) {
    assert_eq!(logits.len(), targets.len() * vocab);
    assert_eq!(grad.len(), targets.len());
    assert_eq!(out.len(), logits.len());
    let rows_per_task = (TASK / vocab).max(1);
    out.par_chunks_mut(rows_per_task * vocab)
        .zip(logits.par_chunks(rows_per_task * vocab))
        .zip(
            targets
                .par_chunks(rows_per_task)
                .zip(grad.par_chunks(rows_per_task)),
        )
        .for_each(|((out, logits), (targets, grad))| {
            simd(
                #[inline(always)]
                || {
                    let rows = out.chunks_mut(vocab).zip(logits.chunks(vocab));
                    for ((out, row), (&target, &g)) in rows.zip(targets.iter().zip(grad)) {
                        exp_shifted(row, row_max(row), out);
                        let scale = g / row_sum(out);
                        for o in out.iter_mut() {
                            *o *= scale;
                        }
                        out[target] -= g;
                    }
                },
            )
        });
}

/// Layer normalisation of each row of `x` (`[rows, d]`): `(x - mean) / √(var + eps) · gamma
/// + beta`, into `out`.
pub fn layer_norm(x: &[f32], gamma: &[f32], beta: &[f32], eps: f32, out: &mut [f32]) {
    let d = gamma.len();
    assert_eq!(beta.len(), d);
    assert_eq!(x.len(), out.len());
    let rows_per_task = (TASK / d).max(1);
    out.par_chunks_mut(rows_per_task * d)
        .zip(x.par_chunks(rows_per_task * d))
        .for_each(|(out, x)| {
            simd(
                #[inline(always)]
                || {
                    for (out, row) in out.chunks_mut(d).zip(x.chunks(d)) {
                        let (mean, rstd) = moments(row, eps);
                        for (((o, &x), &g), &b) in out.iter_mut().zip(row).zip(gamma).zip(beta) {
                            *o = (x - mean) * rstd * g + b;
                        }
                    }
                },
            )
        });
}

/// Mean and 1/√(variance + eps) of a row (variance with divisor d, as PyTorch and burn).
#[inline(always)]
fn moments(row: &[f32], eps: f32) -> (f32, f32) {
    let n = row.len() as f32;
    let mean = row_sum(row) / n;
    let mut sq = [0.0f32; LANES];
    let chunks = row.chunks_exact(LANES);
    let tail: f32 = chunks
        .remainder()
        .iter()
        .map(|&x| (x - mean) * (x - mean))
        .sum();
    for chunk in chunks {
        for (s, &x) in sq.iter_mut().zip(chunk) {
            *s += (x - mean) * (x - mean);
        }
    }
    let var = (sq.iter().sum::<f32>() + tail) / n;
    (mean, 1.0 / (var + eps).sqrt())
}

/// The gradients of [`layer_norm`] given the output's gradient `grad`: with x̂ the normalised
/// row and g = grad · gamma, `dx = rstd · (g - mean(g) - x̂ · mean(g · x̂))` into `dx`, and
/// `dgamma = Σ_rows grad · x̂`, `dbeta = Σ_rows grad` (summed in row order).
pub fn layer_norm_backward(
    x: &[f32],
    gamma: &[f32],
    grad: &[f32],
    eps: f32,
    dx: &mut [f32],
    dgamma: &mut [f32],
    dbeta: &mut [f32],
) {
    let d = gamma.len();
    assert_eq!(x.len(), grad.len());
    assert_eq!(x.len(), dx.len());
    simd(
        #[inline(always)]
        || {
            dgamma.fill(0.0);
            dbeta.fill(0.0);
            let (mut g, mut x_hat) = (vec![0.0; d], vec![0.0; d]);
            let n = d as f32;
            let rows = dx.chunks_mut(d).zip(x.chunks(d)).zip(grad.chunks(d));
            for ((dx, row), grad) in rows {
                let (mean, rstd) = moments(row, eps);
                for (((g, xh), (&dy, &gm)), ((dg, db), &x)) in g
                    .iter_mut()
                    .zip(x_hat.iter_mut())
                    .zip(grad.iter().zip(gamma))
                    .zip(dgamma.iter_mut().zip(dbeta.iter_mut()).zip(row))
                {
                    *xh = (x - mean) * rstd;
                    *g = dy * gm;
                    *dg += dy * *xh;
                    *db += dy;
                }
                let g_mean = row_sum(&g) / n;
                let gx_mean = dot(&g, &x_hat) / n;
                for ((o, &g), &xh) in dx.iter_mut().zip(&g).zip(&x_hat) {
                    *o = rstd * (g - g_mean - xh * gx_mean);
                }
            }
        },
    )
}

/// Σ a·b, in the lane order of [`row_sum`].
#[inline(always)]
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; LANES];
    let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for l in 0..LANES {
            acc[l] += x[l] * y[l];
        }
    }
    acc.iter().sum::<f32>() + tail
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Evenly spaced points of [lo, hi], both included.
    fn grid(lo: f32, hi: f32, n: usize) -> Vec<f32> {
        (0..n)
            .map(|i| lo + (hi - lo) * i as f32 / (n - 1) as f32)
            .collect()
    }

    #[test]
    fn exp_matches_f64_within_two_ulp_and_handles_the_edges() {
        for x in grid(EXP_MIN, EXP_MAX, 200_001) {
            let want = (x as f64).exp();
            let got = exp(x) as f64;
            let ulp = (want as f32).abs() * f32::EPSILON;
            assert!(
                (got - want).abs() <= 2.0 * ulp as f64,
                "exp({x}) = {got}, f64 says {want}"
            );
        }
        assert_eq!(exp(0.0), 1.0);
        assert_eq!(exp(-100.0), 0.0);
        assert_eq!(exp(f32::NEG_INFINITY), 0.0);
        assert!(exp(f32::NAN).is_nan());
    }

    #[test]
    fn gelu_and_its_gradient_match_f64_references() {
        let x = grid(-9.0, 9.0, 36_001);
        let mut y = vec![0.0; x.len()];
        gelu(&x, &mut y);
        let ones = vec![1.0; x.len()];
        let mut dy = vec![0.0; x.len()];
        gelu_backward(&x, &ones, &mut dy);
        for ((&x, &y), &dy) in x.iter().zip(&y).zip(&dy) {
            let xd = x as f64;
            // fdlibm's erf (the libm crate), in f64: a second implementation.
            let cdf = 0.5 * (1.0 + libm::erf(xd / 2f64.sqrt()));
            let pdf = (-0.5 * xd * xd).exp() / (2.0 * std::f64::consts::PI).sqrt();
            // Φ's error bound (7.5e-8) plus f32 rounding of the products: 2.2e-7 seen at worst.
            let tol = 3e-7 * xd.abs().max(1.0);
            assert!(
                (y as f64 - xd * cdf).abs() <= tol,
                "gelu({x}) = {y}, want {}",
                xd * cdf
            );
            assert!(
                (dy as f64 - (cdf + xd * pdf)).abs() <= tol,
                "gelu'({x}) = {dy}, want {}",
                cdf + xd * pdf
            );
        }
        // Far out GELU is the identity on the right and 0 on the left.
        let mut out = [0.0; 2];
        gelu(&[50.0, -50.0], &mut out);
        assert_eq!(out, [50.0, 0.0]);
    }

    #[test]
    fn gelu_backward_scales_by_the_incoming_gradient() {
        let x = grid(-3.0, 3.0, 101);
        let (ones, threes) = (vec![1.0; 101], vec![3.0; 101]);
        let (mut a, mut b) = (vec![0.0; 101], vec![0.0; 101]);
        gelu_backward(&x, &ones, &mut a);
        gelu_backward(&x, &threes, &mut b);
        for (a, b) in a.iter().zip(&b) {
            assert!((3.0 * a - b).abs() <= 1e-6);
        }
    }

    /// A row's loss and softmax in f64, the textbook way.
    fn reference(row: &[f32], target: usize) -> (f64, Vec<f64>) {
        let max = row.iter().fold(f64::NEG_INFINITY, |m, &x| m.max(x as f64));
        let sum: f64 = row.iter().map(|&x| (x as f64 - max).exp()).sum();
        let lse = max + sum.ln();
        let p = row.iter().map(|&x| (x as f64 - lse).exp()).collect();
        (lse - row[target] as f64, p)
    }

    #[test]
    fn cross_entropy_and_its_gradient_match_an_f64_softmax() {
        // 3 rows of 37 (not a multiple of the lanes), spread logits, one huge one.
        let vocab = 37;
        let mut logits: Vec<f32> = (0..3 * vocab)
            .map(|i| ((i * 7919) % 101) as f32 / 10.0 - 5.0)
            .collect();
        logits[vocab + 3] = 80.0;
        let targets = [0, 3, 36];
        let mut losses = [0.0; 3];
        cross_entropy(&logits, vocab, &targets, &mut losses);
        let grad = [1.0, 0.5, -2.0];
        let mut dlogits = vec![0.0; logits.len()];
        cross_entropy_backward(&logits, vocab, &targets, &grad, &mut dlogits);
        for r in 0..3 {
            let row = &logits[r * vocab..(r + 1) * vocab];
            let (loss, p) = reference(row, targets[r]);
            assert!(
                (losses[r] as f64 - loss).abs() <= 1e-5 * loss.max(1.0),
                "row {r}"
            );
            for j in 0..vocab {
                let onehot = if j == targets[r] { 1.0 } else { 0.0 };
                let want = grad[r] as f64 * (p[j] - onehot);
                let got = dlogits[r * vocab + j] as f64;
                assert!(
                    (got - want).abs() <= 1e-6,
                    "row {r}, logit {j}: {got} vs {want}"
                );
            }
        }
        // The huge logit is the target of row 1: its loss is ~0, its gradient ~0 too.
        assert!(losses[1].abs() < 1e-6);
    }

    #[test]
    fn uniform_logits_cost_log_vocab_and_a_nan_logit_gives_a_nan_loss() {
        let vocab = 1000;
        let mut logits = vec![0.25; 2 * vocab];
        logits[vocab + 17] = f32::NAN;
        let mut losses = [0.0; 2];
        cross_entropy(&logits, vocab, &[5, 5], &mut losses);
        assert!((losses[0] - (vocab as f32).ln()).abs() < 1e-5);
        assert!(losses[1].is_nan());
    }

    #[test]
    fn many_rows_split_across_tasks_give_the_same_losses_as_one_row_at_a_time() {
        // More logits than one task holds, so the rows are split between tasks.
        let (rows, vocab) = (40, 1000);
        let logits: Vec<f32> = (0..rows * vocab)
            .map(|i| ((i * 2654435761usize) % 1000) as f32 / 100.0)
            .collect();
        let targets: Vec<usize> = (0..rows).map(|r| (r * 37) % vocab).collect();
        let mut all = vec![0.0; rows];
        cross_entropy(&logits, vocab, &targets, &mut all);
        for r in 0..rows {
            let mut one = [0.0];
            cross_entropy(
                &logits[r * vocab..(r + 1) * vocab],
                vocab,
                &targets[r..r + 1],
                &mut one,
            );
            assert_eq!(all[r].to_bits(), one[0].to_bits(), "row {r}");
        }
    }

    #[test]
    fn layer_norm_and_its_gradients_match_f64_and_central_differences() {
        let (rows, d) = (5, 20);
        let x: Vec<f32> = (0..rows * d)
            .map(|i| ((i * 7919) % 97) as f32 / 10.0 - 4.0)
            .collect();
        let gamma: Vec<f32> = (0..d).map(|i| 0.5 + i as f32 / 20.0).collect();
        let beta: Vec<f32> = (0..d).map(|i| i as f32 / 40.0 - 0.2).collect();
        let w: Vec<f32> = (0..rows * d)
            .map(|i| ((i * 31) % 13) as f32 / 6.0 - 1.0)
            .collect();
        let eps = 1e-5;
        let mut y = vec![0.0; x.len()];
        layer_norm(&x, &gamma, &beta, eps, &mut y);
        for r in 0..rows {
            let row: Vec<f64> = x[r * d..(r + 1) * d].iter().map(|&v| v as f64).collect();
            let mean = row.iter().sum::<f64>() / d as f64;
            let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / d as f64;
            for j in 0..d {
                let want =
                    (row[j] - mean) / (var + eps as f64).sqrt() * gamma[j] as f64 + beta[j] as f64;
                assert!((y[r * d + j] as f64 - want).abs() < 1e-5, "row {r}, {j}");
            }
        }
        // Loss Σ y ⊙ w: compare every gradient with central differences in f64.
        let loss = |x: &[f32], gamma: &[f32], beta: &[f32]| -> f64 {
            let mut y = vec![0.0; x.len()];
            layer_norm(x, gamma, beta, eps, &mut y);
            y.iter().zip(&w).map(|(a, b)| *a as f64 * *b as f64).sum()
        };
        let (mut dx, mut dg, mut db) = (vec![0.0; x.len()], vec![0.0; d], vec![0.0; d]);
        layer_norm_backward(&x, &gamma, &w, eps, &mut dx, &mut dg, &mut db);
        let h = 1e-2;
        let numeric = |f: &dyn Fn(f32) -> f64| (f(h) - f(-h)) / (2.0 * h as f64);
        for i in (0..x.len()).step_by(3) {
            let n = numeric(&|e| {
                let mut x = x.clone();
                x[i] += e;
                loss(&x, &gamma, &beta)
            });
            assert!((dx[i] as f64 - n).abs() < 2e-3, "dx[{i}]: {} vs {n}", dx[i]);
        }
        for j in 0..d {
            let n = numeric(&|e| {
                let mut g = gamma.clone();
                g[j] += e;
                loss(&x, &g, &beta)
            });
            assert!(
                (dg[j] as f64 - n).abs() < 2e-3,
                "dgamma[{j}]: {} vs {n}",
                dg[j]
            );
            let n = numeric(&|e| {
                let mut b = beta.clone();
                b[j] += e;
                loss(&x, &gamma, &b)
            });
            assert!(
                (db[j] as f64 - n).abs() < 2e-3,
                "dbeta[{j}]: {} vs {n}",
                db[j]
            );
        }
    }
}
