//! The network: dense layers, tanh between them and none on the output, trained by full-batch
//! Adam on a weighted mean squared reconstruction error. Written out by hand because it is
//! small: the gradients of four matrix products are a few lines each.

use ndarray::{Array1, Array2, ArrayView2, Axis};
use rand::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256Plus;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Dense {
    #[serde(with = "matrix")]
    pub w: Array2<f64>,
    #[serde(with = "vector")]
    pub b: Array1<f64>,
}

/// A matrix saved as its shape and its values row by row (the project's ndarray is built
/// without serde).
mod matrix {
    use ndarray::Array2;
    use serde::{Deserialize, Deserializer, Serialize, Serializer, de::Error as _};

    pub fn serialize<S: Serializer>(a: &Array2<f64>, s: S) -> Result<S::Ok, S::Error> {
        (
            a.nrows(),
            a.ncols(),
            a.iter().copied().collect::<Vec<f64>>(),
        )
            .serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Array2<f64>, D::Error> {
        let (rows, cols, values) = <(usize, usize, Vec<f64>)>::deserialize(d)?;
        Array2::from_shape_vec((rows, cols), values).map_err(D::Error::custom)
    }
}

mod vector {
    use ndarray::Array1;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(a: &Array1<f64>, s: S) -> Result<S::Ok, S::Error> {
        a.to_vec().serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Array1<f64>, D::Error> {
        Ok(Array1::from(Vec::<f64>::deserialize(d)?))
    }
}

/// Layers in order; every layer but the last is followed by tanh.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Network {
    pub layers: Vec<Dense>,
}

impl Network {
    /// Layers of `sizes[i] → sizes[i + 1]`, weights drawn uniformly within the Glorot bound
    /// from `seed`, biases zero.
    pub fn new(sizes: &[usize], seed: u64) -> Self {
        let mut rng = Xoshiro256Plus::seed_from_u64(seed);
        let layers = sizes
            .windows(2)
            .map(|io| {
                let bound = (6.0 / (io[0] + io[1]) as f64).sqrt();
                Dense {
                    w: Array2::from_shape_fn((io[0], io[1]), |_| rng.gen_range(-bound..bound)),
                    b: Array1::zeros(io[1]),
                }
            })
            .collect();
        Self { layers }
    }

    /// Each layer's output for the rows `x`, the input first and the rebuilt rows last.
    fn activations(&self, x: ArrayView2<f64>) -> Vec<Array2<f64>> {
        let mut out = vec![x.to_owned()];
        for (i, layer) in self.layers.iter().enumerate() {
            let mut z = out[i].dot(&layer.w) + &layer.b;
            if i + 1 < self.layers.len() {
                z.mapv_inplace(f64::tanh);
            }
            out.push(z);
        }
        out
    }

    /// The rows `x` rebuilt.
    pub fn rebuild(&self, x: ArrayView2<f64>) -> Array2<f64> {
        self.activations(x).pop().expect("the input at least")
    }

    /// Train on rows `x` weighted by `weights` (summing to 1) for `epochs` full-batch Adam
    /// steps at `learning_rate`. The weighted mean squared error before the last step.
    pub fn train(
        &mut self,
        x: ArrayView2<f64>,
        weights: &Array1<f64>,
        epochs: usize,
        learning_rate: f64,
    ) -> f64 {
        let (beta1, beta2, eps) = (0.9, 0.999, 1e-8);
        let mut moments: Vec<(Dense, Dense)> = self
            .layers
            .iter()
            .map(|l| {
                let zero = || Dense {
                    w: Array2::zeros(l.w.raw_dim()),
                    b: Array1::zeros(l.b.len()),
                };
                (zero(), zero())
            })
            .collect();
        let d = x.ncols().max(1) as f64;
        let column = weights.view().insert_axis(Axis(1));
        let mut loss = f64::NAN;
        for step in 1..=epochs {
            let acts = self.activations(x);
            let diff = acts.last().expect("output") - &x;
            loss = (&diff * &diff * column).sum() / d;
            // d loss / d output
            let mut grad = &diff * &column * (2.0 / d);
            let grads: Vec<Dense> = (0..self.layers.len())
                .rev()
                .map(|i| {
                    let g = Dense {
                        w: acts[i].t().dot(&grad),
                        b: grad.sum_axis(Axis(0)),
                    };
                    if i > 0 {
                        // Back through the layer and the tanh before it.
                        let mut back = grad.dot(&self.layers[i].w.t());
                        back.zip_mut_with(&acts[i], |g, a| *g *= 1.0 - a * a);
                        grad = back;
                    }
                    g
                })
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            let (c1, c2) = (bias_correction(beta1, step), bias_correction(beta2, step));
            for ((layer, g), (m, v)) in self.layers.iter_mut().zip(&grads).zip(&mut moments) {
                let adam = |p: &mut f64, g: f64, m: &mut f64, v: &mut f64| {
                    *m = beta1 * *m + (1.0 - beta1) * g;
                    *v = beta2 * *v + (1.0 - beta2) * g * g;
                    *p -= learning_rate * (*m / c1) / ((*v / c2).sqrt() + eps);
                };
                ndarray::Zip::from(&mut layer.w)
                    .and(&g.w)
                    .and(&mut m.w)
                    .and(&mut v.w)
                    .for_each(|p, &g, m, v| adam(p, g, m, v));
                ndarray::Zip::from(&mut layer.b)
                    .and(&g.b)
                    .and(&mut m.b)
                    .and(&mut v.b)
                    .for_each(|p, &g, m, v| adam(p, g, m, v));
            }
        }
        loss
    }
}

/// Adam's correction of a moment average that started at zero: 1 − β^step.
fn bias_correction(beta: f64, step: usize) -> f64 {
    1.0 - beta.powi(step.min(i32::MAX as usize) as i32)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The hand-written gradient against a finite difference of the loss.
    #[test]
    fn one_step_lowers_the_loss_and_the_gradient_matches_finite_differences() {
        let x = Array2::from_shape_fn((6, 3), |(i, j)| ((i * 3 + j) as f64 * 0.37).sin());
        let w = Array1::from_elem(6, 1.0 / 6.0);
        let net = Network::new(&[3, 4, 2, 4, 3], 7);
        let loss = |n: &Network| {
            let diff = n.rebuild(x.view()) - &x;
            (&diff * &diff).mean_axis(Axis(1)).unwrap().dot(&w)
        };
        // Plain gradient descent with a tiny step (Adam's first step moves every weight by
        // about the learning rate, whatever its gradient): the loss must fall.
        let before = loss(&net);
        let mut trained = net.clone();
        let reported = trained.train(x.view(), &w, 1, 1e-3);
        assert!((reported - before).abs() < 1e-12, "{reported} vs {before}");
        assert!(loss(&trained) < before);
        // Finite differences on one weight of each layer agree with the direction Adam took.
        for l in 0..net.layers.len() {
            let mut up = net.clone();
            up.layers[l].w[[0, 0]] += 1e-6;
            let slope = (loss(&up) - before) / 1e-6;
            let moved = trained.layers[l].w[[0, 0]] - net.layers[l].w[[0, 0]];
            if slope.abs() > 1e-6 {
                assert!(
                    slope * moved < 0.0,
                    "layer {l}: slope {slope}, moved {moved}"
                );
            }
        }
    }

    #[test]
    fn the_same_seed_trains_the_same_network() {
        let x = Array2::from_shape_fn((20, 4), |(i, j)| ((i + j) % 3) as f64);
        let w = Array1::from_elem(20, 0.05);
        let mut a = Network::new(&[4, 3, 4], 1);
        let mut b = Network::new(&[4, 3, 4], 1);
        a.train(x.view(), &w, 50, 0.01);
        b.train(x.view(), &w, 50, 0.01);
        assert_eq!(a, b);
        assert_ne!(a, Network::new(&[4, 3, 4], 2));
    }
}
